"""Several dispatchers on one database (API processes of one pool on one PostgreSQL):
every replica is handed out once, and a database of an older version is upgraded."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from eth_account import Account

from comptoir.chain import eip712
from comptoir.scheduler import state
from comptoir.scheduler.db import Database
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.testing.servers import POSTGRES_ENV, postgres_schema

from .conftest import CHAIN_ID, DEPLOYMENT, LOCKED, NOW, deal_info

SETTINGS = SchedulerSettings(
    rpc_url="http://127.0.0.1:1",
    deployment=DEPLOYMENT,
    private_key="0x" + "01" * 32,
    workerpool=1,
)


def _race(url: str, volume: int, trust: int, dispatchers: int, workers: int) -> Counter[str]:
    """`dispatchers` Database objects (separate engines and connection pools, as separate
    processes have) pull work for `workers` workers at once; returns replicas per task."""
    scheduler = Account.create()
    dbs = [Database(url) for _ in range(dispatchers)]
    addresses = [str(Account.create().address) for _ in range(workers)]
    _deal, info = deal_info(str(scheduler.address), volume=volume, trust=trust)
    dbs[0].tx(lambda c: state.add_deal(c, info, time.time()))
    for a in addresses:
        dbs[0].tx(
            lambda c, a=a: state.register_worker(c, a, False, 1, 1, 0, time.time(), 1000, LOCKED)
        )

    def auth(worker: str, task: bytes) -> bytes:
        return eip712.sign_authorization(scheduler, worker, task, CHAIN_ID, "0x" + "03" * 20)

    got: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def pull(i: int) -> None:
        db = dbs[i % dispatchers]
        start.wait()
        try:
            for _ in range(3):  # a lost race returns None or another task: pull again
                w = db.tx(
                    lambda c: state.next_work(c, SETTINGS, addresses[i], NOW, time.time(), auth)
                )
                if w is not None:
                    got.append(w)
                    return
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for db in dbs:
        db.close()
    assert not errors, errors
    return Counter(w["task_id"] for w in got)


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs PostgreSQL ({POSTGRES_ENV}; make test sets it)")
    with postgres_schema("sched_race") as url:
        yield url


def test_trust_1_tasks_get_exactly_one_replica_across_dispatchers(shared_postgres: str) -> None:
    per_task = _race(shared_postgres, volume=12, trust=1, dispatchers=4, workers=12)
    assert sorted(per_task.values()) == [1] * 12  # every task once, none twice


def test_a_replicated_task_never_gets_more_replicas_than_its_trust_needs(
    shared_postgres: str,
) -> None:
    # trust 4: two agreeing fresh workers (weight 2 each) reach it, so two replicas
    per_task = _race(shared_postgres, volume=3, trust=4, dispatchers=3, workers=6)
    assert sorted(per_task.values()) == [2, 2, 2]


def test_an_older_database_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    Database(path).close()
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as an older version made it: no version column
        conn.execute(sqlalchemy.text("ALTER TABLE scheduler_tasks DROP COLUMN version"))
    engine.dispose()
    db = Database(path)
    cols = {c["name"] for c in sqlalchemy.inspect(db.engine).get_columns("scheduler_tasks")}
    db.close()
    assert "version" in cols
