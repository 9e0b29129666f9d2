"""Escrow and registry: every revert path beside its positive twin."""

from __future__ import annotations

import boa
import pytest
from helpers import BUNDLE


def test_deposit_moves_tokens_into_free_balance(protocol, actors):
    alice = actors["requester"]
    protocol.fund(alice, 500)
    assert protocol.hub.balance_of(alice.address) == 500
    assert protocol.token.balanceOf(protocol.hub.address) == 500


def test_deposit_of_zero_is_refused(protocol, actors):
    with boa.env.prank(actors["requester"].address), boa.reverts("escrow: zero amount"):
        protocol.hub.deposit(0)


def test_deposit_without_allowance_is_refused(protocol, actors):
    alice = actors["requester"].address
    with boa.env.prank(protocol.owner):
        protocol.token.mint(alice, 10)
    with boa.env.prank(alice), boa.reverts():
        protocol.hub.deposit(10)


def test_deposit_for_credits_another_account(protocol, actors):
    payer, beneficiary = actors["stranger"].address, actors["w1"].address
    with boa.env.prank(protocol.owner):
        protocol.token.mint(payer, 10)
    with boa.env.prank(payer):
        protocol.token.approve(protocol.hub.address, 10)
        protocol.hub.deposit_for(beneficiary, 10)
    assert protocol.hub.balance_of(beneficiary) == 10
    assert protocol.hub.balance_of(payer) == 0


def test_deposit_for_zero_account_is_refused(protocol, actors):
    with boa.env.prank(actors["stranger"].address), boa.reverts("escrow: zero account"):
        protocol.hub.deposit_for("0x" + "00" * 20, 1)


def test_withdraw_returns_tokens(protocol, actors):
    alice = actors["requester"]
    protocol.fund(alice, 100)
    with boa.env.prank(alice.address):
        protocol.hub.withdraw(40)
    assert protocol.hub.balance_of(alice.address) == 60
    assert protocol.token.balanceOf(alice.address) == 40


def test_withdraw_beyond_free_balance_is_refused(protocol, actors):
    alice = actors["requester"]
    protocol.fund(alice, 100)
    with boa.env.prank(alice.address), boa.reverts("escrow: insufficient balance"):
        protocol.hub.withdraw(101)


def test_withdraw_to_sends_elsewhere_and_refuses_zero(protocol, actors):
    alice, bob = actors["requester"], actors["w2"]
    protocol.fund(alice, 100)
    with boa.env.prank(alice.address):
        protocol.hub.withdraw_to(bob.address, 30)
        with boa.reverts("escrow: zero recipient"):
            protocol.hub.withdraw_to("0x" + "00" * 20, 30)
    assert protocol.token.balanceOf(bob.address) == 30


def test_deposit_with_permit(protocol, actors):
    from eth_account.messages import encode_typed_data

    alice = actors["requester"]
    with boa.env.prank(protocol.owner):
        protocol.token.mint(alice.address, 77)
    deadline = boa.env.evm.patch.timestamp + 3600
    document = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Permit": [
                {"name": "owner", "type": "address"},
                {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Permit",
        "domain": {
            "name": "ComptoirToken",
            "version": "1",
            "chainId": boa.env.evm.patch.chain_id,
            "verifyingContract": protocol.token.address,
        },
        "message": {
            "owner": alice.address,
            "spender": protocol.hub.address,
            "value": 77,
            "nonce": 0,
            "deadline": deadline,
        },
    }
    signed = alice.account.sign_message(encode_typed_data(full_message=document))
    with boa.env.prank(alice.address):
        protocol.hub.deposit_with_permit(
            77, deadline, signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")
        )
    assert protocol.hub.balance_of(alice.address) == 77


def test_register_app_records_everything(protocol, actors):
    dev = actors["app_dev"].address
    with boa.env.prank(dev):
        app = protocol.registry.register_app("echo", BUNDLE, "cas://x", b"\x01" * 32, b"\x02" * 32)
    record = protocol.registry.asset(app)
    assert (record.kind, record.owner, record.location) == (1, dev, "cas://x")
    assert record.checksum == b"\x01" * 32 and record.enclave_measurement == b"\x02" * 32
    assert protocol.registry.owner_of(app) == dev and protocol.registry.kind_of(app) == 1


def test_register_app_with_unknown_type_is_refused(protocol, actors):
    with boa.env.prank(actors["app_dev"].address), boa.reverts("registry: unknown app type"):
        protocol.registry.register_app("echo", 9, "cas://x", b"\x01" * 32, b"\x00" * 32)


