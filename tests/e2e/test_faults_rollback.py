"""A chain rolled back after a finalize (evm_revert to a snapshot taken after the match):
the settlement vanished, so the scheduler, whose database says finalized and whose nonce
cache is ahead of the chain, must see it, resync, and settle the task again, once."""

from __future__ import annotations

import time

from comptoir import devnet as devnet_mod
from comptoir.chain import events as ev

from .apps import ECHO
from .conftest import Pool, wait_for
from .faultkit import assert_all_counted, assert_paid_as_protocol_says, report

ROLES = ("w1", "w2", "w3")


def test_a_settlement_undone_by_a_rollback_is_settled_again(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    before = pool.balances()
    start = pool["stranger"].block_number()
    # the workers lock their stakes before they register: the snapshot below keeps the
    # locks (a rollback deep enough to drop them too is another fault: their results
    # could not be paid until they lock again)
    for w in ROLES:
        pool.start_worker(w)
    pool.wait_workers(ROLES)
    w3 = pool.devnet.w3
    deal = pool.deal(app, trust=5)
    saved = devnet_mod.snapshot(w3)  # after the match, before any settlement
    pool.wait_settled(deal, 90)
    # the chain settles before the scheduler reads the receipt and records it
    wait_for(lambda: pool.task_status(deal) == "finalized", 30, "the database to agree", pool)
    first_tx = (pool.task(deal) or {}).get("finalize_tx")
    assert first_tx

    devnet_mod.revert(w3, saved)  # the chain forgets the settlement block
    assert not pool["stranger"].is_settled(deal.deal_id, 0)
    started = time.monotonic()
    pool.wait_settled(deal, 90)
    report("chain rolled back after the finalize", "finalized again", time.monotonic() - started)

    wait_for(lambda: pool.task_status(deal) == "finalized", 30, "the database to agree", pool)
    assert_all_counted(pool, deal)
    finalized = pool["stranger"].events(start, kinds=[ev.TaskFinalized])
    assert [e.index for e in finalized] == [0]  # type: ignore[attr-defined]
    assert pool.scheduler_proc is not None
    log = pool.scheduler_proc.tail(2000)
    assert "reconcile.settlement_undone" in log
    assert "chain.nonce_resync" in log  # its cached nonce was ahead of the rolled-back chain
    assert_paid_as_protocol_says(pool, before, ROLES)


def test_a_stake_lock_undone_by_a_rollback_is_locked_again(pool: Pool) -> None:
    """A rollback deep enough to drop a worker's lock transaction: its cached lock says
    locked, the chain says not, and the hub pays no winner whose stake is not locked. The
    worker reads its lock from the chain again before it commits and locks again; the
    task settles and pays it."""
    app = pool.register_app({"main.py": ECHO})
    w3 = pool.devnet.w3
    worker = pool["w1"]
    saved = devnet_mod.snapshot(w3)  # the deposits made, no lock yet
    pool.start_scheduler()
    proc = pool.start_worker("w1")
    pool.wait_workers(("w1",))
    wait_for(lambda: worker.locked_until() > 0, 30, "the worker's stake lock", pool)

    devnet_mod.revert(w3, saved)  # the chain forgets the lock
    assert worker.locked_until() == 0
    before = worker.balance()
    first = pool["stranger"].block_number()
    started = time.monotonic()
    deal = pool.deal(app, trust=1)
    pool.wait_settled(deal, 90)
    report(
        "chain rolled back past a worker's stake lock",
        "locked again, settled",
        time.monotonic() - started,
    )

    assert worker.locked_until() >= deal.final_deadline
    wait_for(lambda: "worker.stake_lock_lost" in proc.tail(4000), 10, "the worker's log", pool)
    assert proc.tail(4000).count("worker.stake_locked") >= 2  # at start, then again
    finalized = pool["stranger"].events(first, kinds=[ev.TaskFinalized])
    assert [e.index for e in finalized] == [0]  # type: ignore[attr-defined]
    assert worker.balance() > before  # paid as the winner
