"""Fast-path settlement, on-chain contributions, claims and callbacks."""

from __future__ import annotations

import boa
import pytest
from helpers import (
    APP_PRICE,
    POOL_PRICE,
    by_address,
    chain_id,
    digest_of,
    finalize,
    lock_stake,
    loser_sig,
    setup_market,
    winner_sig,
)

from comptoir.chain import eip712
from comptoir.chain.types import result_hash, result_seal
from conftest import load

GOOD, BAD, OTHER = digest_of("good"), digest_of("bad"), digest_of("other")


@pytest.fixture
def market(protocol, actors):
    return setup_market(protocol, actors)


def balances(market, *names):
    return {n: market.hub.balance_of(market.actors[n].address) for n in names}


def test_one_worker_settles_and_everyone_is_paid(market):
    deal = market.deal(volume=1)
    before = balances(market, "app_dev", "scheduler", "w1", "requester")
    finalize(market, deal, {0: (GOOD, ["w1"], [])})
    after = balances(market, "app_dev", "scheduler", "w1", "requester")
    assert after["app_dev"] - before["app_dev"] == APP_PRICE
    assert after["w1"] - before["w1"] == 90
    assert after["scheduler"] - before["scheduler"] == 10 + 30  # its share plus its stake back
    assert after["requester"] == before["requester"]
    assert market.hub.is_settled(deal.deal_id, 0)
    assert market.hub.score(market.actors["w1"].address) == 0  # no replication, no score


def test_three_workers_with_a_liar(market):
    deal = market.deal(volume=1, trust=2)
    before = balances(market, "scheduler", "w1", "w2", "w3")
    finalize(market, deal, {0: (GOOD, ["w1", "w2"], [("w3", BAD)])})
    after = balances(market, "scheduler", "w1", "w2", "w3")
    # the liar loses its stake (20) to the honest workers: (90 + 20) split evenly
    assert after["w3"] - before["w3"] == -20
    assert after["w1"] - before["w1"] == 55 and after["w2"] - before["w2"] == 55
    assert after["scheduler"] - before["scheduler"] == 40
    scores = [market.hub.score(market.actors[w].address) for w in ("w1", "w2", "w3")]
    assert scores == [1, 1, 0]


def test_a_wrong_result_wipes_the_liars_score(market):
    for _ in range(6):
        finalize(market, market.deal(trust=1), {0: (GOOD, ["w1", "w2", "w3"], [])})
    assert market.hub.score(market.actors["w3"].address) == 6
    finalize(market, market.deal(trust=2), {0: (GOOD, ["w1", "w2"], [("w3", BAD)])})
    assert market.hub.score(market.actors["w3"].address) == 0
    assert market.hub.score(market.actors["w1"].address) == 7


def test_bag_of_tasks_in_one_batch(market):
    deal = market.deal(volume=300)
    finalize(market, deal, {i: (digest_of(str(i)), ["w1"], []) for i in range(32)})
    # indices straddling bitmap words (127 tasks per word)
    finalize(market, deal, {i: (digest_of(str(i)), ["w1"], []) for i in range(120, 140)})
    finalize(market, deal, {i: (digest_of(str(i)), ["w1"], []) for i in range(280, 300)})
    settled = (0, 31, 120, 126, 127, 139, 280, 299)
    assert all(market.hub.is_settled(deal.deal_id, i) for i in settled)
    assert not any(market.hub.is_settled(deal.deal_id, i) for i in (32, 119, 140, 279))


def test_credibility_needs_enough_replicas(market):
    deal = market.deal(trust=3)  # one new worker: credibility 2/3, not above 1 - 1/3
    with boa.reverts("poco: consensus not reached"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])})
    finalize(market, deal, {0: (GOOD, ["w1", "w2"], [])})  # 4/5 > 2/3
    assert market.hub.is_settled(deal.deal_id, 0)