def test_transfer_asset_changes_owner(protocol, actors):
    dev, other = actors["app_dev"].address, actors["stranger"].address
    with boa.env.prank(dev):
        app = protocol.registry.register_app("echo", BUNDLE, "x", b"\x01" * 32, b"\x00" * 32)
        protocol.registry.transfer_asset(app, other)
    assert protocol.registry.owner_of(app) == other
    assert protocol.registry.asset(app).owner == other
    assert protocol.registry.kind_of(app) == 1


@pytest.mark.parametrize(
    ("sender", "asset_offset", "new_owner", "reason"),
    [
        ("stranger", 0, "w1", "registry: caller is not the owner"),
        ("app_dev", 99, "w1", "registry: unknown asset"),
        ("app_dev", 0, None, "registry: zero owner"),
    ],
)
def test_transfer_asset_refusals(protocol, actors, sender, asset_offset, new_owner, reason):
    with boa.env.prank(actors["app_dev"].address):
        app = protocol.registry.register_app("echo", BUNDLE, "x", b"\x01" * 32, b"\x00" * 32)
    target = actors[new_owner].address if new_owner else "0x" + "00" * 20
    with boa.env.prank(actors[sender].address), boa.reverts(reason):
        protocol.registry.transfer_asset(app + asset_offset, target)


def test_workerpool_policy_update_and_refusals(protocol, actors):
    scheduler = actors["scheduler"].address
    with boa.env.prank(scheduler):
        pool = protocol.registry.register_workerpool("pool", 10, 20)
        assert protocol.registry.workerpool_policy(pool) == (10, 20)
        protocol.registry.set_workerpool_policy(pool, 15, 25)
        assert protocol.registry.workerpool_policy(pool) == (15, 25)
        assert protocol.registry.owner_of(pool) == scheduler
        with boa.reverts("registry: worker stake ratio above 100"):
            protocol.registry.set_workerpool_policy(pool, 101, 0)
        with boa.reverts("registry: scheduler reward ratio above 100"):
            protocol.registry.register_workerpool("p2", 0, 101)
    with (
        boa.env.prank(actors["stranger"].address),
        boa.reverts("registry: caller is not the owner"),
    ):
        protocol.registry.set_workerpool_policy(pool, 1, 1)


def test_workerpool_endpoint_set_by_its_owner_only(protocol, actors):
    scheduler = actors["scheduler"].address
    with boa.env.prank(scheduler):
        pool = protocol.registry.register_workerpool("pool", 10, 20)
        assert protocol.registry.asset(pool).location == ""
        protocol.registry.set_location(pool, "https://pool.example:8700")
        logs = protocol.registry.get_logs()
    assert protocol.registry.asset(pool).location == "https://pool.example:8700"
    assert [(e.asset, e.location) for e in logs] == [(pool, "https://pool.example:8700")]
    with (
        boa.env.prank(actors["stranger"].address),
        boa.reverts("registry: caller is not the owner"),
    ):
        protocol.registry.set_location(pool, "http://evil.example")
    with boa.env.prank(scheduler), boa.reverts("registry: unknown asset"):
        protocol.registry.set_location(pool + 100, "http://x")
    assert protocol.registry.asset(pool).location == "https://pool.example:8700"


def test_categories_owner_only_and_bounded(protocol, actors):
    with boa.env.prank(protocol.owner):
        category = protocol.registry.create_category("XL", 36000)
        assert protocol.registry.category_time_ref(category) == 36000
        with boa.reverts("categories: zero time reference"):
            protocol.registry.create_category("bad", 0)
        with boa.reverts("categories: time reference above one year"):
            protocol.registry.create_category("bad", 366 * 86400)
    with boa.env.prank(actors["stranger"].address), boa.reverts():
        protocol.registry.create_category("mine", 10)


def test_match_info_checks_kinds(protocol, actors):
    with boa.env.prank(actors["app_dev"].address):
        app = protocol.registry.register_app("echo", BUNDLE, "x", b"\x01" * 32, b"\x00" * 32)
    with boa.env.prank(actors["scheduler"].address):
        pool = protocol.registry.register_workerpool("pool", 10, 20)
    owner, _, _, time_ref = protocol.registry.match_info(app, 0, pool, 0)
    assert owner == actors["app_dev"].address and time_ref == 100
    with boa.reverts("registry: unknown asset or wrong kind"):
        protocol.registry.match_info(pool, 0, pool, 0)
    with boa.reverts("categories: unknown category"):
        protocol.registry.match_info(app, 0, pool, 7)
