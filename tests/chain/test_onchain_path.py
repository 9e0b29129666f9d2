"""On-chain contribution path (Contributions contract) and claims after the deadline, on anvil."""

from __future__ import annotations

import pytest

from comptoir.chain import events as ev
from comptoir.chain.client import TASK_ACTIVE, TASK_DONE, TASK_REVEALING
from comptoir.chain.deploy import TEST_CATEGORY
from comptoir.chain.types import result_hash
from comptoir.devnet import Devnet, increase_time
from comptoir.exceptions import TransactionRejected

from .conftest import APP_PRICE, POOL_PRICE, Market

TIME_REF = TEST_CATEGORY[1]
STAKE = POOL_PRICE * 30 // 100
WORKER_STAKE = POOL_PRICE * 25 // 100
WORKERS_BASE = POOL_PRICE * 90 // 100


def test_contribute_reveal_finalize_onchain(market: Market) -> None:
    start = market["stranger"].block_number()
    deal = market.deal(volume=1, trust=3)
    task = deal.task_id(0)
    digest = b"\x42" * 32
    before = market.balances()
    held_before = market["stranger"].held_stakes()

    for worker in ("w1", "w2"):
        auth = market["scheduler"].authorize(market[worker].address, task)
        market[worker].contribute(deal, 0, digest, auth)
    # two agreeing workers of weight 2 reach trust 3: 4 * 3 > (1 + 4) * 2
    assert market["stranger"].task_status(task) == TASK_REVEALING
    assert market["stranger"].held_stakes() == held_before + 2 * WORKER_STAKE
    assert market["w1"].balance() == before["w1"] - WORKER_STAKE

    with pytest.raises(TransactionRejected) as info:
        market["scheduler"].finalize_onchain(deal, 0)
    assert info.value.reason == "contributions: no revealed result"
    market["w1"].reveal(deal, 0, digest)
    with pytest.raises(TransactionRejected) as info:  # w2 may still reveal
        market["scheduler"].finalize_onchain(deal, 0)
    assert info.value.reason == "contributions: waiting for reveals"
    market["w2"].reveal(deal, 0, digest)
    emitted = market["scheduler"].finalize_onchain(deal, 0)

    finalized = [e for e in emitted if isinstance(e, ev.TaskFinalized)]
    assert [(e.index, e.digest) for e in finalized] == [(0, digest)]
    assert market["stranger"].task_status(task) == TASK_DONE
    assert market["stranger"].is_settled(deal.deal_id, 0)
    share = WORKERS_BASE * 2 // 4
    after = market.balances()
    assert after["w1"] == before["w1"] + share
    assert after["w2"] == before["w2"] + share
    assert after["app_dev"] == before["app_dev"] + APP_PRICE
    # stake back (locked at the match, before `before`) + the pool price the workers left
    assert after["scheduler"] == before["scheduler"] + STAKE + POOL_PRICE - 2 * share
    assert market["stranger"].held_stakes() == held_before
    assert market["stranger"].score(market["w1"].address) == 1  # replicated
    # the whole story, read back from the chain's logs
    kinds = [ev.Contributed, ev.ConsensusReached, ev.Revealed, ev.TaskFinalized]
    story = market["stranger"].events(start, kinds=kinds)
    assert [type(e).__name__ for e in story] == [
        "Contributed",
        "Contributed",
        "ConsensusReached",
        "Revealed",
        "Revealed",
        "TaskFinalized",
    ]
    assert {e.task_id for e in story} == {task}  # type: ignore[attr-defined]
    assert story[2].result_hash == result_hash(task, digest)  # type: ignore[attr-defined]


def test_silent_consensus_is_reopened_and_its_stake_seized(market: Market) -> None:
    deal = market.deal(volume=1, trust=1)
    task = deal.task_id(0)
    digest = b"\x07" * 32
    before = market.balances()
    scheduler = market["scheduler"]
    market["w1"].contribute(deal, 0, digest, scheduler.authorize(market["w1"].address, task))
    assert market["stranger"].task_status(task) == TASK_REVEALING  # trust 1: one is enough

    with pytest.raises(TransactionRejected) as info:
        scheduler.reopen(deal, 0)
    assert info.value.reason == "contributions: reveal deadline not reached"
    increase_time(scheduler.w3, 2 * TIME_REF + 1)  # reveal window is 2/3 of (final - contribution)
    scheduler.reopen(deal, 0)  # w1 never revealed
    assert market["stranger"].task_status(task) == TASK_ACTIVE

    market["w2"].contribute(deal, 0, digest, scheduler.authorize(market["w2"].address, task))
    market["w2"].reveal(deal, 0, digest)
    scheduler.finalize_onchain(deal, 0)

    after = market.balances()
    assert after["w1"] == before["w1"] - WORKER_STAKE
    assert after["w2"] == before["w2"] + WORKERS_BASE + WORKER_STAKE  # w1's stake is its bonus
    assert after["scheduler"] == before["scheduler"] + STAKE + POOL_PRICE - WORKERS_BASE


def test_claim_after_final_deadline_refunds_requester_and_onchain_workers(
    market: Market, chain: Devnet
) -> None:
    deal = market.deal(volume=2, trust=3)
    task0 = deal.task_id(0)
    auth = market["scheduler"].authorize(market["w1"].address, task0)
    market["w1"].contribute(deal, 0, b"\x01" * 32, auth)  # alone: no consensus at trust 3
    before = market.balances()
    held = market["stranger"].held_stakes()

    with pytest.raises(TransactionRejected, match="final deadline"):
        market["stranger"].claim(deal, [0, 1])
    increase_time(chain.w3, 10 * TIME_REF + 1)
    with pytest.raises(TransactionRejected, match="only be claimed now"):
        market["scheduler"].finalize_tasks(deal, [])  # too late for the scheduler
    claimed = market["stranger"].claim(deal, [1, 0])

    assert sorted(e.index for e in claimed) == [0, 1]
    after = market.balances()
    per_task = APP_PRICE + POOL_PRICE + STAKE  # price back plus the scheduler's forfeited stake
    assert after["requester"] == before["requester"] + 2 * per_task
    assert after["scheduler"] == before["scheduler"]  # its stake was locked, now gone
    assert after["w1"] == before["w1"] + WORKER_STAKE  # on-chain contributor not at fault
    assert market["stranger"].held_stakes() == held - WORKER_STAKE
    assert all(market["stranger"].is_settled(deal.deal_id, i) for i in (0, 1))
    with pytest.raises(TransactionRejected) as info:
        market["stranger"].claim(deal, [0])
    assert info.value.reason == "poco: task already settled"
    assert str(info.value) == "This task is already finalized or claimed."
