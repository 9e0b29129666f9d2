"""EIP-712 typed data for orders, contributions and authorizations, signed with eth-account.

The domain is ("Comptoir", "1", chain id, verifying contract): a signature made for one
chain or one deployment is worthless on another. Orders and worker contributions are
signed for the hub; scheduler authorizations for the Contributions contract.
"""

from __future__ import annotations

import functools
from typing import Any

import coincurve
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from comptoir.chain.types import _Struct

DOMAIN_NAME = "Comptoir"
DOMAIN_VERSION = "1"

CONTRIBUTION_FIELDS = (("task", "bytes32"), ("result_hash", "bytes32"), ("result_seal", "bytes32"))
AUTHORIZATION_FIELDS = (("worker", "address"), ("task", "bytes32"))


# secp256k1 group order: r and s of a valid signature lie in [1, N)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _type_hash(primary: str, members: tuple[tuple[str, str], ...]) -> bytes:
    return keccak(f"{primary}({','.join(f'{t} {n}' for n, t in members)})".encode())


_DOMAIN_TYPE = _type_hash(
    "EIP712Domain",
    (
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    ),
)
_CONTRIBUTION_TYPE = _type_hash("Contribution", CONTRIBUTION_FIELDS)
_AUTHORIZATION_TYPE = _type_hash("Authorization", AUTHORIZATION_FIELDS)


@functools.lru_cache(maxsize=64)
def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    """hashStruct(EIP712Domain) of our domain (what the contracts compute once)."""
    return keccak(
        _DOMAIN_TYPE
        + keccak(DOMAIN_NAME.encode())
        + keccak(DOMAIN_VERSION.encode())
        + chain_id.to_bytes(32, "big")
        + _address_word(verifying_contract)
    )


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x"))
    if len(raw) != 20:
        raise ValueError(f"{address!r} is not a 20-byte address")
    return raw.rjust(32, b"\0")


def _word(value: bytes) -> bytes:
    if len(value) != 32:
        raise ValueError("a bytes32 field must hold 32 bytes")
    return value


# The hot paths (a scheduler verifies every commitment and signs every authorization)
# hash the two fixed structs directly: eth-account's generic typed-data encoder costs
# milliseconds per document; tests/chain/test_eip712_fast.py holds both to the same digests.


def contribution_digest(
    task: bytes, result_hash: bytes, result_seal: bytes, chain_id: int, hub: str
) -> bytes:
    """The EIP-712 digest a worker signs for a contribution."""
    struct = keccak(_CONTRIBUTION_TYPE + _word(task) + _word(result_hash) + _word(result_seal))
    return keccak(b"\x19\x01" + domain_separator(chain_id, hub) + struct)


def authorization_digest(worker: str, task: bytes, chain_id: int, contributions: str) -> bytes:
    """The EIP-712 digest a scheduler signs to authorize a worker on a task."""
    struct = keccak(_AUTHORIZATION_TYPE + _address_word(worker) + _word(task))
    return keccak(b"\x19\x01" + domain_separator(chain_id, contributions) + struct)


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """65-byte (r, s, v) signature of a 32-byte digest, v in {27, 28} (RFC 6979, low s:
    the same bytes eth-account produces)."""
    raw = coincurve.PrivateKey(private_key).sign_recoverable(digest, hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def recover_digest_signer(digest: bytes, r: bytes, s: bytes, v: int) -> str | None:
    """The checksummed address that signed `digest`, or None for a malformed signature
    (r or s out of range, v not 27/28 or 0/1)."""
    if v >= 27:
        v -= 27
    rn, sn = int.from_bytes(r, "big"), int.from_bytes(s, "big")
    if v not in (0, 1) or not (0 < rn < SECP256K1_N and 0 < sn < SECP256K1_N):
        return None
    try:
        pub = coincurve.PublicKey.from_signature_and_message(
            r.rjust(32, b"\0") + s.rjust(32, b"\0") + bytes([v]), digest, hasher=None
        )
    except Exception:  # no point on the curve for this r
        return None
    return to_checksum_address(keccak(pub.format(compressed=False)[1:])[-20:])


def recover_contribution_signer(
    task: bytes,
    result_hash: bytes,
    result_seal: bytes,
    r: bytes,
    vs: bytes,
    chain_id: int,
    hub: str,
) -> str | None:
    """The address that signed a compact (EIP-2098 r, vs) contribution, or None."""
    if len(r) != 32 or len(vs) != 32:
        return None
    try:
        digest = contribution_digest(task, result_hash, result_seal, chain_id, hub)
    except ValueError:
        return None
    packed = int.from_bytes(vs, "big")
    s = (packed & ((1 << 255) - 1)).to_bytes(32, "big")
    return recover_digest_signer(digest, r, s, packed >> 255)


def domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": to_checksum_address(verifying_contract),
    }


