"""match_orders: every check beside a passing match, partial fills, replay, signers."""

from __future__ import annotations

import boa
import pytest
from helpers import APP_PRICE, DATASET_PRICE, POOL_PRICE, chain_id, setup_market

from comptoir.chain import eip712
from comptoir.chain.types import TAG_GPU, TAG_TEE, AppOrder, DatasetOrder, tag_bytes

ZERO = "0x" + "00" * 20


@pytest.fixture
def market(protocol, actors):
    return setup_market(protocol, actors)


def test_match_creates_deal_and_escrows_funds(market, actors):
    hub = market.hub
    before_requester = hub.balance_of(actors["requester"].address)
    before_scheduler = hub.balance_of(actors["scheduler"].address)
    deal = market.deal(volume=5)
    assert deal.volume == 5 and deal.first_task == 0
    assert hub.deal_exists(deal.deal_id)
    assert hub.balance_of(actors["requester"].address) == before_requester - 5 * (
        APP_PRICE + POOL_PRICE
    )
    assert hub.balance_of(actors["scheduler"].address) == before_scheduler - 5 * 30
    assert (
        deal.scheduler_stake == 30 and deal.worker_stake == 20 and deal.scheduler_reward_ratio == 10
    )
    assert deal.final_deadline - deal.contribution_deadline == 300


def test_match_with_dataset_pays_dataset_price(market, actors):
    before = market.hub.balance_of(actors["requester"].address)
    deal = market.deal(volume=2, with_dataset=True)
    assert deal.dataset_owner == actors["dataset_owner"].address
    assert market.hub.balance_of(actors["requester"].address) == before - 2 * (
        APP_PRICE + DATASET_PRICE + POOL_PRICE
    )


def test_match_emits_order_hashes_equal_to_python(market):
    app_order, dataset_order, pool_order, request = market.orders()
    deal = market.match(app_order, dataset_order, pool_order, request)
    event = [e for e in market.hub.get_logs() if type(e).__name__ == "DealCreated"][-1]
    assert event.app_order_hash == eip712.order_hash(app_order, chain_id(), market.hub.address)
    assert event.workerpool_order_hash == eip712.order_hash(
        pool_order, chain_id(), market.hub.address
    )
    assert deal.request_hash == eip712.order_hash(request, chain_id(), market.hub.address)
    assert event.params == request.params


def test_partial_fills_feed_several_deals(market):
    app_order, dataset_order, pool_order, request = market.orders(volume=10)
    pool_order = pool_order.replace(volume=4)
    first = market.match(app_order, dataset_order, pool_order, request)
    assert (first.first_task, first.volume) == (0, 4)
    second_pool = pool_order.replace(volume=100)
    second = market.match(app_order, dataset_order, second_pool, request)
    assert (second.first_task, second.volume) == (4, 6)
    assert market.hub.consumed(second.request_hash) == 10
    with boa.reverts("poco: an order is cancelled or fully consumed"):
        market.match(app_order, dataset_order, second_pool, request)


def test_replayed_request_is_refused(market):
    orders = market.orders(volume=1)
    market.match(*orders)
    with boa.reverts("poco: an order is cancelled or fully consumed"):
        market.match(*orders)


def test_cancelled_order_cannot_match(market, actors):
    app_order, dataset_order, pool_order, request = market.orders()
    with boa.env.prank(actors["requester"].address):
        market.hub.cancel_request_order(request.as_tuple())
    with boa.reverts("poco: an order is cancelled or fully consumed"):
        market.match(app_order, dataset_order, pool_order, request)


@pytest.mark.parametrize(
    ("method", "index", "owner"),
    [
        ("cancel_app_order", 0, "app_dev"),
        ("cancel_workerpool_order", 2, "scheduler"),
        ("cancel_request_order", 3, "requester"),
        ("cancel_dataset_order", 1, "dataset_owner"),
    ],
)
def test_cancel_only_by_owner(market, actors, method, index, owner):
    orders = market.orders(with_dataset=True)
    with (
        boa.env.prank(actors["stranger"].address),
        boa.reverts("orders: caller is not the order owner"),
    ):
        getattr(market.hub, method)(orders[index].as_tuple())
    with boa.env.prank(actors[owner].address):
        getattr(market.hub, method)(orders[index].as_tuple())
    order_hash = eip712.order_hash(orders[index], chain_id(), market.hub.address)
    assert market.hub.consumed(order_hash) == 2**256 - 1


def test_presigned_orders_need_no_signature(market, actors):
    app_order, dataset_order, pool_order, request = market.orders()
    with boa.env.prank(actors["app_dev"].address):
        market.hub.presign_app_order(app_order.as_tuple())
    with boa.env.prank(actors["scheduler"].address):
        market.hub.presign_workerpool_order(pool_order.as_tuple())
    with boa.env.prank(actors["requester"].address):
        market.hub.presign_request_order(request.as_tuple())
    deal = market.match(
        app_order,
        dataset_order,
        pool_order,
        request,
        sigs={"app": b"", "workerpool": b"", "request": b""},
    )
    assert deal.volume == 1