def test_rival_group_blocks_consensus(market):
    deal = market.deal(trust=2)
    with boa.reverts("poco: consensus not reached"):
        finalize(market, deal, {0: (GOOD, ["w1"], [("w2", BAD)])})
    finalize(market, deal, {0: (GOOD, ["w1", "w3", "w4"], [("w2", BAD)])})
    assert market.hub.is_settled(deal.deal_id, 0)


def test_only_the_scheduler_finalizes(market):
    deal = market.deal()
    with boa.reverts("poco: caller is not the scheduler"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])}, sender="stranger")


def test_forged_deal_is_unknown(market):
    deal = market.deal()
    with boa.reverts("poco: unknown deal"):
        finalize(market, deal.replace(workerpool_price=10**6), {0: (GOOD, ["w1"], [])})


def test_task_settles_once(market):
    deal = market.deal(volume=2)
    finalize(market, deal, {0: (GOOD, ["w1"], [])})
    with boa.reverts("poco: task already settled"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])})


def test_task_index_out_of_range(market):
    deal = market.deal(volume=2)
    with boa.reverts("poco: task index out of range"):
        finalize(market, deal, {2: (GOOD, ["w1"], [])})


def test_final_deadline_closes_the_fast_path(market):
    deal = market.deal()
    boa.env.time_travel(seconds=1000)
    with boa.reverts("poco: final deadline passed"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])})


def _raw_finalize(market, deal, tasks, winners, losers, data=b""):
    for worker, *_sig in winners:  # as the workers' agents do before they get work
        lock_stake(market.hub, worker)
    with boa.env.prank(market.actors["scheduler"].address):
        market.hub.finalize(deal.as_tuple(), tasks, winners, losers, data)


def test_signature_lists_are_checked(market):
    deal = market.deal(trust=2)
    w = by_address([winner_sig(market, n, deal, 0, GOOD) for n in ("w1", "w2")])
    with boa.reverts("poco: winners unsorted"):
        _raw_finalize(market, deal, [(0, GOOD, 2, 0)], [w[1], w[0]], [])
    with boa.reverts("poco: winners unsorted"):
        _raw_finalize(market, deal, [(0, GOOD, 2, 0)], [w[0], w[0]], [])
    with boa.reverts("poco: unused signatures"):
        _raw_finalize(market, deal, [(0, GOOD, 1, 0)], w, [])
    with boa.reverts("poco: empty batch"):
        _raw_finalize(market, deal, [], [], [])
    with boa.reverts("poco: task without winners"):
        _raw_finalize(market, deal, [(0, GOOD, 0, 0)], [], [])
    with boa.reverts("poco: bad contribution signature"):
        _raw_finalize(market, deal, [(0, BAD, 2, 0)], w, [])  # signatures are for GOOD
    _raw_finalize(market, deal, [(0, GOOD, 2, 0)], w, [])


def test_loser_lists_are_checked(market):
    deal = market.deal(trust=2)
    w = by_address([winner_sig(market, n, deal, 0, GOOD) for n in ("w1", "w2", "w3")])
    agreeing = loser_sig(market, "w4", deal, 0, GOOD)
    with boa.reverts("poco: loser agrees with winners"):
        _raw_finalize(market, deal, [(0, GOOD, 3, 1)], w, [agreeing])
    double = loser_sig(market, "w1", deal, 0, BAD)
    with boa.reverts("poco: worker is winner and loser"):
        _raw_finalize(market, deal, [(0, GOOD, 3, 1)], w, [double])
    liar = loser_sig(market, "w4", deal, 0, BAD)
    forged = (liar[0], liar[1], liar[2], liar[3], winner_sig(market, "w4", deal, 0, GOOD)[2])
    with boa.reverts("poco: bad contribution signature"):
        _raw_finalize(market, deal, [(0, GOOD, 3, 1)], w, [forged])
    _raw_finalize(market, deal, [(0, GOOD, 3, 1)], w, [liar])


