"""Several dispatchers on one database (API processes of one pool on one PostgreSQL):
every replica is handed out once, and a database of an older version is upgraded."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import sqlalchemy
from eth_account import Account

from comptoir.chain import eip712
from comptoir.scheduler import state
from comptoir.scheduler.db import Database
from comptoir.scheduler.settings import SchedulerSettings

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


def _dispatch_process(
    url: str, scheduler_key: str, addresses: list[str], go: Any, out: Any
) -> None:
    """One API process's dispatch: its own engine and database thread, pulling work for
    its share of the workers one request at a time, as the API does."""
    scheduler = Account.from_key(scheduler_key)
    db = Database(url)

    def auth(worker: str, task: bytes) -> bytes:
        return eip712.sign_authorization(scheduler, worker, task, CHAIN_ID, "0x" + "03" * 20)

    got: list[tuple[str, str, int]] = []
    go.wait()
    try:
        for address in addresses:
            for _ in range(3):  # a lost race returns None or another task: pull again
                w = db.tx(
                    lambda c, a=address: state.next_work(c, SETTINGS, a, NOW, time.time(), auth)
                )
                if w is not None:
                    got.append((address, str(w["task_id"]), int(w["id"])))
                    break
        out.put(("ok", got))
    except BaseException as exc:  # reported in the parent, not swallowed
        out.put(("error", repr(exc)))
    finally:
        db.close()


def _race_processes(url: str, volume: int, trust: int, workers: int) -> list[tuple[str, str, int]]:
    """Two OS processes dispatch one deal at once for `workers` workers (interleaved
    halves); returns every (worker, task, assignment id) handed out."""
    scheduler = Account.create()
    db = Database(url)
    addresses = [str(Account.create().address) for _ in range(workers)]
    _deal, info = deal_info(str(scheduler.address), volume=volume, trust=trust)
    db.tx(lambda c: state.add_deal(c, info, time.time()))
    for a in addresses:
        db.tx(lambda c, a=a: state.register_worker(c, a, False, 1, 1, 0, time.time(), 1000, LOCKED))
    db.close()
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_dispatch_process,
            args=(url, scheduler.key.hex(), addresses[i::2], go, out),
        )
        for i in range(2)
    ]
    for p in procs:
        p.start()
    time.sleep(2.0)  # both have imported and connected: start them together
    go.set()
    results = [out.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(60)
    errors = [r for kind, r in results if kind == "error"]
    assert not errors, errors
    return [g for kind, got in results if kind == "ok" for g in got]


def test_two_processes_hand_each_trust_1_task_out_once(shared_postgres: str) -> None:
    got = _race_processes(shared_postgres, volume=120, trust=1, workers=120)
    per_task = Counter(t for _, t, _ in got)
    assert len(got) == 120  # every worker got a task ...
    assert sorted(per_task.values()) == [1] * 120  # ... and no task went out twice
    assert len({aid for _, _, aid in got}) == 120


def test_two_processes_give_replicated_tasks_exactly_the_replicas_they_need(
    shared_postgres: str,
) -> None:
    # trust 4: two agreeing fresh workers reach it; 40 workers for 20 tasks, none spare
    got = _race_processes(shared_postgres, volume=20, trust=4, workers=44)
    per_task = Counter(t for _, t, _ in got)
    assert sorted(per_task.values()) == [2] * 20
    assert len({(w, t) for w, t, _ in got}) == len(got)  # never one worker twice on a task
    assert len(got) == 40  # the four spare workers found nothing to do


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


def test_one_workers_concurrent_pulls_never_exceed_its_slots(shared_postgres: str) -> None:
    # twelve pulls of one 2-slot worker at once, through four engines (as four API
    # processes): the slot is claimed on its row, so exactly two replicas go out
    scheduler = Account.create()
    dbs = [Database(shared_postgres) for _ in range(4)]
    worker = str(Account.create().address)
    _deal, info = deal_info(str(scheduler.address), volume=30, trust=1)
    dbs[0].tx(lambda c: state.add_deal(c, info, time.time()))
    dbs[0].tx(
        lambda c: state.register_worker(
            c, worker, False, 2, 1, 0, time.time(), 1000, LOCKED, slots=2
        )
    )

    def auth(w: str, task: bytes) -> bytes:
        return eip712.sign_authorization(scheduler, w, task, CHAIN_ID, "0x" + "03" * 20)

    got: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    start = threading.Barrier(12)

    def pull(i: int) -> None:
        start.wait()
        try:
            w = dbs[i % 4].tx(
                lambda c: state.next_work(c, SETTINGS, worker, NOW, time.time(), auth)
            )
            if w is not None:
                got.append(w)
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=pull, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    running = dbs[0].tx(lambda c: state.running_replicas(c, worker))
    view = dbs[0].tx(state.worker_list)
    for db in dbs:
        db.close()
    assert not errors, errors
    assert len(got) == 2 and len({w["task_id"] for w in got}) == 2
    assert running == 2
    assert [w["address"] for w in view] == [worker]


def test_an_older_database_gets_its_running_counters_recounted(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = Database(path)
    scheduler = Account.create()
    worker = str(Account.create().address)
    _deal, info = deal_info(str(scheduler.address), volume=3, trust=1)
    db.tx(lambda c: state.add_deal(c, info, time.time()))
    db.tx(lambda c: state.register_worker(c, worker, False, 1, 1, 0, time.time(), 1000, LOCKED))

    def auth(w: str, task: bytes) -> bytes:
        return eip712.sign_authorization(scheduler, w, task, CHAIN_ID, "0x" + "03" * 20)

    for _ in range(2):
        assert db.tx(lambda c: state.next_work(c, SETTINGS, worker, NOW, time.time(), auth))
    db.close()
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:  # as an older version made it: no running counter
        conn.execute(sqlalchemy.text("ALTER TABLE scheduler_workers DROP COLUMN running"))
    engine.dispose()
    db = Database(path)
    assert db.tx(lambda c: state.running_replicas(c, worker)) == 2
    db.close()


def test_one_challenge_sent_twice_at_once_registers_once(shared_postgres: str) -> None:
    # both registrations read the nonce as unspent before either writes it: the second
    # waits on the first's row, then loses on the unique key and is refused, not a 500
    db = Database(shared_postgres)
    address = str(Account.create().address)
    nonce = db.tx(lambda c: state.issue_challenge(c, address, time.time()))
    outcomes: list[object] = []
    with db.engine.connect() as first:
        first.begin()
        assert state.consume_challenge(first, address, nonce, time.time(), 300)

        def second() -> None:
            try:
                outcomes.append(
                    db.tx(lambda c: state.consume_challenge(c, address, nonce, time.time(), 300))
                )
            except Exception as e:  # what a worker would get as a 500
                outcomes.append(e)

        racer = threading.Thread(target=second)
        racer.start()
        time.sleep(0.5)  # the racer has read the nonce as unspent and waits on the insert
        first.commit()
        racer.join(30)
    assert outcomes == [False]
    # and once spent, the same nonce is refused on any backend
    assert db.tx(lambda c: state.consume_challenge(c, address, nonce, time.time(), 300)) is False
    db.close()
