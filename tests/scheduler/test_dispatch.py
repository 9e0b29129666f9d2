"""Dispatch and the replica state machine, on the scheduler's own database."""

from __future__ import annotations

import time
from dataclasses import replace

from comptoir.chain import eip712
from comptoir.chain.client import SignedContribution, WorkerStanding
from comptoir.chain.types import Deal, result_hash
from comptoir.scheduler import stakelock, state
from comptoir.scheduler.db import ABANDONED, COMMITTED, LOST, READY, REVEALING, RUNNING

from .conftest import CHAIN_ID, HUB, NOW, Pool, deal_info

DIGEST = b"\x42" * 32


def test_trust_one_asks_one_replica(pool: Pool) -> None:
    for w in ("a", "b"):
        pool.add_worker(w)
    pool.add_deal(trust=1)
    assert pool.next("a") is not None
    assert pool.next("b") is None


def test_replicas_follow_trust_with_fresh_workers(pool: Pool) -> None:
    for w in ("a", "b", "c", "d"):
        pool.add_worker(w)
    deal = pool.add_deal(trust=5)  # fresh workers weigh 2: 2**3 * 5 > 9 * 4 needs three
    got = [pool.next(w) for w in ("a", "b", "c", "d")]
    assert [g is not None for g in got] == [True, True, True, False]
    assert {g["task_id"] for g in got if g} == {"0x" + deal.task_id(0).hex()}


def test_heavy_workers_need_fewer_replicas(pool: Pool) -> None:
    pool.add_worker("veteran", score=30)  # weight 9: 9 * 5 > 10 * 4 alone
    pool.add_worker("b")
    pool.add_deal(trust=5)
    assert pool.next("veteran") is not None
    assert pool.next("b") is None


def test_a_light_worker_first_does_not_block_more_replicas(pool: Pool) -> None:
    pool.add_worker("veteran", score=30)
    pool.add_worker("b")
    pool.add_deal(trust=5)
    assert pool.next("b") is not None  # 2 alone is not enough: another replica is wanted
    assert pool.next("veteran") is not None


def test_never_two_replicas_of_one_task_to_one_worker(pool: Pool) -> None:
    pool.add_worker("a")
    pool.add_deal(trust=5)
    first = pool.next("a")
    assert first is not None
    assert pool.next("a") is None


