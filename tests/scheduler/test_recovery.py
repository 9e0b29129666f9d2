"""Recovery transitions: a restarted scheduler, workers blocked or offline during the
reveal, outages reported as failures, settlements a chain rollback undid."""

from __future__ import annotations

import time

from sqlalchemy import update

from comptoir.scheduler import state
from comptoir.scheduler.db import (
    COMMITTED,
    OPEN,
    READY,
    RELEASED,
    REVEALING,
    UNREVEALED,
    workers,
)

from .conftest import NOW, Pool

DIGEST = b"\x42" * 32
WAIT, LEASE = 30.0, 10.0


def _revealing(pool: Pool, names: tuple[str, ...] = ("a", "b", "c")) -> tuple[object, dict]:
    for w in names:
        pool.add_worker(w)
    deal = pool.add_deal(trust=5)  # three fresh agreeing workers
    got = {w: pool.next(w) for w in names}
    for w in names:
        pool.commit(w, got[w]["id"], deal, 0, DIGEST)
    assert pool.task(deal)["status"] == REVEALING
    return deal, got


def _silence(pool: Pool, names: tuple[str, ...], since: float) -> None:
    addrs = [pool.addr(n) for n in names]
    pool.tx(
        lambda c: c.execute(
            update(workers).where(workers.c.address.in_(addrs)).values(last_heartbeat=since)
        )
    )


def _tick(pool: Pool, now: float, chain_now: int = NOW) -> None:
    pool.tx(lambda c: state.reveal_tick(c, now, WAIT, LEASE, chain_now))


def _statuses(pool: Pool, deal: object) -> list[str]:
    return sorted(r["status"] for r in pool.task(deal)["replicas"])  # type: ignore[arg-type]


def test_a_restart_gives_the_reveal_window_back(pool: Pool) -> None:
    deal, _ = _revealing(pool)
    down_until = time.time() + 3 * WAIT  # the scheduler was down longer than the window
    _silence(pool, ("a", "b", "c"), time.time())
    assert pool.tx(lambda c: state.restart_clocks(c, down_until)) == 1
    _tick(pool, down_until + 1)
    assert pool.task(deal)["status"] == REVEALING
    assert _statuses(pool, deal) == [COMMITTED] * 3
    # without the restart reset the same tick drops all three
    _tick(pool, down_until + WAIT + LEASE + 1)
    assert _statuses(pool, deal) == [UNREVEALED] * 3


def test_a_blocked_member_that_heartbeats_keeps_the_window_open(pool: Pool) -> None:
    deal, _ = _revealing(pool)
    later = time.time() + 2 * WAIT
    _silence(pool, ("a", "b", "c"), later)  # heartbeating, but stuck uploading
    _tick(pool, later)
    assert pool.task(deal)["status"] == REVEALING
    # ... but not past two category times before the final deadline
    _tick(pool, later, chain_now=deal.final_deadline - 150)  # type: ignore[attr-defined]
    assert pool.task(deal)["status"] == OPEN
    assert _statuses(pool, deal) == [UNREVEALED] * 3
    errors = {r["error"] for r in pool.task(deal)["replicas"]}
    assert errors == {state.UNREVEALED_LATE}


def test_offline_members_are_dropped_then_counted_again_when_they_return(pool: Pool) -> None:
    deal, got = _revealing(pool)
    _silence(pool, ("a", "b", "c"), time.time() - 10 * LEASE)
    _tick(pool, time.time() + WAIT + 1)
    assert pool.task(deal)["status"] == OPEN
    assert _statuses(pool, deal) == [UNREVEALED] * 3
    # the first one back asks what to do: its commitment counts again
    view = pool.tx(lambda c: state.assignment_state(c, got["a"]["id"], pool.addr("a")))
    assert view["status"] == COMMITTED and view["action"] == "wait"
    for w in ("b", "c"):
        view = pool.tx(lambda c, w=w: state.assignment_state(c, got[w]["id"], pool.addr(w)))
    assert view["action"] == "reveal"
    assert pool.task(deal)["status"] == REVEALING
    pool.tx(
        lambda c: state.reveal(
            c, got["c"]["id"], pool.addr("c"), DIGEST, "ab" * 32, None, None, time.time()
        )
    )
    _tick(pool, time.time() + WAIT + 1)
    assert pool.task(deal)["status"] == READY


