"""EIP-712 typed data for orders, contributions and authorizations, signed with eth-account.

The domain is ("Comptoir", "1", chain id, verifying contract): a signature made for one
chain or one deployment is worthless on another. Orders and worker contributions are
signed for the hub; scheduler authorizations for the Contributions contract.

Order digests are computed here directly (type hashes and domain separators cached, the
static fields packed by hand) and signers recovered from a digest with coincurve: the
market checks every published order this way, about 20 times faster than going through
eth-account's generic typed-data encoder, which stays the reference in the tests.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.chain.hashing import keccak256
from comptoir.chain.types import _Struct, checksummed

DOMAIN_NAME = "Comptoir"
DOMAIN_VERSION = "1"

CONTRIBUTION_FIELDS = (("task", "bytes32"), ("result_hash", "bytes32"), ("result_seal", "bytes32"))
AUTHORIZATION_FIELDS = (("worker", "address"), ("task", "bytes32"))
# secp256k1 group order: r and s of a valid signature lie in [1, N)
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


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


def typed_data_digest(document: dict[str, Any]) -> bytes:
    """The digest eth-account signs for a typed-data document (the generic, slow path)."""
    signable = encode_typed_data(full_message=document)
    from eth_account.messages import _hash_eip191_message

    return bytes(_hash_eip191_message(signable))


@lru_cache(maxsize=64)
def type_hash(primary: str, members: tuple[tuple[str, str], ...]) -> bytes:
    return keccak256(f"{primary}({','.join(f'{t} {n}' for n, t in members)})".encode())


@lru_cache(maxsize=64)
def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    fields = (
        ("name", "string"),
        ("version", "string"),
        ("chainId", "uint256"),
        ("verifyingContract", "address"),
    )
    values = (DOMAIN_NAME, DOMAIN_VERSION, chain_id, verifying_contract)
    return keccak256(type_hash("EIP712Domain", fields) + _encode_values(fields, values))


def _encode_values(members: tuple[tuple[str, str], ...], values: tuple[Any, ...]) -> bytes:
    """encodeData of EIP-712 for the member types orders use (uint256, address, bytes32,
    string); anything else or out of range raises ValueError."""
    out = bytearray()
    for (name, kind), value in zip(members, values, strict=True):
        if kind == "uint256":
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**256:
                raise ValueError(f"{name} must be an integer in [0, 2**256)")
            out += value.to_bytes(32, "big")
        elif kind == "address":
            raw = bytes.fromhex(str(value).removeprefix("0x"))
            if len(raw) != 20:
                raise ValueError(f"{name} must be a 20-byte address")
            out += bytes(12) + raw
        elif kind == "bytes32":
            if not isinstance(value, bytes) or len(value) != 32:
                raise ValueError(f"{name} must be 32 bytes")
            out += value
        elif kind == "string":
            out += keccak256(str(value).encode())
        else:
            raise ValueError(f"EIP-712 type {kind} is not supported here")
    return bytes(out)


def order_hash(order: _Struct, chain_id: int, hub: str) -> bytes:
    """The EIP-712 digest of an order; the hub computes the same value on-chain."""
    members = order.EIP712_FIELDS
    values = tuple(getattr(order, name) for name, _ in members)
    struct_hash = keccak256(
        type_hash(type(order).__name__, members) + _encode_values(members, values)
    )
    separator = domain_separator(chain_id, checksummed(hub))
    return keccak256(b"\x19\x01" + separator + struct_hash)


def recover_digest_signer(digest: bytes, signature: bytes) -> str:
    """The checksummed address whose key made this 65-byte (r, s, v) signature of a
    32-byte digest (v 27/28 or 0/1); ValueError when none did (r or s out of [1, N), no
    curve point for r)."""
    public = recover_digest_public_key(digest, signature)
    return checksummed("0x" + keccak256(public)[-20:].hex())


def recover_digest_public_key(digest: bytes, signature: bytes) -> bytes:
    """The 64-byte public key (no 0x04 prefix) that made this signature of `digest`;
    ValueError as :func:`recover_digest_signer`."""
    if len(signature) != 65 or len(digest) != 32:
        raise ValueError("a signature is 65 bytes and a digest 32")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if v not in (0, 1):
        raise ValueError("the signature's v must be 27 or 28")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ValueError("the signature's r and s must lie in [1, N)")
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v]), digest, hasher=None
        )
    except Exception as e:  # coincurve's own error: no point on the curve for this r
        raise ValueError("no public key recovers from this signature") from e
    return bytes(public.format(compressed=False)[1:])


def sign_digest(digest: bytes, private_key: bytes | PrivateKey) -> bytes:
    """65-byte (r, s, v = 27/28) low-s signature of a 32-byte digest. A signer of many
    digests passes its PrivateKey built once (building one derives the public key)."""
    key = private_key if isinstance(private_key, PrivateKey) else PrivateKey(private_key)
    raw = key.sign_recoverable(digest, hasher=None)
    return raw[:64] + bytes([raw[64] + 27])


def sign_order(order: _Struct, account: LocalAccount, chain_id: int, hub: str) -> bytes:
    """65-byte (r, s, v) signature of an order."""
    return sign_digest(order_hash(order, chain_id, hub), bytes(account.key))


def recover_order_signer(order: _Struct, signature: bytes, chain_id: int, hub: str) -> str:
    return recover_digest_signer(order_hash(order, chain_id, hub), signature)


def contribution_typed_data(
    task: bytes, result_hash: bytes, result_seal: bytes, chain_id: int, hub: str
) -> dict[str, Any]:
    message = {"task": task, "result_hash": result_hash, "result_seal": result_seal}
    return typed_data("Contribution", CONTRIBUTION_FIELDS, message, chain_id, hub)


# The scheduler verifies every commitment and signs every authorization: both structs are
# hashed directly like orders (tests/chain/test_eip712_fast.py holds them to eth-account).


def contribution_digest(
    task: bytes, result_hash: bytes, result_seal: bytes, chain_id: int, hub: str
) -> bytes:
    """The EIP-712 digest a worker signs for a contribution."""
    values = (task, result_hash, result_seal)
    struct = keccak256(
        type_hash("Contribution", CONTRIBUTION_FIELDS) + _encode_values(CONTRIBUTION_FIELDS, values)
    )
    return keccak256(b"\x19\x01" + domain_separator(chain_id, checksummed(hub)) + struct)


def authorization_digest(worker: str, task: bytes, chain_id: int, contributions: str) -> bytes:
    """The EIP-712 digest a scheduler signs to authorize a worker on a task."""
    struct = keccak256(
        type_hash("Authorization", AUTHORIZATION_FIELDS)
        + _encode_values(AUTHORIZATION_FIELDS, (worker, task))
    )
    return keccak256(b"\x19\x01" + domain_separator(chain_id, checksummed(contributions)) + struct)


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
    return compact(sign_digest(digest, bytes(account.key)))


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
    packed = int.from_bytes(vs, "big")
    s = (packed & ((1 << 255) - 1)).to_bytes(32, "big")
    try:
        digest = contribution_digest(task, result_hash, result_seal, chain_id, hub)
        return recover_digest_signer(digest, r + s + bytes([27 + (packed >> 255)]))
    except ValueError:
        return None


def authorization_typed_data(
    worker: str, task: bytes, chain_id: int, contributions: str
) -> dict[str, Any]:
    message = {"worker": to_checksum_address(worker), "task": task}
    return typed_data("Authorization", AUTHORIZATION_FIELDS, message, chain_id, contributions)


def sign_authorization(
    account: LocalAccount, worker: str, task: bytes, chain_id: int, contributions: str
) -> bytes:
    """The scheduler's authorization of `worker` on `task` (65 bytes)."""
    digest = authorization_digest(worker, task, chain_id, contributions)
    return sign_digest(digest, bytes(account.key))


def recover_authorization_signer(
    worker: str, task: bytes, signature: bytes, chain_id: int, contributions: str
) -> str:
    """The scheduler that signed this authorization; ValueError for a malformed one."""
    digest = authorization_digest(worker, task, chain_id, contributions)
    return recover_digest_signer(digest, signature)


def compact(signature: bytes) -> tuple[bytes, bytes]:
    """EIP-2098: fold v into the top bit of s."""
    r, s, v = signature[:32], signature[32:64], signature[64]
    vs = int.from_bytes(s, "big") | ((v - 27) << 255)
    return r, vs.to_bytes(32, "big")
