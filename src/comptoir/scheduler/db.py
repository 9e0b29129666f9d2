"""The scheduler's state: deals, tasks, assignments (replicas), workers, chain cursor.

SQLAlchemy Core over a synchronous engine (SQLite file by default, PostgreSQL by URL).
Every read-modify-write of the scheduler runs as one transaction, one at a time
(:class:`Database.run`), so the HTTP handlers and the background loops never interleave
inside a state transition, and SQLite never sees two writers. A transaction runs on the
event loop's own thread when the database is SQLite or a PostgreSQL server on this host
(loopback or Unix socket): it takes a fraction of a millisecond, less than handing it to
another thread and back cost (on PostgreSQL the two threads also queue on the GIL at every
round trip: 7.8 against 5.3 ms of CPU per task measured). A PostgreSQL server across a
network runs them on one dedicated database thread, so the loop serves HTTP during the
round trips (``COMPTOIR_SCHEDULER_DB_ON_LOOP`` = 1 or 0 decides instead). Whichever
thread runs them keeps one connection open rather than checking one out of the pool (and
pinging PostgreSQL) for each transaction.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import Select

from comptoir.dburl import database_url

T = TypeVar("T")

metadata = MetaData()

# Task states. open: accepting replicas; revealing: a group reached credibility, its
# members are asked to reveal; ready: digest revealed, waiting for the finalizer;
# finalized / claimed: settled on-chain by us; settled: found settled on-chain by
# reconciliation (someone else's transaction); abandoned: too many failed attempts,
# left for the claimer after the final deadline; onchain: workers contributed through the
# Contributions contract (fast path closed): the scheduler drives that path instead.
OPEN, REVEALING, READY = "open", "revealing", "ready"
FINALIZED, CLAIMED, SETTLED, ABANDONED = "finalized", "claimed", "settled", "abandoned"
ONCHAIN = "onchain"
TASK_STATES = (OPEN, REVEALING, READY, FINALIZED, CLAIMED, SETTLED, ABANDONED, ONCHAIN)
UNSETTLED = (OPEN, REVEALING, READY, ABANDONED, ONCHAIN)

# Assignment states. running: handed to a worker; committed: signed contribution
# received; revealed: digest revealed and checked; failed: the worker reported a
# non-deterministic failure; lost: the worker stopped heartbeating; released: the worker
# gave it back; cancelled: not needed any more; unrevealed: asked to reveal, never did;
# invalid: its commitment copied the consensus hash with a seal that does not match the
# revealed digest (it never knew the result).
RUNNING, COMMITTED, REVEALED = "running", "committed", "revealed"
FAILED, LOST, RELEASED, CANCELLED = "failed", "lost", "released", "cancelled"
UNREVEALED, INVALID = "unrevealed", "invalid"
ACTIVE = (RUNNING, COMMITTED, REVEALED)

cursor = Table(
    "scheduler_cursor",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

deals = Table(
    "scheduler_deals",
    metadata,
    Column("deal_id", String(66), primary_key=True),
    Column("deal_json", Text, nullable=False),
    Column("app", String(78), nullable=False),
    Column("dataset", String(78), nullable=False),
    Column("category", Integer, nullable=False),
    Column("time_ref", BigInteger, nullable=False),
    Column("tag", String(66), nullable=False),
    Column("params", Text, nullable=False),
    Column("beneficiary", String(42), nullable=False),
    Column("block", BigInteger, nullable=False),
    Column("app_location", Text, nullable=False),
    Column("app_checksum", String(64), nullable=False),
    Column("app_type", Integer, nullable=False),
    Column("dataset_location", Text, nullable=False, default=""),
    Column("dataset_checksum", String(64), nullable=False, default=""),
    Column("trust", BigInteger, nullable=False),
    Column("volume", BigInteger, nullable=False),
    Column("contribution_deadline", BigInteger, nullable=False),
    Column("final_deadline", BigInteger, nullable=False),
    Column("callback", Boolean, nullable=False, default=False),
    Column("status", String(16), nullable=False, default="active"),
    Column("created_at", Float, nullable=False),
)

tasks = Table(
    "scheduler_tasks",
    metadata,
    Column("task_id", String(66), primary_key=True),
    Column("deal_id", String(66), nullable=False),
    Column("idx", BigInteger, nullable=False),
    Column("status", String(16), nullable=False, default=OPEN),
    Column("consensus_hash", String(66)),
    Column("digest", String(66)),
    Column("result_blob", String(64)),
    Column("failure", Text),  # canonical failure record when the app failed deterministically
    Column("callback_data", Text),
    Column("failures", Integer, nullable=False, default=0),
    Column("reveal_started", Float),
    Column("finalize_tx", String(66)),
    Column("updated_at", Float, nullable=False),
    # bumped by every dispatch of a replica: concurrent dispatchers compare-and-set it
    Column("version", Integer, nullable=False, default=0, server_default="0"),
    # replicas running, committed or revealed, and the distinct result hashes among them:
    # kept by every transition of the task's replicas (state._recount) so dispatch finds
    # fresh and under-replicated tasks by index instead of aggregating replicas in flight
    Column("active", Integer, nullable=False, default=0, server_default="0"),
    Column("hashes", Integer, nullable=False, default=0, server_default="0"),
    Index("ix_tasks_deal", "deal_id", "idx"),
    Index("ix_tasks_status", "status"),
    Index("ix_tasks_dispatch", "deal_id", "status", "active", "idx"),
    Index("ix_tasks_split", "deal_id", "status", "hashes"),
)

assignments = Table(
    "scheduler_assignments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(66), nullable=False),
    Column("deal_id", String(66), nullable=False),
    Column("worker", String(42), nullable=False),
    Column("status", String(16), nullable=False, default=RUNNING),
    Column("authorization", String(132), nullable=False),
    Column("assigned_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("result_hash", String(66)),
    Column("result_seal", String(66)),
    Column("r", String(66)),
    Column("vs", String(66)),
    Column("digest", String(66)),
    Column("result_blob", String(64)),
    Column("error", Text),
    UniqueConstraint("task_id", "worker", name="uq_assignment_task_worker"),
    Index("ix_assignments_task", "task_id"),
    Index("ix_assignments_worker", "worker", "status"),
)

workers = Table(
    "scheduler_workers",
    metadata,
    Column("address", String(42), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("gpu", Boolean, nullable=False, default=False),
    Column("cpus", Integer, nullable=False, default=1),
    Column("memory", BigInteger, nullable=False, default=0),
    # replicas it runs at once (its advertised slots); None: not capped by the scheduler
    Column("slots", Integer),
    # its replicas running now, kept with every change of its replicas (state._recount):
    # the slot cap is checked on this counter, and claimed on it atomically (a conditional
    # UPDATE), so concurrent pulls of one worker never exceed its slots
    Column("running", Integer, nullable=False, default=0, server_default="0"),
    Column("score", BigInteger, nullable=False, default=0),
    Column("weight", Integer, nullable=False, default=2),
    # free escrow balance (decimal string: uint256), None until read from the chain
    Column("balance", String(80)),
    # until when that balance may not leave the escrow (escrow.lock; never shortened, so a
    # stale value errs on the safe side), and when both were last read from the chain
    Column("locked_until", BigInteger, nullable=False, default=0, server_default="0"),
    Column("standing_at", Float, nullable=False, default=0.0, server_default="0"),
    Column("cached", Text, nullable=False, default="[]"),
    Column("online", Boolean, nullable=False, default=True),
    Column("last_heartbeat", Float, nullable=False),
    Column("registered_at", Float, nullable=False),
    Index("ix_workers_online_weight", "online", "weight"),
    Index("ix_workers_online_score", "online", "score"),
)

challenges = Table(
    "scheduler_challenges",
    metadata,
    Column("nonce", String(64), primary_key=True),
    Column("address", String(42), nullable=False),
    Column("expires", Float, nullable=False),
    Index("ix_challenges_expires", "expires"),
)


def open_deals(chain_now: int) -> Select[Any]:
    """Deals that still take replicas, oldest first: active, with an open task, and time
    left before the final deadline for one more run of the category."""
    return (
        select(deals)
        .where(
            deals.c.status == "active",
            deals.c.final_deadline > chain_now + deals.c.time_ref,
            select(tasks.c.task_id)
            .where(tasks.c.deal_id == deals.c.deal_id, tasks.c.status == OPEN)
            .exists(),
        )
        .order_by(deals.c.created_at)
    )


def make_engine(database: str | Path) -> Engine:
    url = database_url(database)
    if url.startswith("sqlite"):
        if url == "sqlite:///:memory:":
            engine = create_engine(
                url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            path = Path(url.removeprefix("sqlite:///"))
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # WAL + NORMAL: a crash loses at most the last transactions, never corrupts
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=5000")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def local_database(engine: Engine) -> bool:
    """SQLite, or a PostgreSQL server reached over loopback or a Unix socket."""
    url = engine.url
    if url.get_backend_name() == "sqlite":
        return True
    host = url.host or str(url.query.get("host", "")) or ""
    return host in ("", "localhost", "::1") or host.startswith(("127.", "/"))


def _add_missing_columns(engine: Engine) -> set[str]:
    """A database made by an older version lacks the columns added since: add them (each
    added column has a server default, so existing rows stay valid); returns the
    ``table.column`` names added."""
    existing = inspect(engine)
    added: set[str] = set()
    with engine.begin() as conn:
        for table in metadata.sorted_tables:
            have = {c["name"] for c in existing.get_columns(table.name)}
            for column in table.columns:
                if column.name in have:
                    continue
                kind = column.type.compile(dialect=engine.dialect)
                default = column.server_default.arg if column.server_default else None  # type: ignore[attr-defined]
                conn.execute(
                    text(
                        f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"
                        + (f" NOT NULL DEFAULT {default}" if default is not None else "")
                    )
                )
                added.add(f"{table.name}.{column.name}")
    return added


def recount_replicas(conn: Connection, task_ids: list[str] | None) -> None:
    """Set the replica counters (``active``, ``hashes``) of these tasks (None: of every
    task) from their assignments; a few indexed rows per task."""
    mine = assignments.c.task_id == tasks.c.task_id
    live = assignments.c.status.in_(ACTIVE)
    q = update(tasks)
    if task_ids is not None:
        q = q.where(tasks.c.task_id.in_(task_ids))
    conn.execute(
        q.values(
            active=select(func.count()).where(mine, live).scalar_subquery(),
            hashes=select(func.count(func.distinct(assignments.c.result_hash)))
            .where(mine, live)
            .scalar_subquery(),
        )
    )


def recount_running(conn: Connection, addresses: list[str] | None) -> None:
    """Set the ``running`` counter of these workers (None: of every worker) from their
    assignments; one indexed count each (ix_assignments_worker)."""
    q = update(workers)
    if addresses is not None:
        q = q.where(workers.c.address.in_(addresses))
    conn.execute(
        q.values(
            running=select(func.count())
            .where(assignments.c.worker == workers.c.address, assignments.c.status == RUNNING)
            .scalar_subquery()
        )
    )


IDLE_PING_S = 10.0  # a held connection idle this long is pinged before it is used
TX_ATTEMPTS = 3  # runs of a transaction PostgreSQL aborts as a deadlock victim
_RETRYABLE = {"40P01", "40001"}  # deadlock detected, serialization failure


def _retryable(exc: OperationalError) -> bool:
    return getattr(exc.orig, "sqlstate", None) in _RETRYABLE


class Database:
    """One engine, one writer thread."""

    def __init__(self, database: str | Path, on_loop: bool | None = None) -> None:
        """`on_loop`: run transactions on the event loop's thread (None: when the database
        is SQLite or a PostgreSQL server on this host)."""
        self.engine = make_engine(database)
        metadata.create_all(self.engine)
        added = _add_missing_columns(self.engine)
        for table in metadata.sorted_tables:  # indexes added since an older version
            for index in table.indexes:
                index.create(self.engine, checkfirst=True)
        if "scheduler_tasks.active" in added:
            with self.engine.begin() as conn:  # counters the older version did not keep
                recount_replicas(conn, None)
        if "scheduler_workers.running" in added:
            with self.engine.begin() as conn:
                recount_running(conn, None)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scheduler-db")
        self.inline = local_database(self.engine) if on_loop is None else on_loop
        # the thread that runs transactions keeps one connection open instead of checking
        # one out of the pool (reset on return, pinged on checkout) for each of them
        self._held: Connection | None = None
        self._holder: int | None = None  # that thread, set at the first run()
        self._used = 0.0  # when the held connection last began a transaction (monotonic)
        # when the database last failed (disk full, read-only, server gone): health checks
        # report it even when their own small probe still fits
        self.failed_at: float | None = None

    def tx(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction on the calling thread. A transaction PostgreSQL
        aborted to break a deadlock between API processes (each took row locks the other
        wanted) is run again: nothing of it was kept."""
        held = threading.get_ident() == self._holder
        for attempt in range(TX_ATTEMPTS):
            try:
                if not held:
                    with self.engine.begin() as conn:
                        return fn(conn)
                conn = self._held_connection()
                with conn.begin():
                    return fn(conn)
            except DBAPIError as exc:
                retry = isinstance(exc, OperationalError) and _retryable(exc)
                if held and not retry and self._held is not None:
                    # the database failed, or the connection did: the next transaction
                    # starts on a fresh one (the transaction's own checks, which raise
                    # other errors, rolled it back and leave it as it was)
                    self._held.close()
                    self._held = None
                if retry and attempt + 1 < TX_ATTEMPTS:
                    continue
                if isinstance(exc, OperationalError):
                    self.failed_at = time.time()
                raise
        raise AssertionError("unreachable")

    def _held_connection(self) -> Connection:
        """The connection kept open; one idle for a while is pinged first (the server may
        have closed it), as the pool pings a connection it hands out."""
        now = time.monotonic()
        if self._held is not None and now - self._used > IDLE_PING_S:
            try:
                self._held.exec_driver_sql("SELECT 1")
                self._held.rollback()
            except DBAPIError:
                self._held.close()
                self._held = None
        if self._held is None:
            self._held = self.engine.connect()
        self._used = now
        return self._held

    def _on_db_thread(self, fn: Callable[[Connection], T]) -> T:
        if self._holder is None:
            self._holder = threading.get_ident()
        return self.tx(fn)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Run `fn` in one transaction (see the module docstring for which thread)."""
        if self.inline:
            return self._on_db_thread(fn)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._on_db_thread, fn)

    def reconnect(self) -> None:
        """Drop every connection: the next transactions open new ones."""
        if self._held is not None:
            self._held.close()
            self._held = None
        self.engine.dispose()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.reconnect()
