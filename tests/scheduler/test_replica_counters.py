"""The replica counters dispatch finds tasks by (``active``, ``hashes`` on each task)
stay equal to what the assignments say through every transition, and a database of an
older version gets them computed."""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy
from sqlalchemy import select

from comptoir.scheduler import state
from comptoir.scheduler.db import ACTIVE, Database, assignments, recount_replicas, tasks

from .conftest import LOCKED, NOW, Pool, deal_info
from .test_concurrent_dispatch import SETTINGS


def _counters(pool: Pool) -> dict[str, tuple[int, int]]:
    rows = pool.tx(lambda c: c.execute(select(tasks.c.task_id, tasks.c.active, tasks.c.hashes)))
    return {str(t): (int(a), int(h)) for t, a, h in rows}


def _truth(pool: Pool) -> dict[str, tuple[int, int]]:
    out = {t: (0, 0) for t in _counters(pool)}
    rows = pool.tx(
        lambda c: c.execute(
            select(assignments.c.task_id, assignments.c.result_hash).where(
                assignments.c.status.in_(ACTIVE)
            )
        ).all()
    )
    for task in out:
        mine = [h for t, h in rows if t == task]
        out[task] = (len(mine), len({h for h in mine if h is not None}))
    return out


def test_counters_follow_dispatch_commit_disagreement_failure_and_loss(pool: Pool) -> None:
    for w in ("a", "b", "c", "d"):
        pool.add_worker(w)
    deal = pool.add_deal(volume=2, trust=4)  # two agreeing fresh workers reach trust 4
    first = "0x" + deal.task_id(0).hex()
    a, b = pool.next("a"), pool.next("b")
    assert a and b and a["task_id"] == b["task_id"] == first
    assert _counters(pool)[first] == (2, 0)
    pool.commit("a", a["id"], deal, 0, b"\x01" * 32)
    pool.commit("b", b["id"], deal, 0, b"\x02" * 32)  # they disagree
    assert _counters(pool)[first] == (2, 2)
    c = pool.next("c")  # a split task wants another replica before any fresh task
    assert c and c["task_id"] == first
    assert _counters(pool) == _truth(pool)
    pool.tx(lambda conn: state.fail(conn, c["id"], pool.addr("c"), "Crash", "", time.time(), 5))
    assert _counters(pool)[first] == (2, 2)
    d = pool.next("d")
    assert d and d["task_id"] == first
    lost = pool.tx(lambda conn: state.expire_leases(conn, time.time() + 10_000, 60, 1e9))
    assert d["id"] in lost
    assert _counters(pool) == _truth(pool)
    assert _counters(pool)[first] == (2, 2)


def test_counters_follow_consensus_and_settlement(pool: Pool) -> None:
    for w in ("a", "b", "c"):
        pool.add_worker(w)
    deal = pool.add_deal(volume=1, trust=4)
    task = "0x" + deal.task_id(0).hex()
    a, b, c = pool.next("a"), pool.next("b"), pool.next("c")
    assert a and b and c is None  # two replicas suffice while nothing disagrees
    pool.commit("a", a["id"], deal, 0, b"\x07" * 32)
    pool.commit("b", b["id"], deal, 0, b"\x07" * 32)  # agreement: reveal phase
    assert _counters(pool)[task] == (2, 1)
    pool.tx(lambda conn: state.mark_tasks(conn, [task], state.FINALIZED, time.time()))
    assert _counters(pool) == _truth(pool)


def test_an_older_database_gets_its_counters(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    _deal, info = deal_info("0x" + "05" * 20, volume=2, trust=4)
    db.tx(lambda c: state.add_deal(c, info, time.time()))
    worker = "0x" + "06" * 20
    db.tx(lambda c: state.register_worker(c, worker, False, 1, 1, 0, time.time(), 1000, LOCKED))
    got = db.tx(
        lambda c: state.next_work(c, SETTINGS, worker, NOW, time.time(), lambda w, t: b"\x00" * 65)
    )
    assert got is not None
    db.close()
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as an older version left it: no counters
        conn.execute(sqlalchemy.text("DROP INDEX ix_tasks_dispatch"))
        conn.execute(sqlalchemy.text("DROP INDEX ix_tasks_split"))
        conn.execute(sqlalchemy.text("ALTER TABLE scheduler_tasks DROP COLUMN active"))
        conn.execute(sqlalchemy.text("ALTER TABLE scheduler_tasks DROP COLUMN hashes"))
    engine.dispose()
    db = Database(path)
    active = db.tx(
        lambda c: dict(c.execute(select(tasks.c.task_id, tasks.c.active)).tuples().all())
    )
    indexes = {i["name"] for i in sqlalchemy.inspect(db.engine).get_indexes("scheduler_tasks")}
    db.tx(lambda c: recount_replicas(c, None))  # idempotent
    db.close()
    assert active[got["task_id"]] == 1
    assert sorted(active.values()) == [0, 1]
    assert {"ix_tasks_dispatch", "ix_tasks_split"} <= indexes
