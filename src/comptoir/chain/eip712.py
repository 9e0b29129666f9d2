"""EIP-712 typed data for orders, contributions and authorizations, signed with eth-account.

The domain is ("Comptoir", "1", chain id, verifying contract): a signature made for one
chain or one deployment is worthless on another. Orders and worker contributions are
signed for the hub; scheduler authorizations for the Contributions contract.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.chain.types import _Struct

DOMAIN_NAME = "Comptoir"
DOMAIN_VERSION = "1"

CONTRIBUTION_FIELDS = (("task", "bytes32"), ("result_hash", "bytes32"), ("result_seal", "bytes32"))
AUTHORIZATION_FIELDS = (("worker", "address"), ("task", "bytes32"))


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
    document = contribution_typed_data(task, result_hash, result_seal, chain_id, hub)
    signed = account.sign_message(encode_typed_data(full_message=document))
    return compact(bytes(signed.signature))


def authorization_typed_data(
    worker: str, task: bytes, chain_id: int, contributions: str
) -> dict[str, Any]:
    message = {"worker": to_checksum_address(worker), "task": task}
    return typed_data("Authorization", AUTHORIZATION_FIELDS, message, chain_id, contributions)


def sign_authorization(
    account: LocalAccount, worker: str, task: bytes, chain_id: int, contributions: str
) -> bytes:
    """The scheduler's authorization of `worker` on `task` (65 bytes)."""
    document = authorization_typed_data(worker, task, chain_id, contributions)
    return bytes(account.sign_message(encode_typed_data(full_message=document)).signature)


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