def test_late_members_are_not_revived(pool: Pool) -> None:
    deal, got = _revealing(pool)
    _tick(pool, time.time() + WAIT + 1, chain_now=deal.final_deadline - 1)  # type: ignore[attr-defined]
    view = pool.tx(lambda c: state.assignment_state(c, got["a"]["id"], pool.addr("a")))
    assert view["status"] == UNREVEALED and view["action"] == "abort"


def test_an_outage_releases_the_replica_without_counting_a_failure(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal()
    first = pool.next("a")
    out = pool.tx(
        lambda c: state.fail(
            c, first["id"], pool.addr("a"), "ChainUnreachable", "node down", time.time(), 1
        )
    )
    assert out["status"] == RELEASED
    assert pool.task(deal)["failures"] == 0 and pool.task(deal)["status"] == OPEN
    again = pool.next("a")  # the same worker may take it back once the node is up
    assert again is not None and again["id"] == first["id"]
    assert again["authorization"] and pool.task(deal)["replicas"][0]["status"] == "running"
    # a real failure still counts (max_attempts 1 here abandons the task)
    pool.tx(lambda c: state.fail(c, again["id"], pool.addr("a"), "download", "x", time.time(), 1))
    assert pool.task(deal)["status"] == "abandoned"
    assert pool.next("a") is None


def test_a_settlement_the_chain_lost_is_driven_again(pool: Pool) -> None:
    deal, got = _revealing(pool)
    for w in ("a", "b", "c"):
        pool.tx(
            lambda c, w=w: state.reveal(
                c, got[w]["id"], pool.addr(w), DIGEST, "ab" * 32, None, None, time.time()
            )
        )
    task = "0x" + deal.task_id(0).hex()  # type: ignore[attr-defined]
    pool.tx(lambda c: state.mark_tasks(c, [task], "finalized", time.time(), "0x" + "99" * 32))
    found = pool.tx(lambda c: state.settled_recently(c, NOW, "", 10))
    assert [t for t, _, _ in found] == [task]
    assert pool.tx(lambda c: state.settled_recently(c, deal.final_deadline, "", 10)) == []  # type: ignore[attr-defined]
    pool.tx(lambda c: state.unsettle(c, [task], time.time()))
    view = pool.task(deal)
    assert view["status"] == READY and view["finalize_tx"] is None
    batches = pool.tx(lambda c: state.ready_batches(c, NOW))
    assert [b.task_ids for b in batches] == [[task]]
    assert len(batches[0].outcomes[0].contributions) == 3


def test_a_deal_the_chain_lost_is_forgotten(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal()
    pool.next("a")
    deal_id = "0x" + deal.deal_id.hex()
    pool.tx(lambda c: state.forget_deal(c, deal_id))
    assert not pool.tx(lambda c: state.deal_known(c, deal_id))
    assert pool.next("a") is None


def test_a_result_nobody_uploaded_is_asked_of_the_other_members(pool: Pool) -> None:
    deal, got = _revealing(pool)

    def reveal(w: str, blob: str | None) -> None:
        pool.tx(
            lambda c: state.reveal(
                c, got[w]["id"], pool.addr(w), DIGEST, blob, None, None, time.time()
            )
        )

    def action(w: str) -> str:
        return str(
            pool.tx(lambda c: state.assignment_state(c, got[w]["id"], pool.addr(w)))["action"]
        )

    reveal("a", None)  # its result file was gone: the digest alone
    _tick(pool, time.time() + WAIT + 1)
    task = "0x" + deal.task_id(0).hex()  # type: ignore[attr-defined]
    pool.tx(lambda c: state.mark_tasks(c, [task], "finalized", time.time()))
    assert pool.task(deal)["result_blob"] is None
    assert action("b") == "reveal" and action("c") == "reveal"
    reveal("b", "cd" * 32)
    assert pool.task(deal)["result_blob"] == "cd" * 32
    assert pool.task(deal)["status"] == "finalized"
    assert action("c") == "done"  # uploaded once is enough