def test_claim_refunds_requester_with_scheduler_stake(market):
    deal = market.deal(volume=3)
    finalize(market, deal, {1: (GOOD, ["w1"], [])})
    with (
        boa.env.prank(market.actors["stranger"].address),
        boa.reverts("poco: final deadline not reached"),
    ):
        market.hub.claim(deal.as_tuple(), [0, 2])
    boa.env.time_travel(seconds=1000)
    before = balances(market, "requester", "scheduler")
    with boa.env.prank(market.actors["stranger"].address):
        market.hub.claim(deal.as_tuple(), [0, 2])
        with boa.reverts("poco: task already settled"):
            market.hub.claim(deal.as_tuple(), [1])
        with boa.reverts("poco: nothing to claim"):
            market.hub.claim(deal.as_tuple(), [])
    after = balances(market, "requester", "scheduler")
    assert after["requester"] - before["requester"] == 2 * (APP_PRICE + POOL_PRICE + 30)
    assert after["scheduler"] == before["scheduler"]


# ------------------------------------------------------------------ callbacks


def _callback_deal(market, mode):
    receiver = load("CallbackReceiver", market.hub.address, mode)
    return receiver, market.deal(callback=receiver.address)


def test_callback_receives_the_result(market):
    receiver, deal = _callback_deal(market, 0)
    data = b"checkmate"
    finalize(market, deal, {0: (digest_of("checkmate"), ["w1"], [])}, callback_data=data)
    assert receiver.last_result() == data and receiver.last_task() == deal.task_id(0)


def test_callback_data_must_match_the_digest(market):
    _, deal = _callback_deal(market, 0)
    with boa.reverts("poco: callback data not result"):
        finalize(
            market, deal, {0: (digest_of("checkmate"), ["w1"], [])}, callback_data=b"stalemate"
        )


@pytest.mark.parametrize("mode", [1, 2])
def test_failing_callback_never_blocks_payment(market, mode):
    receiver, deal = _callback_deal(market, mode)
    before = balances(market, "w1")
    finalize(market, deal, {0: (digest_of("x"), ["w1"], [])}, callback_data=b"x")
    assert any(type(e).__name__ == "CallbackFailed" for e in market.hub.get_logs())
    assert market.hub.is_settled(deal.deal_id, 0)
    assert balances(market, "w1")["w1"] - before["w1"] == 90
    assert receiver.received() == 0


def test_callback_gas_cannot_be_starved(market):
    _, deal = _callback_deal(market, 0)
    tasks = [(0, digest_of("x"), 1, 0)]
    winners = [winner_sig(market, "w1", deal, 0, digest_of("x"))]
    with boa.env.prank(market.actors["scheduler"].address), boa.reverts():
        market.hub.finalize(deal.as_tuple(), tasks, winners, [], b"x", gas=150_000)
    assert not market.hub.is_settled(deal.deal_id, 0)


# ------------------------------------------------------------------ on-chain path


def _authorize(market, worker, deal, index):
    return eip712.sign_authorization(
        market.actors["scheduler"].account,
        market.actors[worker].address,
        deal.task_id(index),
        chain_id(),
        market.protocol.contributions.address,
    )


def _contribute(market, worker, deal, index, digest, auth=None):
    task = deal.task_id(index)
    address = market.actors[worker].address
    with boa.env.prank(address):
        market.protocol.contributions.contribute(
            deal.as_tuple(),
            index,
            result_hash(task, digest),
            result_seal(address, task, digest),
            auth if auth is not None else _authorize(market, worker, deal, index),
        )


def _reveal(market, worker, deal, index, digest):
    with boa.env.prank(market.actors[worker].address):
        market.protocol.contributions.reveal(deal.as_tuple(), index, digest)


