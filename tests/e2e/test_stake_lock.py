"""The withdrawal attack through the real stack: a liar that commits and then tries to
take its stake out before the batch settles cannot (the worker agent locked it, the hub
refuses), and the scheduler gives no replica to a worker whose stake is not locked until
the deal's final deadline."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from comptoir.exceptions import TransactionRejected
from comptoir.worker.client import SchedulerClient

from .apps import ECHO
from .conftest import WORKER_STAKE, WORKERS_BASE, Pool, wait_for


def test_a_committed_liar_cannot_withdraw_its_stake_before_settlement(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    pool.start_worker("w4", COMPTOIR_WORKER_FAULT="lie")
    pool.wait_workers(("w4",))
    liar = pool["w4"]
    before = pool.balances()

    deal = pool.deal(app, trust=3)
    wait_for(
        lambda: any(
            r["worker"] == liar.address and r["status"] == "committed"
            for r in (pool.task(deal) or {}).get("replicas", [])
        ),
        60,
        "the liar to commit",
        pool,
    )
    # the agent locked its stake past the deal's final deadline before it got the replica
    assert liar.locked_until() >= deal.final_deadline
    with pytest.raises(TransactionRejected, match="locked until"):
        liar.withdraw(liar.balance())  # the client's pre-check
    with pytest.raises(TransactionRejected) as refused:
        liar._send(liar.hub, "withdraw", liar.balance())  # past the pre-check: the hub
    assert refused.value.reason == "escrow: balance locked"

    for w in ("w1", "w2", "w3"):
        pool.start_worker(w)
    pool.wait_settled(deal)
    after = pool.balances()
    assert after["w4"] == before["w4"] - WORKER_STAKE  # seized: the lie cost its stake
    share = (WORKERS_BASE + WORKER_STAKE) * 2 // 6
    for w in ("w1", "w2", "w3"):
        assert after[w] == before[w] + share, w
    pool.escrow_holds_everything()


def test_an_unlocked_worker_is_told_to_lock_and_gets_work_once_it_has(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler(COMPTOIR_SCHEDULER_STANDING_TTL="0.5")
    deal = pool.deal(app, trust=3)
    wait_for(lambda: pool.task(deal) is not None, 30, "the scheduler to see the deal", pool)
    stranger = pool["stranger"]  # deposited, never locked: a worker that skips the lock
    assert stranger.locked_until() == 0

    async def scenario() -> dict[str, Any] | None:
        client = SchedulerClient(pool.scheduler_url, pool.accounts["stranger"], {"cpus": 1})
        try:
            assert await client.next_work() is None
            assert client.lock_needed == deal.final_deadline
            assert client.wait_reason is not None and "lock" in client.wait_reason
            # the same registration: the scheduler reads the new lock once its read is stale
            await asyncio.to_thread(stranger.lock, deal.final_deadline)
            for _ in range(100):
                got = await client.next_work()
                if got is not None:
                    return got
                await asyncio.sleep(0.2)
            return None
        finally:
            await client.aclose()

    got = asyncio.run(scenario())
    assert got is not None and got["task_id"] == "0x" + deal.task_id(0).hex()
