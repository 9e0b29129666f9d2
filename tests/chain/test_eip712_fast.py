"""The hand-packed EIP-712 digests (orders, contributions, authorizations) and the
coincurve signing and recovery agree with eth-account's generic typed-data path, for every
struct and for hostile inputs."""

from __future__ import annotations

import os

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.chain import eip712
from comptoir.chain.eip712 import (
    order_hash,
    order_typed_data,
    recover_digest_signer,
    recover_order_signer,
    sign_order,
    typed_data_digest,
)
from comptoir.chain.types import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder

HUB = "0x" + "ab" * 20
uint = st.integers(min_value=0, max_value=2**256 - 1)
b32 = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None)
@given(
    app=uint,
    price=uint,
    volume=uint,
    tag=b32,
    params=st.text(max_size=40),
    chain_id=st.integers(min_value=1, max_value=2**64),
)
def test_digest_matches_eth_account(
    app: int, price: int, volume: int, tag: bytes, params: str, chain_id: int
) -> None:
    requester = Account.create().address
    orders = [
        AppOrder(app=app, app_price=price, volume=volume, tag=tag),
        DatasetOrder(dataset=app, dataset_price=price, volume=volume, tag=tag),
        WorkerpoolOrder(workerpool=app, workerpool_price=price, volume=volume, tag=tag),
        RequestOrder(
            app=app,
            app_max_price=price,
            dataset=volume,
            dataset_max_price=price,
            workerpool=app,
            workerpool_max_price=volume,
            requester=requester,
            volume=volume,
            tag=tag,
            params=params,
        ),
    ]
    for order in orders:
        expected = typed_data_digest(order_typed_data(order, chain_id, HUB))
        assert order_hash(order, chain_id, HUB) == expected


def test_recovery_matches_eth_account_and_rejects_other_signers() -> None:
    account, other = Account.create(), Account.create()
    order = AppOrder(app=7, app_price=3, volume=10)
    sig = sign_order(order, account, 31337, HUB)
    document = encode_typed_data(full_message=order_typed_data(order, 31337, HUB))
    assert Account.recover_message(document, signature=sig) == account.address
    assert recover_order_signer(order, sig, 31337, HUB) == account.address
    # the same signature over another order or another domain names someone else
    assert recover_order_signer(order.replace(app_price=4), sig, 31337, HUB) != account.address
    assert recover_order_signer(order, sig, 1, HUB) != account.address
    assert recover_order_signer(order, sign_order(order, other, 31337, HUB), 31337, HUB) == (
        other.address
    )


@pytest.mark.parametrize(
    "signature",
    [b"\x00" * 65, os.urandom(64) + b"\x1d", os.urandom(64)],
    ids=["zero", "bad-v", "short"],
)
def test_recovery_refuses_malformed_signatures(signature: bytes) -> None:
    with pytest.raises(ValueError):
        recover_digest_signer(b"\x11" * 32, signature)


def test_out_of_range_values_are_refused() -> None:
    with pytest.raises(ValueError):
        order_hash(AppOrder(app=2**256, app_price=0, volume=1), 1, HUB)
    with pytest.raises(ValueError):
        order_hash(AppOrder(app=1, app_price=0, volume=1, tag=b"\x01"), 1, HUB)


CHAIN_ID = 31337
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
