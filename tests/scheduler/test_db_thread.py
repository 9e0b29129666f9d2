"""Where the scheduler's transactions run: on the event loop's thread for SQLite and a
PostgreSQL on this host, on a database thread for a remote server (or as configured);
the thread that runs them keeps one connection, and one the server dropped is replaced."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy.engine import Connection

from comptoir.exceptions import ConfigError
from comptoir.scheduler import db as dbmod
from comptoir.scheduler import state
from comptoir.scheduler.db import Database, local_database
from comptoir.scheduler.settings import _on_loop

from .conftest import deal_info


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("sqlite:///x.db", True),
        ("postgresql+psycopg://u:p@127.0.0.1:5432/d", True),
        ("postgresql+psycopg://u:p@localhost/d", True),
        ("postgresql+psycopg://u:p@[::1]:5432/d", True),
        ("postgresql+psycopg://u:p@/d?host=/var/run/postgresql", True),
        ("postgresql+psycopg://u:p@db.internal:5432/d", False),
        ("postgresql+psycopg://u:p@10.0.0.7/d", False),
    ],
)
def test_a_database_on_this_host_is_local(url: str, local: bool) -> None:
    engine = sqlalchemy.create_engine(url)
    assert local_database(engine) is local


def test_the_setting_takes_one_or_zero_and_names_the_choices() -> None:
    assert _on_loop("") is None and _on_loop("1") is True and _on_loop("0") is False
    with pytest.raises(ConfigError, match=r"give 1 .* or leave it unset"):
        _on_loop("yes")


def _thread_and_connection(c: Connection) -> tuple[int, int]:
    return threading.get_ident(), id(c.connection.dbapi_connection)


async def _two_runs(db: Database) -> list[tuple[int, int]]:
    return [await db.run(_thread_and_connection) for _ in range(2)]


def test_sqlite_runs_on_the_loop_thread_on_one_connection(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db")
    try:
        assert db.inline
        (t1, c1), (t2, c2) = asyncio.run(_two_runs(db))
        assert t1 == t2 == threading.get_ident() and c1 == c2
    finally:
        db.close()


def test_a_database_thread_keeps_one_connection_too(tmp_path: Path) -> None:
    db = Database(tmp_path / "s.db", on_loop=False)
    try:
        assert not db.inline
        (t1, c1), (t2, c2) = asyncio.run(_two_runs(db))
        assert t1 == t2 != threading.get_ident() and c1 == c2
        # a transaction from another thread (a test, a tool) takes a pooled connection
        _t3, c3 = db.tx(_thread_and_connection)
        assert c3 != c1
    finally:
        db.close()


def _backend_pid(c: Connection) -> int:
    return int(c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())


async def _held_connection_killed(db: Database) -> int:
    """The server ends the session of `db`'s held connection; its backend pid."""
    pid = await db.run(_backend_pid)
    with db.engine.connect() as other:
        other.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
        other.commit()
    await asyncio.sleep(0.05)
    return pid


@pytest.mark.parametrize("on_loop", [True, False])
def test_a_held_connection_the_server_dropped_is_replaced(
    shared_postgres: str, on_loop: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server ends the held connection's session while it is idle: the next
    transaction pings it first, finds it gone and runs on a fresh one (no 503)."""
    db = Database(shared_postgres, on_loop=on_loop)
    try:

        async def go() -> None:
            pid = await _held_connection_killed(db)
            monkeypatch.setattr(dbmod, "IDLE_PING_S", 0.0)  # it has been idle long enough
            assert await db.run(_backend_pid) != pid
            assert db.failed_at is None  # nothing failed that a caller saw

        asyncio.run(go())
    finally:
        db.close()


def test_without_the_ping_a_dropped_connection_fails_once_then_recovers(
    shared_postgres: str,
) -> None:
    """A connection dropped while busy (no ping: it was just used) fails that one
    transaction as the database being down; the next one opens a fresh connection."""
    db = Database(shared_postgres, on_loop=True)
    try:

        async def go() -> None:
            pid = await _held_connection_killed(db)
            with pytest.raises(sqlalchemy.exc.OperationalError):
                await db.run(_backend_pid)
            assert db.failed_at is not None
            assert await db.run(_backend_pid) != pid

        asyncio.run(go())
    finally:
        db.close()


def _tasks_rows_estimate(db: Database) -> float:
    """The planner's row count for the tasks table of this schema (-1 or 0: never read)."""
    return float(
        db.tx(
            lambda c: c.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'scheduler_tasks' "
                "AND relnamespace = current_schema()::regnamespace"
            ).scalar_one()
        )
    )


@pytest.mark.parametrize(("volume", "analyzed"), [(state.ANALYZE_VOLUME, True), (10, False)])
def test_a_large_bag_refreshes_the_planners_statistics(
    shared_postgres: str, volume: int, analyzed: bool
) -> None:
    """PostgreSQL plans each pull from statistics taken before the bag arrived until
    autovacuum's next pass; a bag of ANALYZE_VOLUME tasks or more refreshes them at once."""
    db = Database(shared_postgres)
    try:
        _deal, info = deal_info("0x" + "ab" * 20, volume=volume)
        db.tx(lambda c: state.add_deal(c, info, time.time()))
        estimate = _tasks_rows_estimate(db)
        assert (estimate >= volume) is analyzed, estimate
    finally:
        db.close()
