"""Crashes and restarts: workers killed mid-task or after committing, a scheduler killed
mid-deal or between its finalize transaction and its database commit."""

from __future__ import annotations

import sqlite3
import time

from comptoir.chain import events as ev

from .apps import ECHO
from .conftest import APP_PRICE, POOL_PRICE, WORKERS_BASE, Pool, wait_for

SHARE = WORKERS_BASE * 2 // 6  # three fresh workers of equal weight


def _replicas(pool: Pool, deal: object, index: int = 0) -> list[dict]:
    view = pool.task(deal, index)  # type: ignore[arg-type]
    return [] if view is None else list(view["replicas"])


def test_a_worker_killed_mid_task_is_replaced(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    roles = ("w1", "w2", "w3", "w4")
    for w in roles:
        pool.start_worker(w)
    pool.wait_workers(roles)
    before = pool.balances()
    deal = pool.deal(app, trust=5, params="sleep=4")  # three replicas of a 4 s task

    running = wait_for(
        lambda: (
            [r for r in _replicas(pool, deal) if r["status"] == "running"]
            if len([r for r in _replicas(pool, deal) if r["status"] == "running"]) == 3
            else None
        ),
        30,
        "three running replicas",
        pool,
    )
    victim = next(w for w in roles if pool.accounts[w].address == running[0]["worker"])
    pool.workers[victim].kill()
    pool.start_worker(victim)  # back at once: its journal says it held a running replica
    wait_for(
        lambda: "worker.released_after_restart" in pool.workers[victim].tail(200),
        60,
        "the restarted worker to release its replica",
        pool,
    )
    pool.wait_settled(deal, 60)

    statuses = {r["worker"]: r["status"] for r in _replicas(pool, deal)}
    # released by the restarted worker, or lost first if its lease ran out before that; a
    # released replica was never committed, so the same worker may take it again and win
    assert statuses[pool.accounts[victim].address] in ("released", "lost", "revealed")
    assert sorted(statuses.values()).count("revealed") == 3
    winners = {w for w in roles if statuses.get(pool.accounts[w].address) == "revealed"}
    after = pool.balances()
    for w in roles:
        assert after[w] == before[w] + (SHARE if w in winners else 0), w
    assert after["requester"] == before["requester"] - (APP_PRICE + POOL_PRICE)


def test_a_restarted_worker_reveals_what_it_committed(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    pool.start_worker("w1")
    pool.wait_workers(("w1",))
    before = pool.balances()
    deal = pool.deal(app, trust=5)  # needs three: w1 commits and waits alone
    me = pool.accounts["w1"].address
    wait_for(
        lambda: [r for r in _replicas(pool, deal) if r["status"] == "committed"],
        30,
        "w1 to commit",
        pool,
    )
    pool.workers["w1"].kill()
    pool.start_worker("w1")  # same work dir: its journal holds the committed digest
    for w in ("w2", "w3"):
        pool.start_worker(w)
    pool.wait_settled(deal, 60)
    statuses = {r["worker"]: r["status"] for r in _replicas(pool, deal)}
    assert statuses[me] == "revealed"
    assert "worker.resume_committed" in pool.workers["w1"].tail(200)
    assert pool.balances()["w1"] == before["w1"] + SHARE


def test_a_scheduler_killed_mid_deal_completes_it_after_restart(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    roles = ("w1", "w2", "w3")
    for w in roles:
        pool.start_worker(w)
    pool.wait_workers(roles)
    before = pool.balances()
    start = pool["stranger"].block_number()
    deal = pool.deal(app, volume=2, trust=5, params="sleep=2")
    wait_for(
        lambda: len([r for r in _replicas(pool, deal) if r["status"] == "running"]) == 3,
        30,
        "the first task's replicas to run",
        pool,
    )
    assert pool.scheduler_proc is not None
    pool.scheduler_proc.kill()  # workers finish and cannot commit: they keep retrying
    time.sleep(3)
    pool.start_scheduler()
    pool.wait_settled(deal, 90)

    after = pool.balances()
    for w in roles:
        assert after[w] == before[w] + 2 * SHARE, w
    assert after["requester"] == before["requester"] - 2 * (APP_PRICE + POOL_PRICE)
    finalized = pool["stranger"].events(start, kinds=[ev.TaskFinalized])
    assert sorted(e.index for e in finalized) == [0, 1]  # type: ignore[attr-defined]

    # crash between the finalize transaction and the database commit: the restarted
    # scheduler finds the tasks ready again, sees them settled on-chain, sends nothing
    pool.scheduler_proc.stop()
    db = sqlite3.connect(pool.tmp / "scheduler.db")
    with db:
        db.execute("UPDATE scheduler_tasks SET status = 'ready'")
        db.execute("UPDATE scheduler_deals SET status = 'active'")
    db.close()
    pool.start_scheduler()
    wait_for(
        lambda: {pool.task_status(deal, i) for i in (0, 1)} == {"settled"},
        30,
        "the replayed tasks to be recognised as settled",
        pool,
    )
    assert pool.balances() == after
    assert len(pool["stranger"].events(start, kinds=[ev.TaskFinalized])) == 2
    pool.escrow_holds_everything()
