"""The scheduler's direct EIP-712 hashing and signing give the same digests, signatures
and signers as eth-account's generic typed-data encoder, and refuse malformed input."""

from __future__ import annotations

import os

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data

from comptoir.chain import eip712

CHAIN_ID = 31337
HUB = "0x" + "ab" * 20
CONTRIBUTIONS = "0x" + "cd" * 20


def _reference_digest(document: dict[str, object]) -> bytes:
    return bytes(_hash_eip191_message(encode_typed_data(full_message=document)))


def test_contribution_digest_and_signature_match_eth_account() -> None:
    for _ in range(5):
        account = Account.create()
        task, rh, seal = os.urandom(32), os.urandom(32), os.urandom(32)
        document = eip712.contribution_typed_data(task, rh, seal, CHAIN_ID, HUB)
        assert eip712.contribution_digest(task, rh, seal, CHAIN_ID, HUB) == _reference_digest(
            document
        )
        reference = bytes(account.sign_message(encode_typed_data(full_message=document)).signature)
        r, vs = eip712.sign_contribution(account, task, rh, seal, CHAIN_ID, HUB)
        assert (r, vs) == eip712.compact(reference)
        signer = eip712.recover_contribution_signer(task, rh, seal, r, vs, CHAIN_ID, HUB)
        assert signer == account.address


def test_authorization_signature_matches_eth_account() -> None:
    scheduler, worker = Account.create(), Account.create()
    task = os.urandom(32)
    document = eip712.authorization_typed_data(worker.address, task, CHAIN_ID, CONTRIBUTIONS)
    reference = bytes(scheduler.sign_message(encode_typed_data(full_message=document)).signature)
    signed = eip712.sign_authorization(scheduler, worker.address, task, CHAIN_ID, CONTRIBUTIONS)
    assert signed == reference
    assert (
        eip712.recover_authorization_signer(worker.address, task, signed, CHAIN_ID, CONTRIBUTIONS)
        == scheduler.address
    )


def test_a_contribution_signed_for_another_task_or_domain_recovers_someone_else() -> None:
    account = Account.create()
    task, rh, seal = os.urandom(32), os.urandom(32), os.urandom(32)
    r, vs = eip712.sign_contribution(account, task, rh, seal, CHAIN_ID, HUB)
    other_task = eip712.recover_contribution_signer(os.urandom(32), rh, seal, r, vs, CHAIN_ID, HUB)
    other_chain = eip712.recover_contribution_signer(task, rh, seal, r, vs, CHAIN_ID + 1, HUB)
    assert account.address not in (other_task, other_chain)


def test_malformed_signatures_recover_nobody() -> None:
    task, rh, seal = os.urandom(32), os.urandom(32), os.urandom(32)
    n = eip712.SECP256K1_N.to_bytes(32, "big")
    for r, vs in (
        (b"\0" * 32, os.urandom(32)),  # r = 0
        (n, b"\x01" * 32),  # r = N
        (os.urandom(32), b"\0" * 32),  # s = 0
        (os.urandom(31), os.urandom(32)),  # short r
        (os.urandom(32), os.urandom(33)),  # long vs
    ):
        assert eip712.recover_contribution_signer(task, rh, seal, r, vs, CHAIN_ID, HUB) is None
    # a well-formed signature over a task that is not 32 bytes
    r, vs = eip712.sign_contribution(Account.create(), task, rh, seal, CHAIN_ID, HUB)
    assert eip712.recover_contribution_signer(task[:31], rh, seal, r, vs, CHAIN_ID, HUB) is None