def test_bag_of_tasks_in_index_order(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal(volume=3)
    got = [pool.next("a") for _ in range(4)]
    assert [g["index"] for g in got if g] == [0, 1, 2]
    assert got[3] is None
    assert got[0]["task_id"] == "0x" + deal.task_id(0).hex()


def test_locality_prefers_cached_app_and_dataset(pool: Pool) -> None:
    pool.add_worker("a")
    pool.add_deal(app_checksum=b"\x01" * 32)  # older
    cached = pool.add_deal(app_checksum=b"\x02" * 32, dataset_checksum=b"\x03" * 32)
    pool.tx(lambda c: state.heartbeat(c, pool.addr("a"), ["02" * 32, "03" * 32], time.time()))
    got = pool.next("a")
    assert got is not None and got["deal_id"] == "0x" + cached.deal_id.hex()
    assert got["dataset"]["checksum"] == "03" * 32


def test_gpu_tag_needs_a_gpu_worker(pool: Pool) -> None:
    pool.add_worker("cpu")
    pool.add_worker("gpu", gpu=True)
    pool.add_deal(tag=1 << 1)
    assert pool.next("cpu") is None
    assert pool.next("gpu") is not None


def test_expired_deadline_is_not_dispatched(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal()
    # final deadline minus one category time is the last useful moment
    late = deal.final_deadline - 50
    got = pool.tx(
        lambda c: state.next_work(
            c, pool.settings, pool.addr("a"), late, time.time(), lambda w, t: b"\x00" * 65
        )
    )
    assert got is None


def test_lease_expiry_releases_and_redispatches(pool: Pool) -> None:
    for w in ("a", "b"):
        pool.add_worker(w)
    pool.add_deal(trust=1)
    got = pool.next("a")
    assert got is not None and pool.next("b") is None
    # b heartbeats, a goes silent
    later = time.time() + 100
    pool.tx(lambda c: state.heartbeat(c, pool.addr("b"), [], later))
    lost = pool.tx(lambda c: state.expire_leases(c, later, lease=30, grace=1000))
    assert lost == [got["id"]]
    again = pool.next("b")
    assert again is not None and again["task_id"] == got["task_id"]
    view = pool.tx(lambda c: state.task_view(c, got["task_id"]))
    statuses = {r["worker"]: r["status"] for r in view["replicas"]}
    assert statuses == {pool.addr("a"): LOST, pool.addr("b"): RUNNING}


def test_overdue_replica_is_lost_even_with_heartbeats(pool: Pool) -> None:
    pool.add_worker("a")
    pool.add_deal()
    got = pool.next("a")
    later = time.time() + 10_000  # category time 100 s + grace 60 s long gone
    pool.tx(lambda c: state.heartbeat(c, pool.addr("a"), [], later))
    assert pool.tx(lambda c: state.expire_leases(c, later, lease=30, grace=60)) == [got["id"]]


def test_agreement_reaches_reveal_then_ready(pool: Pool) -> None:
    for w in ("a", "b", "c"):
        pool.add_worker(w)
    deal = pool.add_deal(trust=5)
    got = {w: pool.next(w) for w in ("a", "b", "c")}
    pool.commit("a", got["a"]["id"], deal, 0, DIGEST)
    pool.commit("b", got["b"]["id"], deal, 0, DIGEST)
    assert pool.task(deal)["status"] == "open"
    pool.commit("c", got["c"]["id"], deal, 0, DIGEST)
    assert pool.task(deal)["status"] == REVEALING
    view = pool.tx(lambda c: state.assignment_state(c, got["a"]["id"], pool.addr("a")))
    assert view["action"] == "reveal"
    for w in ("a", "b", "c"):
        pool.tx(
            lambda c, w=w: state.reveal(
                c, got[w]["id"], pool.addr(w), DIGEST, "ab" * 32, None, None, time.time()
            )
        )
    assert pool.task(deal)["status"] == READY
    batches = pool.tx(lambda c: state.ready_batches(c, NOW))
    assert len(batches) == 1 and len(batches[0].outcomes) == 1
    outcome = batches[0].outcomes[0]
    assert outcome.digest == DIGEST and len(outcome.contributions) == 3


def test_disagreement_asks_for_more_replicas(pool: Pool) -> None:
    for w in ("liar", "a", "b", "c"):
        pool.add_worker(w)
    deal = pool.add_deal(trust=3)  # two fresh workers suffice when they agree
    liar, a = pool.next("liar"), pool.next("a")
    assert pool.next("b") is None
    pool.commit("liar", liar["id"], deal, 0, b"\x66" * 32)
    pool.commit("a", a["id"], deal, 0, DIGEST)
    # 2 vs 2 at trust 3: the honest group needs weight 8, two more replicas
    b, c = pool.next("b"), pool.next("c")
    assert b is not None and c is not None
    pool.commit("b", b["id"], deal, 0, DIGEST)
    assert pool.task(deal)["status"] == "open"
    pool.commit("c", c["id"], deal, 0, DIGEST)
    assert pool.task(deal)["status"] == REVEALING
    liar_view = pool.tx(lambda conn: state.assignment_state(conn, liar["id"], pool.addr("liar")))
    assert liar_view["action"] == "wait"  # not asked to reveal, will be penalized
    pool.tx(
        lambda conn: state.reveal(
            conn, a["id"], pool.addr("a"), DIGEST, None, None, None, time.time()
        )
    )
    pool.tx(lambda conn: state.reveal_tick(conn, time.time() + 100, 30, 30, NOW))
    outcome = pool.tx(lambda conn: state.ready_batches(conn, NOW))[0].outcomes[0]
    workers = {c.worker for c in outcome.contributions}
    assert workers == {pool.addr(w) for w in ("liar", "a", "b", "c")}


def test_commit_with_a_foreign_task_is_refused(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal(volume=2)
    got = pool.next("a")
    c = pool.contribution("a", deal, 1, DIGEST)  # signed for task 1, assignment is task 0
    try:
        pool.tx(lambda conn: state.commit(conn, got["id"], pool.addr("a"), c, time.time()))
    except state.Invalid:
        pass
    else:
        raise AssertionError("a contribution for another task was accepted")


def test_reveal_must_match_the_commitment(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal()
    got = pool.next("a")
    pool.commit("a", got["id"], deal, 0, DIGEST)
    try:
        pool.tx(
            lambda c: state.reveal(
                c, got["id"], pool.addr("a"), b"\x00" * 32, None, None, None, time.time()
            )
        )
    except state.Invalid:
        pass
    else:
        raise AssertionError("a reveal that does not match the commitment was accepted")
    assert pool.tx(lambda c: state.assignment_state(c, got["id"], pool.addr("a")))["status"] == (
        COMMITTED
    )


def test_failures_redispatch_then_abandon(pool: Pool) -> None:
    for w in ("a", "b", "c"):
        pool.add_worker(w)
    deal = pool.add_deal()
    first = pool.next("a")
    pool.tx(lambda c: state.fail(c, first["id"], pool.addr("a"), "download", "x", time.time(), 2))
    second = pool.next("b")
    assert second is not None and second["task_id"] == first["task_id"]
    pool.tx(lambda c: state.fail(c, second["id"], pool.addr("b"), "refused", "x", time.time(), 2))
    assert pool.task(deal)["status"] == ABANDONED
    assert pool.next("c") is None
    claims = pool.tx(lambda c: state.claimable(c, deal.final_deadline))
    assert [(d, [i for i, _ in items]) for d, _, items in claims] == [
        ("0x" + deal.deal_id.hex(), [0])
    ]


def test_workers_that_cannot_cover_the_stake_get_no_work(pool: Pool) -> None:
    pool.add_worker("poor", balance=9)  # the deals here stake 10 per contribution
    pool.add_worker("unknown", balance=None)  # chain unreachable at registration
    pool.add_deal(trust=5)
    assert pool.next("poor") is None
    # never read from the chain: no lock known, no work (the hub would refuse its result)
    assert pool.next("unknown") is None
    pool.tx(lambda c: state.set_scores(c, {pool.addr("poor"): 0}, {pool.addr("poor"): 10}))
    assert pool.next("poor") is not None


def test_a_copied_hash_without_the_result_is_thrown_out(pool: Pool) -> None:
    for w in ("a", "b", "copier", "d"):
        pool.add_worker(w)
    deal = pool.add_deal(trust=5)  # three agreeing fresh workers needed
    got = {w: pool.next(w) for w in ("a", "b", "copier")}
    pool.commit("a", got["a"]["id"], deal, 0, DIGEST)
    pool.commit("b", got["b"]["id"], deal, 0, DIGEST)
    # the copier learned the result hash somehow, but not the digest: its seal is a guess
    task = deal.task_id(0)
    rh, fake_seal = result_hash(task, DIGEST), b"\x13" * 32
    r, vs = eip712.sign_contribution(pool.workers["copier"], task, rh, fake_seal, CHAIN_ID, HUB)
    c = SignedContribution(pool.addr("copier"), task, rh, fake_seal, r, vs)
    pool.tx(lambda conn: state.commit(conn, got["copier"]["id"], pool.addr("copier"), c, 0.0))
    assert pool.task(deal)["status"] == REVEALING  # on hashes alone, three agree
    pool.tx(
        lambda conn: state.reveal(
            conn, got["a"]["id"], pool.addr("a"), DIGEST, None, None, None, time.time()
        )
    )
    view = pool.task(deal)
    statuses = {r["worker"]: r["status"] for r in view["replicas"]}
    assert statuses[pool.addr("copier")] == "invalid"
    assert view["status"] == "open"  # two honest workers are not enough at trust 5
    assert all(r["result_hash"] is None for r in view["replicas"])  # never published early
    assert pool.next("d") is not None


def _settle_one(pool: Pool, worker: str, deal: Deal, now: float) -> None:
    """`worker` takes the next task of `deal` (trust 1), commits and reveals it at `now`."""
    got = pool.next(worker)
    assert got is not None
    pool.commit(worker, got["id"], deal, got["index"], DIGEST)
    pool.tx(lambda c: state.reveal(c, got["id"], pool.addr(worker), DIGEST, None, None, None, now))


def test_partial_batch_waits_for_the_window_while_the_bag_still_runs(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal(volume=3, trust=1)
    t0 = time.time()
    _settle_one(pool, "a", deal, t0)  # task 0 ready; tasks 1 and 2 still open
    assert pool.tx(lambda c: state.ready_batches(c, NOW, t0 + 1, window=3)) == []
    waited = pool.tx(lambda c: state.ready_batches(c, NOW, t0 + 3.5, window=3))
    assert [len(b.outcomes) for b in waited] == [1]
    # no window: sent at once, as before
    assert len(pool.tx(lambda c: state.ready_batches(c, NOW))) == 1


def test_batch_goes_at_once_when_nothing_else_of_the_deal_can_join(pool: Pool) -> None:
    pool.add_worker("a")
    lone = pool.add_deal(volume=1, trust=1)
    t0 = time.time()
    _settle_one(pool, "a", lone, t0)
    assert [len(b.outcomes) for b in pool.tx(lambda c: state.ready_batches(c, NOW, t0, 3))] == [1]


def test_batch_goes_at_once_near_the_final_deadline(pool: Pool) -> None:
    pool.add_worker("a")
    deal = pool.add_deal(volume=3, trust=1)
    t0 = time.time()
    _settle_one(pool, "a", deal, t0)
    late = NOW + 10_000 - 150  # less than two category times (100 s) before the deadline
    assert len(pool.tx(lambda c: state.ready_batches(c, late, t0, window=3))) == 1


def test_no_replica_without_a_stake_lock_reaching_the_final_deadline(pool: Pool) -> None:
    deal = pool.add_deal(trust=5)  # stakes 10 per contribution
    pool.add_worker("unlocked", locked_until=0)
    pool.add_worker("short", locked_until=deal.final_deadline - 1)
    pool.add_worker("exact", locked_until=deal.final_deadline)
    assert pool.next("unlocked") is None
    assert pool.next("short") is None
    assert pool.next("exact") is not None
    # what the refused ones lack: a lock to the deal's final deadline, not more balance
    lacks = pool.tx(lambda c: stakelock.shortfall(c, pool.addr("short"), NOW))
    assert lacks == stakelock.Shortfall(lock_until=deal.final_deadline, stake=0)
    # a lock read again from the chain (a worker that just locked) lets it in
    standing = {pool.addr("short"): WorkerStanding(0, 1000, deal.final_deadline + 60)}
    pool.tx(lambda c: stakelock.store_standings(c, standing, time.time()))
    assert pool.next("short") is not None


def test_a_deal_without_worker_stake_needs_no_lock(pool: Pool) -> None:
    _deal, info = deal_info(str(pool.scheduler.address), trust=5)
    free = replace(info.event.deal, worker_stake=0)  # nothing to seize: nothing to lock
    event = replace(info.event, deal_id=free.deal_id, deal=free)
    pool.tx(lambda c: state.add_deal(c, replace(info, event=event), time.time()))
    pool.add_worker("unlocked", balance=0, locked_until=0)
    assert pool.next("unlocked") is not None