def test_onchain_path_settles_a_task(market):
    c = market.protocol.contributions
    deal = market.deal(trust=3)
    before = balances(market, "w1", "w2", "w3", "scheduler")
    _contribute(market, "w1", deal, 0, GOOD)
    assert market.hub.held_stakes() == 20
    _contribute(market, "w3", deal, 0, BAD)
    _contribute(market, "w2", deal, 0, GOOD)
    assert c.task_status(deal.task_id(0)) == 1  # 4/(1+4+2) is not above 2/3 yet
    _contribute(market, "w4", deal, 0, GOOD)  # 8/(1+8+2) > 2/3: consensus
    assert c.task_status(deal.task_id(0)) == 2
    with boa.reverts("poco: task is on the chain path"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])})
    for w in ("w1", "w2", "w4"):
        _reveal(market, w, deal, 0, GOOD)
    with boa.env.prank(market.actors["scheduler"].address):
        c.finalize(deal.as_tuple(), 0, b"")
    after = balances(market, "w1", "w2", "w3", "scheduler")
    assert after["w3"] - before["w3"] == -20
    assert after["w1"] - before["w1"] == (90 + 20) // 3
    assert after["scheduler"] - before["scheduler"] == 10 + 30 + (90 + 20) % 3
    assert market.hub.held_stakes() == 0
    assert market.hub.is_settled(deal.deal_id, 0)


def test_onchain_contribution_needs_authorization(market):
    deal = market.deal()
    wrong = _authorize(market, "w2", deal, 0)
    with boa.reverts("contributions: worker not authorized by the scheduler"):
        _contribute(market, "w1", deal, 0, GOOD, auth=wrong)


def test_onchain_contribution_refusals(market):
    deal = market.deal(trust=3)
    _contribute(market, "w1", deal, 0, GOOD)
    with boa.reverts("contributions: already contributed"):
        _contribute(market, "w1", deal, 0, GOOD)
    with (
        boa.env.prank(market.actors["w1"].address),
        boa.reverts("contributions: empty result hash"),
    ):
        market.protocol.contributions.contribute(
            deal.as_tuple(), 0, b"\x00" * 32, b"\x00" * 32, b""
        )
    with boa.env.prank(market.actors["w2"].address):
        market.hub.withdraw(market.hub.balance_of(market.actors["w2"].address))
    with boa.reverts("poco: worker stake too low"):
        _contribute(market, "w2", deal, 0, GOOD)
    boa.env.time_travel(seconds=700)
    with boa.reverts("poco: past contribution deadline"):
        _contribute(market, "w3", deal, 0, GOOD)


def test_reveal_checks(market):
    deal = market.deal(trust=1)
    _contribute(market, "w1", deal, 0, GOOD)
    with boa.reverts("contributions: digest does not match the result hash"):
        _reveal(market, "w1", deal, 0, BAD)
    with boa.reverts("contributions: nothing to reveal"):
        _reveal(market, "w2", deal, 0, GOOD)
    _reveal(market, "w1", deal, 0, GOOD)
    with boa.reverts("contributions: nothing to reveal"):
        _reveal(market, "w1", deal, 0, GOOD)


def test_reopen_after_silent_consensus(market):
    c = market.protocol.contributions
    deal = market.deal(trust=1)
    _contribute(market, "w1", deal, 0, GOOD)
    with boa.env.prank(market.actors["scheduler"].address):
        with boa.reverts("contributions: reveal deadline not reached"):
            c.reopen(deal.as_tuple(), 0)
        boa.env.time_travel(seconds=201)
        c.reopen(deal.as_tuple(), 0)
    assert c.task_status(deal.task_id(0)) == 1
    _contribute(market, "w2", deal, 0, GOOD)
    _reveal(market, "w2", deal, 0, GOOD)
    before = balances(market, "w1", "w2")
    with boa.env.prank(market.actors["scheduler"].address):
        c.finalize(deal.as_tuple(), 0, b"")
    after = balances(market, "w1", "w2")
    assert after["w1"] == before["w1"]  # rejected: its held stake is gone
    assert after["w2"] - before["w2"] == 90 + 20 + 20  # reward, the silent one's stake, own stake


