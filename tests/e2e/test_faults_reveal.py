"""Faults between commit and reveal: the scheduler killed with every replica committed,
storage frozen or killed before the results are uploaded, every replica's worker killed
mid-upload. Each ends in a finalized task paid exactly as the protocol says.

Timings (scheduler lease 4 s, reveal wait 5 s): each outage outlasts the reveal window
plus a lease, which is what used to turn these tasks into claims."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from comptoir import devnet as devnet_mod
from comptoir.chain.types import Deal

from .apps import ECHO
from .conftest import SCHEDULER_STAKE, Pool, wait_for
from .faultkit import (
    StorageProc,
    assert_all_counted,
    assert_paid_as_protocol_says,
    replica_statuses,
    report,
    wait_cached,
)

ROLES = ("w1", "w2", "w3")
REVEAL_WAIT, LEASE = 5, 4
WINDOW = REVEAL_WAIT + LEASE + 2  # an outage longer than the reveal window and a lease


def _committed_after(
    pool: Pool, fault: Callable[[StorageProc], None], sleep: int = 3
) -> tuple[StorageProc, Deal, dict[str, int]]:
    """A trust-5 deal for three workers whose results go to a storage process of their
    own (apps still come from their URL); `fault` hits that storage once the workers hold
    the app; returns when every replica has committed."""
    store = StorageProc(pool, pool.tmp / "results-store").start()
    app = pool.register_app({"main.py": ECHO})
    checksum = pool["stranger"].asset(app).checksum.hex()
    pool.start_scheduler(COMPTOIR_STORAGE_URL=store.url)
    for w in ROLES:
        pool.start_worker(w, COMPTOIR_STORAGE_URL=store.url)
    pool.wait_workers(ROLES)
    before = pool.balances()
    deal = pool.deal(app, trust=5, params=f"sleep={sleep}")
    wait_cached(pool, ROLES, checksum)
    fault(store)
    wait_for(lambda: pool.task_status(deal) == "revealing", 60, "every replica to commit", pool)
    return store, deal, before


def _worker_logs(pool: Pool) -> str:
    return "\n".join(pool.workers[w].tail(400) for w in ROLES)


@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_a_scheduler_stopped_between_commit_and_reveal_still_finalizes(
    pool: Pool, how: str
) -> None:
    # storage hangs for ~20 s: uploads, hence reveals, block
    store, deal, before = _committed_after(pool, StorageProc.freeze, sleep=4)
    assert pool.scheduler_proc is not None
    if how == "kill -9":
        pool.scheduler_proc.kill()
    else:
        pool.scheduler_proc.stop()
    time.sleep(WINDOW)  # down longer than the reveal window
    pool.start_scheduler(COMPTOIR_STORAGE_URL=store.url)
    time.sleep(REVEAL_WAIT + 3)  # back up, and the workers are still blocked past the window
    assert replica_statuses(pool, deal) == ["committed"] * 3
    store.thaw()
    started = time.monotonic()  # the last fault is over: time to recover from here
    pool.wait_settled(deal, 120)
    report(
        f"scheduler {how} between commit and reveal, storage frozen ~25 s",
        "finalized",
        time.monotonic() - started,
    )
    assert pool.task_status(deal) == "finalized"
    assert_all_counted(pool, deal)
    assert "scheduler.reveals_restarted" in pool.scheduler_proc.tail(2000)
    assert_paid_as_protocol_says(pool, before, ROLES)


def test_storage_killed_before_the_upload_delays_but_finalizes(pool: Pool) -> None:
    # uploads now fail at once (connection refused)
    store, deal, before = _committed_after(pool, StorageProc.kill)
    time.sleep(WINDOW + 6)  # storage down ~20 s in all
    assert replica_statuses(pool, deal) == ["committed"] * 3
    started = time.monotonic()
    store.start()  # same port, same blob folder
    pool.wait_settled(deal, 120)
    report("storage kill -9 before the upload (~20 s)", "finalized", time.monotonic() - started)
    assert_all_counted(pool, deal)
    assert "assignment.upload_retry" in _worker_logs(pool)
    assert "assignment.failed" not in _worker_logs(pool)  # nothing reported as a failure
    assert_paid_as_protocol_says(pool, before, ROLES)


def test_every_replica_worker_killed_mid_upload_finalizes_once_they_return(pool: Pool) -> None:
    store, deal, before = _committed_after(pool, StorageProc.freeze)
    time.sleep(1)  # their uploads are in flight, hanging on the frozen server
    for w in ROLES:
        pool.workers[w].kill()
    store.thaw()
    # gone past a lease and the reveal window: the scheduler drops their commitments ...
    wait_for(
        lambda: replica_statuses(pool, deal) == ["unrevealed"] * 3,
        30,
        "the silent replicas to be dropped",
        pool,
    )
    started = time.monotonic()
    for w in ROLES:  # ... and counts them again when they come back with their journals
        pool.start_worker(w, COMPTOIR_STORAGE_URL=store.url)
    pool.wait_settled(deal, 120)
    report("all replica workers kill -9 mid-upload", "finalized", time.monotonic() - started)
    assert_all_counted(pool, deal)
    assert "worker.resume_committed" in _worker_logs(pool)
    assert_paid_as_protocol_says(pool, before, ROLES)


def test_storage_down_past_the_deadline_margin_ends_in_an_exact_refund(pool: Pool) -> None:
    """An outage longer than the deal allows: the blocked replicas are dropped at the
    deadline margin and the claim refunds the requester exactly (chain time moved on with
    evm_increaseTime instead of waiting the category's ten minutes)."""
    _, deal, before = _committed_after(pool, StorageProc.kill)
    time.sleep(REVEAL_WAIT + 1)
    assert replica_statuses(pool, deal) == ["committed"] * 3  # still waited for
    now = devnet_mod.increase_time(pool.devnet.w3, 0)
    devnet_mod.increase_time(pool.devnet.w3, deal.final_deadline - now + 1)
    started = time.monotonic()
    pool.wait_settled(deal, 60)
    elapsed = time.monotonic() - started
    report("storage down past the deadline margin", "claimed, exact refund", elapsed)
    wait_for(lambda: pool.task_status(deal) == "claimed", 30, "the claim to be recorded", pool)
    assert replica_statuses(pool, deal) == ["unrevealed"] * 3
    after = pool.balances()
    expected = dict(before)
    expected["requester"] += SCHEDULER_STAKE  # price back, plus the scheduler's stake
    expected["scheduler"] -= SCHEDULER_STAKE
    assert after == expected
    pool.escrow_holds_everything()
