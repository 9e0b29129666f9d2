"""Worker slots: a worker runs up to its advertised number of replicas at once, never two
replicas of one task."""

from __future__ import annotations

import time

from comptoir.scheduler import state
from comptoir.scheduler.db import RUNNING

from .conftest import Pool

DIGEST = b"\x42" * 32


def test_a_worker_gets_as_many_tasks_as_its_slots(pool: Pool) -> None:
    pool.add_worker("a", slots=2)
    deal = pool.add_deal(volume=5, trust=1)
    first, second = pool.next("a"), pool.next("a")
    assert first is not None and second is not None
    assert {first["index"], second["index"]} == {0, 1}
    assert pool.next("a") is None  # both slots busy
    assert pool.tx(lambda c: state.running_replicas(c, pool.addr("a"))) == 2
    # a committed replica no longer holds a slot: the next task comes
    pool.commit("a", first["id"], deal, first["index"], DIGEST)
    third = pool.next("a")
    assert third is not None and third["index"] == 2
    assert pool.next("a") is None


def test_one_slot_means_one_task_at_a_time(pool: Pool) -> None:
    pool.add_worker("a", slots=1)
    pool.add_deal(volume=3, trust=1)
    assert pool.next("a") is not None
    assert pool.next("a") is None


def test_a_worker_that_advertises_nothing_is_not_capped(pool: Pool) -> None:
    pool.add_worker("a")  # slots None: an older caller of the state layer
    pool.add_deal(volume=3, trust=1)
    assert [pool.next("a") is not None for _ in range(4)] == [True, True, True, False]


def test_free_slots_never_take_a_second_replica_of_one_task(pool: Pool) -> None:
    pool.add_worker("a", slots=4)
    replicated = pool.add_deal(volume=1, trust=5)  # needs three replicas (fresh workers)
    got = pool.next("a")
    assert got is not None and got["task_id"] == "0x" + replicated.task_id(0).hex()
    assert pool.next("a") is None  # slots free, but only that task is open
    other = pool.add_deal(volume=1, trust=5)
    again = pool.next("a")
    assert again is not None and again["task_id"] == "0x" + other.task_id(0).hex()
    view = pool.task(replicated)
    assert [r["worker"] for r in view["replicas"]] == [pool.addr("a")]
    assert [r["status"] for r in view["replicas"]] == [RUNNING]


def test_slots_are_listed_with_the_workers(pool: Pool) -> None:
    pool.add_worker("a", slots=3)
    pool.add_worker("b")
    listed = {w["address"]: w["slots"] for w in pool.tx(state.worker_list)}
    assert listed == {pool.addr("a"): 3, pool.addr("b"): None}


def running(pool: Pool, name: str) -> int:
    return int(pool.tx(lambda c: state.running_replicas(c, pool.addr(name))))


def test_every_way_out_of_running_frees_the_slot(pool: Pool) -> None:
    pool.add_worker("a", slots=1)
    pool.add_deal(volume=4, trust=1)
    now = time.time()
    # released by the worker
    got = pool.next("a")
    assert got is not None and running(pool, "a") == 1 and pool.next("a") is None
    pool.tx(lambda c: state.release(c, got["id"], pool.addr("a"), now))
    assert running(pool, "a") == 0
    # failed
    got = pool.next("a")
    assert got is not None and running(pool, "a") == 1
    pool.tx(lambda c: state.fail(c, got["id"], pool.addr("a"), "Crash", "x", now, 5))
    assert running(pool, "a") == 0
    # lost: silent past its lease
    got = pool.next("a")
    assert got is not None and running(pool, "a") == 1
    lost = pool.tx(lambda c: state.expire_leases(c, now + 10_000, 60.0, 1e9))
    assert lost == [got["id"]] and running(pool, "a") == 0


def test_a_consensus_cancels_the_other_replicas_and_frees_their_slots(pool: Pool) -> None:
    for name in ("a", "b", "c"):
        pool.add_worker(name, slots=1)
    deal = pool.add_deal(volume=1, trust=4)  # two agreeing fresh workers reach it
    got = {name: pool.next(name) for name in ("a", "b")}
    assert all(got.values())
    pool.commit("a", got["a"]["id"], deal, 0, DIGEST)  # type: ignore[index]
    # "c" gets a third replica only if "b"'s replica were not enough: it is
    assert pool.next("c") is None
    assert running(pool, "b") == 1
    pool.commit("b", got["b"]["id"], deal, 0, DIGEST)  # type: ignore[index]
    assert [running(pool, n) for n in ("a", "b", "c")] == [0, 0, 0]


def test_a_cancelled_running_replica_frees_its_workers_slot(pool: Pool) -> None:
    pool.add_worker("a", slots=1)
    pool.add_worker("b", slots=1)
    deal = pool.add_deal(volume=1, trust=4)
    got = {name: pool.next(name) for name in ("a", "b")}
    assert all(got.values()) and running(pool, "b") == 1
    # the task is settled elsewhere (say a claim): what still runs is cancelled
    task_id = "0x" + deal.task_id(0).hex()
    pool.tx(lambda c: state.mark_tasks(c, [task_id], state.CLAIMED, time.time()))
    assert [running(pool, n) for n in ("a", "b")] == [0, 0]
    other = pool.add_deal(volume=1, trust=1)
    again = pool.next("b")
    assert again is not None and again["task_id"] == "0x" + other.task_id(0).hex()


def test_a_forgotten_deal_frees_the_slots_of_its_replicas(pool: Pool) -> None:
    pool.add_worker("a", slots=1)
    deal = pool.add_deal(volume=1, trust=1)
    assert pool.next("a") is not None and running(pool, "a") == 1
    pool.tx(lambda c: state.forget_deal(c, "0x" + deal.deal_id.hex()))
    assert running(pool, "a") == 0