def test_finalize_onchain_waits_for_reveals(market):
    c = market.protocol.contributions
    deal = market.deal(trust=3)
    for w in ("w1", "w2"):
        _contribute(market, w, deal, 0, GOOD)
    _reveal(market, "w1", deal, 0, GOOD)
    with boa.env.prank(market.actors["scheduler"].address):
        with boa.reverts("contributions: waiting for reveals"):
            c.finalize(deal.as_tuple(), 0, b"")
        boa.env.time_travel(seconds=201)
        c.finalize(deal.as_tuple(), 0, b"")
    assert market.hub.is_settled(deal.deal_id, 0)


def test_claim_returns_onchain_stakes(market):
    deal = market.deal(trust=3)
    _contribute(market, "w1", deal, 0, GOOD)
    before = balances(market, "w1")
    boa.env.time_travel(seconds=1000)
    with boa.env.prank(market.actors["stranger"].address):
        market.hub.claim(deal.as_tuple(), [0])
    assert balances(market, "w1")["w1"] - before["w1"] == 20
    assert market.hub.held_stakes() == 0


def test_hooks_are_reserved_to_the_contributions_contract(market):
    deal = market.deal()
    with boa.env.prank(market.actors["stranger"].address):
        with boa.reverts("poco: caller not Contributions"):
            market.hub.onchain_open(deal.as_tuple(), 0, market.actors["stranger"].address)
        with boa.reverts("poco: caller is not the deployer"):
            market.hub.set_onchain_path(market.actors["stranger"].address)


# ------------------------------------------------------------------ remaining refusals


def test_too_many_contributions_in_one_task(market):
    deal = market.deal()
    with boa.reverts("poco: too many contributions"):
        _raw_finalize(market, deal, [(0, GOOD, 17, 0)], [], [])


def test_losers_must_be_sorted(market):
    deal = market.deal(trust=1)
    w = by_address([winner_sig(market, n, deal, 0, GOOD) for n in ("w1", "w2")])
    losers = by_address([loser_sig(market, n, deal, 0, BAD) for n in ("w3", "w4")])
    with boa.reverts("poco: losers unsorted"):
        _raw_finalize(market, deal, [(0, GOOD, 2, 2)], w, [losers[1], losers[0]])
    _raw_finalize(market, deal, [(0, GOOD, 2, 2)], w, losers)
    assert market.hub.is_settled(deal.deal_id, 0)


def test_callback_deals_settle_one_task_per_call(market):
    receiver = load("CallbackReceiver", market.hub.address, 0)
    deal = market.deal(volume=2, callback=receiver.address)
    digest = digest_of("x")
    with boa.reverts("poco: one callback task a call"):
        finalize(
            market, deal, {0: (digest, ["w1"], []), 1: (digest, ["w1"], [])}, callback_data=b"x"
        )
    finalize(market, deal, {1: (digest, ["w1"], [])}, callback_data=b"x")
    assert receiver.received() == 1


def test_starved_callback_reverts_with_its_reason(market):
    receiver = load("CallbackReceiver", market.hub.address, 0)
    deal = market.deal(callback=receiver.address)
    tasks = [(0, digest_of("x"), 1, 0)]
    winners = [winner_sig(market, "w1", deal, 0, digest_of("x"))]
    lock_stake(market.hub, market.actors["w1"].address)
    with (
        boa.env.prank(market.actors["scheduler"].address),
        boa.reverts("poco: gas too low for callback"),
    ):
        market.hub.finalize(deal.as_tuple(), tasks, winners, [], b"x", gas=90_000)


def test_dataset_price_above_request_maximum(market):
    app_order, dataset_order, pool_order, request = market.orders(with_dataset=True)
    with boa.reverts("poco: dataset price above max"):
        market.match(app_order, dataset_order, pool_order, request.replace(dataset_max_price=1))


def test_onchain_path_is_linked_once(market):
    with boa.env.prank(market.protocol.owner), boa.reverts("poco: already linked"):
        market.hub.set_onchain_path(market.actors["stranger"].address)


def test_onchain_scheduler_only_actions(market):
    c = market.protocol.contributions
    deal = market.deal(trust=1)
    _contribute(market, "w1", deal, 0, GOOD)
    with boa.env.prank(market.actors["stranger"].address):
        with boa.reverts("contributions: caller is not the scheduler"):
            c.reopen(deal.as_tuple(), 0)
        with boa.reverts("contributions: caller is not the scheduler"):
            c.finalize(deal.as_tuple(), 0, b"")