def test_presign_only_by_owner_and_missing_signature_refused(market, actors):
    app_order, dataset_order, pool_order, request = market.orders()
    with (
        boa.env.prank(actors["stranger"].address),
        boa.reverts("orders: caller is not the order owner"),
    ):
        market.hub.presign_request_order(request.as_tuple())
    with boa.reverts("poco: bad request signature"):
        market.match(app_order, dataset_order, pool_order, request, sigs={"request": b""})


def test_requester_sending_the_match_needs_no_signature(market):
    orders = market.orders()
    assert market.match(*orders, sender="requester", sigs={"request": b""}).volume == 1


@pytest.mark.parametrize(
    ("which", "signer", "reason"),
    [
        ("app", "stranger", "poco: invalid app order signature"),
        ("workerpool", "requester", "poco: bad pool order signature"),
        ("request", "scheduler", "poco: bad request signature"),
        ("dataset", "stranger", "poco: bad dataset signature"),
    ],
)
def test_forged_signatures_are_refused(market, which, signer, reason):
    orders = market.orders(with_dataset=True)
    index = {"app": 0, "dataset": 1, "workerpool": 2, "request": 3}[which]
    forged = market.sign(orders[index], signer)
    with boa.reverts(reason):
        market.match(*orders, sigs={which: forged})


def test_signature_for_another_chain_or_contract_is_refused(market, actors):
    orders = market.orders()
    account = actors["requester"].account
    other_chain = eip712.sign_order(orders[3], account, chain_id() + 1, market.hub.address)
    other_contract = eip712.sign_order(
        orders[3], account, chain_id(), market.protocol.registry.address
    )
    for sig in (other_chain, other_contract):
        with boa.reverts("poco: bad request signature"):
            market.match(*orders, sigs={"request": sig})


def test_tampered_order_fails_its_signature(market):
    app_order, dataset_order, pool_order, request = market.orders()
    sig = market.sign(request, "requester")
    with boa.reverts("poco: bad request signature"):
        market.match(
            app_order, dataset_order, pool_order, request.replace(volume=2), sigs={"request": sig}
        )


def test_erc1271_contract_requester(market, actors):
    from conftest import load

    owner = actors["stranger"]
    wallet = load("ERC1271Wallet", owner.address)
    market.protocol.fund(owner, 10_000)
    with boa.env.prank(owner.address):
        market.hub.withdraw(10_000)
        market.protocol.token.transfer(wallet.address, 10_000)
        approve = market.protocol.token.approve.prepare_calldata(market.hub.address, 10_000)
        wallet.call(market.protocol.token.address, approve)
        deposit = market.hub.deposit.prepare_calldata(10_000)
        wallet.call(market.hub.address, deposit)
    app_order, dataset_order, pool_order, request = market.orders(requester=wallet.address)
    sig = eip712.sign_order(request, owner.account, chain_id(), market.hub.address)
    deal = market.match(app_order, dataset_order, pool_order, request, sigs={"request": sig})
    assert deal.requester == wallet.address
    bad = market.sign(request.replace(salt=b"\x05" * 32), "requester")
    with boa.reverts("poco: bad request signature"):
        market.match(
            app_order,
            dataset_order,
            pool_order,
            request.replace(salt=b"\x05" * 32),
            sigs={"request": bad},
        )


def _mismatches(market):
    """(description, order changes, expected revert) for every compatibility check."""
    m = market
    return [
        ("app differs", {3: {"app": m.dataset}}, "poco: app order for another app"),
        (
            "dataset differs",
            {3: {"dataset": m.dataset}},
            "poco: order for another dataset",
        ),
        (
            "pool restricted",
            {3: {"workerpool": m.app}},
            "poco: request for another pool",
        ),
        ("category", {3: {"category": 1}}, "poco: category mismatch"),
        (
            "trust",
            {2: {"trust": 3}, 3: {"trust": 4}},
            "poco: trust above workerpool's",
        ),
        (
            "app price",
            {3: {"app_max_price": APP_PRICE - 1}},
            "poco: app price above maximum",
        ),
        (
            "pool price",
            {3: {"workerpool_max_price": POOL_PRICE - 1}},
            "poco: pool price above maximum",
        ),
        ("tag", {3: {"tag": tag_bytes(TAG_GPU)}}, "poco: pool lacks a required tag"),
        ("app tag", {0: {"tag": tag_bytes(TAG_TEE)}}, "poco: pool lacks a required tag"),
        (
            "app restricts pool",
            {0: {"workerpool_restrict": m.app}},
            "poco: app restricts pools",
        ),
        (
            "app restricts requester",
            {0: {"requester_restrict": m.actors["w1"].address}},
            "poco: app restricts requesters",
        ),
        (
            "app restricts dataset",
            {0: {"dataset_restrict": 999}},
            "poco: app restricts datasets",
        ),
        ("pool restricts app", {2: {"app_restrict": 999}}, "poco: pool restricts apps"),
        (
            "pool restricts dataset",
            {2: {"dataset_restrict": 999}},
            "poco: pool restricts datasets",
        ),
        (
            "pool restricts requester",
            {2: {"requester_restrict": m.actors["w1"].address}},
            "poco: pool restricts requesters",
        ),
        ("zero requester", {3: {"requester": ZERO}}, "poco: request without requester"),
        (
            "price too large",
            {0: {"app_price": 2**128}, 3: {"app_max_price": 2**128}},
            "poco: price too large",
        ),
        ("trust too high", {2: {"trust": 2**200}, 3: {"trust": 2**100}}, "poco: trust too high"),
        (
            "dataset price without dataset",
            {1: {"dataset_price": 1}, 3: {"dataset_max_price": 1}},
            "poco: price without dataset",
        ),
    ]


