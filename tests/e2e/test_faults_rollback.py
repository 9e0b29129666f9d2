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