def test_onchain_task_state_refusals(market):
    c = market.protocol.contributions
    deal = market.deal(volume=2, trust=3)
    with boa.reverts("contributions: no on-chain contribution for this task"):
        _reveal(market, "w1", deal, 1, GOOD)
    _contribute(market, "w1", deal, 0, GOOD)
    with boa.reverts("contributions: task is not revealing"):
        _reveal(market, "w1", deal, 0, GOOD)
    _contribute(market, "w2", deal, 0, GOOD)  # consensus: 4/5 > 2/3
    with boa.reverts("contributions: task is not accepting contributions"):
        _contribute(market, "w3", deal, 0, GOOD)
    _reveal(market, "w1", deal, 0, GOOD)
    boa.env.time_travel(seconds=201)
    with boa.reverts("contributions: reveal deadline passed"):
        _reveal(market, "w2", deal, 0, GOOD)
    with (
        boa.env.prank(market.actors["scheduler"].address),
        boa.reverts("contributions: a winner revealed; finalize instead"),
    ):
        c.reopen(deal.as_tuple(), 0)


def test_reveal_refuses_minority_and_bad_seal(market):
    deal = market.deal(trust=3)
    task = deal.task_id(0)
    w4 = market.actors["w4"].address
    with boa.env.prank(w4):  # right hash, seal made for another digest
        market.protocol.contributions.contribute(
            deal.as_tuple(),
            0,
            result_hash(task, GOOD),
            result_seal(w4, task, OTHER),
            _authorize(market, "w4", deal, 0),
        )
    _contribute(market, "w3", deal, 0, BAD)
    _contribute(market, "w1", deal, 0, GOOD)  # 4/(1+4+2) not above 2/3
    _contribute(market, "w2", deal, 0, GOOD)  # 8/11: consensus on GOOD
    with boa.reverts("contributions: contribution is not the consensus"):
        _reveal(market, "w3", deal, 0, BAD)
    with boa.reverts("contributions: digest does not match the seal"):
        _reveal(market, "w4", deal, 0, GOOD)
    _reveal(market, "w1", deal, 0, GOOD)


def test_settled_task_refuses_onchain_reveals(market):
    deal = market.deal(trust=3)
    _contribute(market, "w1", deal, 0, GOOD)
    boa.env.time_travel(seconds=1000)
    with boa.env.prank(market.actors["stranger"].address):
        market.hub.claim(deal.as_tuple(), [0])
    with boa.reverts("contributions: task already settled"):
        _reveal(market, "w1", deal, 0, GOOD)


def test_at_most_sixteen_onchain_contributions(market):
    deal = market.deal(trust=100)  # sixteen rival groups: credibility never reached
    for i in range(16):
        address = boa.env.generate_address(f"extra{i}")
        with boa.env.prank(market.protocol.owner):
            market.protocol.token.mint(address, 1000)
        with boa.env.prank(address):
            market.protocol.token.approve(market.hub.address, 1000)
            market.hub.deposit(1000)
        auth = eip712.sign_authorization(
            market.actors["scheduler"].account,
            address,
            deal.task_id(0),
            chain_id(),
            market.protocol.contributions.address,
        )
        task = deal.task_id(0)
        with boa.env.prank(address):
            market.protocol.contributions.contribute(
                deal.as_tuple(),
                0,
                result_hash(task, digest_of(f"r{i}")),
                result_seal(address, task, digest_of(f"r{i}")),
                auth,
            )
    with boa.reverts("contributions: too many contributions"):
        _contribute(market, "w1", deal, 0, GOOD)