def typed_data(
    primary: str,
    members: tuple[tuple[str, str], ...],
    message: dict[str, Any],
    chain_id: int,
    verifying_contract: str,
) -> dict[str, Any]:
    """A complete typed-data document, as a wallet's eth_signTypedData_v4 takes it."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            primary: [{"name": n, "type": t} for n, t in members],
        },
        "primaryType": primary,
        "domain": domain(chain_id, verifying_contract),
        "message": message,
    }


def order_typed_data(order: _Struct, chain_id: int, hub: str) -> dict[str, Any]:
    message = {name: getattr(order, name) for name, _ in order.EIP712_FIELDS}
    return typed_data(type(order).__name__, order.EIP712_FIELDS, message, chain_id, hub)


def _digest(document: dict[str, Any]) -> bytes:
    signable = encode_typed_data(full_message=document)
    from eth_account.messages import _hash_eip191_message

    return bytes(_hash_eip191_message(signable))


def order_hash(order: _Struct, chain_id: int, hub: str) -> bytes:
    """The EIP-712 digest of an order; the hub computes the same value on-chain."""
    return _digest(order_typed_data(order, chain_id, hub))


def sign_order(order: _Struct, account: LocalAccount, chain_id: int, hub: str) -> bytes:
    """65-byte (r, s, v) signature of an order."""
    signed = account.sign_message(
        encode_typed_data(full_message=order_typed_data(order, chain_id, hub))
    )
    return bytes(signed.signature)


def recover_order_signer(order: _Struct, signature: bytes, chain_id: int, hub: str) -> str:
    signable = encode_typed_data(full_message=order_typed_data(order, chain_id, hub))
    return str(Account.recover_message(signable, signature=signature))


def contribution_typed_data(
    task: bytes, result_hash: bytes, result_seal: bytes, chain_id: int, hub: str
) -> dict[str, Any]:
    message = {"task": task, "result_hash": result_hash, "result_seal": result_seal}
    return typed_data("Contribution", CONTRIBUTION_FIELDS, message, chain_id, hub)


def sign_contribution(
    account: LocalAccount,
    task: bytes,
    result_hash: bytes,
    result_seal: bytes,
    chain_id: int,
    hub: str,
) -> tuple[bytes, bytes]:
    """A worker's commitment signature, in EIP-2098 compact form (r, vs)."""
    digest = contribution_digest(task, result_hash, result_seal, chain_id, hub)
    return compact(sign_digest(bytes(account.key), digest))


def authorization_typed_data(
    worker: str, task: bytes, chain_id: int, contributions: str
) -> dict[str, Any]:
    message = {"worker": to_checksum_address(worker), "task": task}
    return typed_data("Authorization", AUTHORIZATION_FIELDS, message, chain_id, contributions)


def sign_authorization(
    account: LocalAccount, worker: str, task: bytes, chain_id: int, contributions: str
) -> bytes:
    """The scheduler's authorization of `worker` on `task` (65 bytes)."""
    return sign_digest(
        bytes(account.key), authorization_digest(worker, task, chain_id, contributions)
    )


def recover_authorization_signer(
    worker: str, task: bytes, signature: bytes, chain_id: int, contributions: str
) -> str:
    document = authorization_typed_data(worker, task, chain_id, contributions)
    return str(
        Account.recover_message(encode_typed_data(full_message=document), signature=signature)
    )


def compact(signature: bytes) -> tuple[bytes, bytes]:
    """EIP-2098: fold v into the top bit of s."""
    r, s, v = signature[:32], signature[32:64], signature[64]
    vs = int.from_bytes(s, "big") | ((v - 27) << 255)
    return r, vs.to_bytes(32, "big")