@pytest.mark.parametrize("case", range(19))
def test_incompatible_orders_are_refused(market, case):
    _, changes, reason = _mismatches(market)[case]
    orders = list(market.orders())
    for index, fields in changes.items():
        orders[index] = orders[index].replace(**fields)
    # a zero requester cannot sign: any 65 bytes reach the requester check
    sig = {"request": b"\x00" * 65} if reason == "poco: request without requester" else None
    with boa.reverts(reason):
        market.match(*orders, sigs=sig)


def test_restrictions_that_name_the_matched_parties_pass(market, actors):
    app_order, dataset_order, pool_order, request = market.orders(with_dataset=True)
    app_order = app_order.replace(
        dataset_restrict=market.dataset,
        workerpool_restrict=market.workerpool,
        requester_restrict=actors["requester"].address,
    )
    dataset_order = dataset_order.replace(
        app_restrict=market.app,
        workerpool_restrict=market.workerpool,
        requester_restrict=actors["requester"].address,
    )
    pool_order = pool_order.replace(
        app_restrict=market.app,
        dataset_restrict=market.dataset,
        requester_restrict=actors["requester"].address,
        tag=tag_bytes(TAG_GPU | TAG_TEE),
    )
    request = request.replace(workerpool=market.workerpool, tag=tag_bytes(TAG_GPU))
    assert market.match(app_order, dataset_order, pool_order, request).volume == 1


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("app_restrict", "poco: dataset restricts apps"),
        ("workerpool_restrict", "poco: dataset restricts pools"),
        ("requester_restrict", "poco: dataset limits requesters"),
    ],
)
def test_dataset_restrictions_are_enforced(market, actors, field, reason):
    app_order, dataset_order, pool_order, request = market.orders(with_dataset=True)
    value = actors["w1"].address if field == "requester_restrict" else 999
    with boa.reverts(reason):
        market.match(app_order, dataset_order.replace(**{field: value}), pool_order, request)


def test_unknown_assets_are_refused(market):
    app_order, dataset_order, pool_order, request = market.orders()
    with boa.reverts("registry: unknown asset or wrong kind"):
        market.match(
            app_order.replace(app=999), dataset_order, pool_order, request.replace(app=999)
        )
    with boa.reverts("registry: unknown asset or wrong kind"):
        market.match(app_order, dataset_order, pool_order.replace(workerpool=market.app), request)


def test_requester_without_funds_is_refused(market, actors):
    with boa.env.prank(actors["requester"].address):
        market.hub.withdraw(market.hub.balance_of(actors["requester"].address))
    with boa.reverts("poco: requester balance too low"):
        market.deal()


def test_scheduler_without_stake_is_refused(market, actors):
    with boa.env.prank(actors["scheduler"].address):
        market.hub.withdraw(market.hub.balance_of(actors["scheduler"].address))
    with boa.reverts("poco: scheduler stake too low"):
        market.deal()


def test_volume_is_capped_by_the_smallest_order(market):
    app_order, dataset_order, pool_order, request = market.orders(volume=50, with_dataset=True)
    deal = market.match(
        app_order.replace(volume=7), dataset_order.replace(volume=9), pool_order, request
    )
    assert deal.volume == 7


def test_huge_volumes_do_not_overflow(market):
    app_order, dataset_order, pool_order, request = market.orders(volume=2**256 - 1)
    with boa.reverts("poco: requester balance too low"):
        market.match(
            app_order.replace(volume=2**256 - 1),
            dataset_order,
            pool_order.replace(volume=2**256 - 1),
            request,
        )


def test_empty_dataset_order_must_be_zero(market):
    app_order, _, pool_order, request = market.orders()
    assert market.match(app_order, DatasetOrder.none(), pool_order, request).dataset_owner == ZERO
    assert isinstance(app_order, AppOrder)