def test_claim_gives_rejected_stakes_to_the_requester(market):
    c = market.protocol.contributions
    deal = market.deal(trust=1)
    _contribute(market, "w1", deal, 0, GOOD)
    boa.env.time_travel(seconds=201)
    with boa.env.prank(market.actors["scheduler"].address):
        c.reopen(deal.as_tuple(), 0)  # w1 never revealed: rejected
    _contribute(market, "w2", deal, 0, BAD)
    before = balances(market, "w1", "w2", "requester")
    boa.env.time_travel(seconds=1000)
    with boa.env.prank(market.actors["stranger"].address):
        market.hub.claim(deal.as_tuple(), [0])
    after = balances(market, "w1", "w2", "requester")
    assert after["w1"] == before["w1"]
    assert after["w2"] - before["w2"] == 20
    assert after["requester"] - before["requester"] == APP_PRICE + POOL_PRICE + 30 + 20
    assert market.hub.held_stakes() == 0


def test_winner_without_stake_is_refused(market):
    deal = market.deal()
    with boa.env.prank(market.actors["w1"].address):
        market.hub.withdraw(market.hub.balance_of(market.actors["w1"].address) - 19)
    with boa.reverts("poco: winner stake too low"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])})
    market.protocol.fund(market.actors["w1"], 1)  # exactly the stake (20) is enough
    finalize(market, deal, {0: (GOOD, ["w1"], [])})
    assert market.hub.is_settled(deal.deal_id, 0)


# ---------------------------------------------------------------- stake locks and minimum stake


def test_a_winner_whose_stake_could_leave_before_the_final_deadline_is_refused(market):
    deal = market.deal(trust=1)
    worker = market.actors["w1"].address
    with boa.reverts("poco: winner stake not locked"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])}, lock=False)
    # a lock ending one second too early is not enough
    with boa.env.prank(worker):
        market.hub.lock(deal.final_deadline - 1)
    with boa.reverts("poco: winner stake not locked"):
        finalize(market, deal, {0: (GOOD, ["w1"], [])}, lock=False)
    with boa.env.prank(worker):
        market.hub.lock(deal.final_deadline)
    finalize(market, deal, {0: (GOOD, ["w1"], [])}, lock=False)
    assert market.hub.is_settled(deal.deal_id, 0)
    # and until then the stake cannot leave
    with boa.env.prank(worker), boa.reverts("escrow: balance locked"):
        market.hub.withdraw(1)


def test_a_liar_that_locked_keeps_its_stake_seizable(market):
    deal = market.deal(trust=3)
    liar = market.actors["w4"].address
    lock_stake(market.hub, liar)
    with boa.env.prank(liar), boa.reverts("escrow: balance locked"):
        market.hub.withdraw(market.hub.balance_of(liar))
    before = market.hub.balance_of(liar)
    finalize(market, deal, {0: (GOOD, ["w1", "w2", "w3"], [("w4", BAD)])})
    assert market.hub.balance_of(liar) == before - deal.worker_stake


def test_a_deal_without_worker_stake_needs_no_lock(market):
    with boa.env.prank(market.actors["scheduler"].address):
        free_pool = market.protocol.registry.register_workerpool("free", 0, 10)
    market.workerpool = free_pool
    deal = market.deal(trust=1)
    assert deal.worker_stake == 0
    finalize(market, deal, {0: (GOOD, ["w1"], [])}, lock=False)
    assert market.hub.is_settled(deal.deal_id, 0)


def test_the_match_refuses_a_pool_staking_less_than_the_request_asks(market):
    # the pool stakes 20 % of its price of 100: 20 per contribution
    with boa.reverts("poco: pool stakes below request"):
        market.deal(min_worker_stake=21)
    deal = market.deal(min_worker_stake=20)
    assert deal.worker_stake == 20


def test_a_pool_that_lowers_its_stake_after_the_request_was_signed_cannot_take_it(market):
    orders = market.orders(min_worker_stake=20)  # the requester saw 20 % and signed
    with boa.env.prank(market.actors["scheduler"].address):
        market.protocol.registry.set_workerpool_policy(market.workerpool, 5, 10)
    with boa.reverts("poco: pool stakes below request"):
        market.match(*orders)
