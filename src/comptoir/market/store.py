"""Persistence of the order book and the deals feed (async SQLAlchemy Core).

Portable across SQLite and PostgreSQL: uint256 values are stored as zero-padded decimal
strings, so string order is numeric order and range filters work in SQL; a tag is split
into eight 32-bit words so tag-coverage filters are bitwise ANDs in SQL.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    bindparam,
    create_engine,
    event,
    func,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import StaticPool

from comptoir.dburl import database_url

T = TypeVar("T")

WIDTH = 80  # a sum of three uint256 prices has at most 78 digits
MAX_PRICE = 2**128  # poco.vy: every price a deal pays is below it
TAG_WORDS = 8
WORD_MASK = 0xFFFFFFFF
MAX_COUNT = 200  # a listing counts its matches up to this, then says "at least"


def pad(value: int) -> str:
    return str(value).zfill(WIDTH)


def unpad(value: str | None) -> int | None:
    return None if value is None else int(value)


def tag_words(tag: int) -> list[int]:
    """Word i holds bits 32*i .. 32*i+31 of the tag."""
    return [(tag >> (32 * i)) & WORD_MASK for i in range(TAG_WORDS)]


metadata = MetaData()
LISTING = ("price", "published_at", "hash")
STATUSES = ("open", "filled", "cancelled", "dead")
# Each index: the columns a filter fixes, then status, then the listing order, so a page
# of one (kind, status) is an index range scan in listing order, never a sort of the book.
# `_arms` takes the first whose leading column the query fixes, most selective first.
INDEXES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("requester", ("requester",)),
    ("owner_book", ("owner",)),
    ("app_kind", ("app", "kind")),
    ("dataset_kind", ("dataset", "kind")),
    ("workerpool_kind", ("workerpool", "kind")),
    ("category_kind", ("category", "kind")),
    ("book", ("kind",)),
    ("open", ()),
)
# the kinds of order that carry each column an index leads with (the others hold NULL)
KINDS_WITH = {
    "app": ("app", "request"),
    "dataset": ("dataset", "request"),
    "workerpool": ("workerpool", "request"),
    "category": ("workerpool", "request"),
}
OBSOLETE_INDEXES = ("ix_market_orders_category", "ix_market_orders_owner")
# what a listing page reads of each row (`listing.record_json` renders it)
PAGE_COLUMNS = (
    "hash",
    "kind",
    "order_json",
    "signature",
    "owner",
    "status",
    "status_reason",
    "volume",
    "remaining",
    "price",
    "published_at",
    "updated_at",
)

orders = Table(
    "market_orders",
    metadata,
    Column("hash", String(66), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("order_json", Text, nullable=False),
    Column("signature", String(132), nullable=False),
    Column("owner", String(42), nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_reason", String(200)),
    Column("volume", String(WIDTH), nullable=False),
    Column("remaining", String(WIDTH), nullable=False),
    Column("price", String(WIDTH), nullable=False),
    Column("category", String(WIDTH)),
    Column("trust", String(WIDTH)),
    Column("app", String(WIDTH)),
    Column("dataset", String(WIDTH)),
    Column("workerpool", String(WIDTH)),
    Column("requester", String(42)),
    Column("app_restrict", String(WIDTH)),
    Column("dataset_restrict", String(WIDTH)),
    Column("workerpool_restrict", String(WIDTH)),
    Column("requester_restrict", String(42)),
    *[Column(f"tag{i}", BigInteger, nullable=False) for i in range(TAG_WORDS)],
    Column("published_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    *[Index(f"ix_market_orders_{name}", *lead, "status", *LISTING) for name, lead in INDEXES],
)

deals = Table(
    "market_deals",
    metadata,
    Column("deal_id", String(66), primary_key=True),
    Column("category", String(WIDTH), nullable=False),
    Column("price", String(WIDTH), nullable=False),
    Column("volume", String(WIDTH), nullable=False),
    Column("timestamp", Float, nullable=False),
    Column("block", BigInteger),
    Index("ix_market_deals_category_time", "category", "timestamp"),
)

meta = Table(
    "market_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)


@dataclass
class StoredOrder:
    hash: str
    kind: str
    order: dict[str, Any]
    signature: str
    owner: str
    status: str
    status_reason: str | None
    volume: int
    remaining: int
    price: int
    published_at: float
    updated_at: float

    @property
    def cursor(self) -> str:
        """Where the next page starts after this order, in the listing order."""
        return f"{self.price}:{self.published_at!r}:{self.hash}"

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> StoredOrder:
        """From the values of an inserted row (`row_for`), without reading it back."""
        return cls.from_row(SimpleNamespace(**values))

    @classmethod
    def from_row(cls, row: Any) -> StoredOrder:
        return cls(
            hash=row.hash,
            kind=row.kind,
            order=_order_json(row.order_json),
            signature=row.signature,
            owner=row.owner,
            status=row.status,
            status_reason=row.status_reason,
            volume=int(row.volume),
            remaining=int(row.remaining),
            price=int(row.price),
            published_at=row.published_at,
            updated_at=row.updated_at,
        )


def _order_json(text: str) -> dict[str, Any]:
    """The stored order, or {} when the row is unreadable (the book then retires it)."""
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


@dataclass
class OrderQuery:
    """Filters of GET /v1/orders; None means "any"."""

    kind: str | None = None
    status: str | None = "open"
    category: int | None = None
    tag: int | None = None
    min_trust: int | None = None
    min_remaining: int | None = None
    max_price: int | None = None
    app: int | None = None
    dataset: int | None = None
    workerpool: int | None = None
    requester: str | None = None
    owner: str | None = None
    usable_by_requester: str | None = None
    usable_with_app: int | None = None
    usable_with_dataset: int | None = None
    usable_with_workerpool: int | None = None
    limit: int = 100
    offset: int = 0
    after: tuple[int, float, str] | None = None  # keyset: (price, published_at, hash)


def parse_cursor(text: str) -> tuple[int, float, str]:
    """The (price, published_at, hash) of a `StoredOrder.cursor`; ValueError when malformed."""
    match = _CURSOR.match(text)
    if match is None:
        raise ValueError("must be the `next` value of a previous page")
    published_at = float(match[2])
    if not math.isfinite(published_at):
        raise ValueError("must be the `next` value of a previous page")
    return int(match[1]), published_at, match[3]


_CURSOR = re.compile(r"^([0-9]{1,78}):([0-9.eE+-]{1,32}):(0x[0-9a-f]{64})$")


@dataclass
class DealRow:
    deal_id: str
    category: int
    price: int
    volume: int
    timestamp: float


class MarketStore:
    """The tables, behind async methods; the schema is created on first use.

    SQLAlchemy's asyncio extension needs greenlet, which the pinned dependencies do not
    ship, so a synchronous engine runs on a private thread pool instead: one thread for
    SQLite (a single writer anyway, and it keeps ":memory:" on one connection), several
    for a server database. Callers never block the event loop either way.
    """

    def __init__(self, database: str | Path, threads: int = 8) -> None:
        url = database_url(database)
        kwargs: dict[str, Any] = {}
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            # the API and the sync loop wait on SQLite's lock instead of failing
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
            if ":memory:" in url:
                kwargs["poolclass"] = StaticPool  # one connection, or each sees its own db
        else:
            kwargs["pool_pre_ping"] = True
        self.url = url
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite and ":memory:" not in url:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._threads = 1 if self.is_sqlite else threads
        self._pool: ThreadPoolExecutor | None = None
        self._ready = False
        self._lock = asyncio.Lock()

    @property
    def _executor(self) -> ThreadPoolExecutor:
        # created on demand: an app's lifespan may close the store and later run again
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="market-db")
        return self._pool

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._ready:
            await self.ready()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def ready(self) -> None:
        if self._ready:
            return
        async with self._lock:
            if not self._ready:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._schema)
                self._ready = True

    def _schema(self) -> None:
        metadata.create_all(self.engine)
        # a table made by an older version lacks the newer indexes: create_all skips them
        with self.engine.begin() as conn:
            for name in OBSOLETE_INDEXES:  # replaced by an index that also orders the page
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")
            for index in orders.indexes:
                index.create(conn, checkfirst=True)

    async def close(self) -> None:
        """Releases connections and threads; the store reopens if used again."""
        if self._pool is None:
            return
        pool, self._pool = self._pool, None
        await asyncio.get_running_loop().run_in_executor(pool, self.engine.dispose)
        pool.shutdown(wait=False)

    # ------------------------------------------------------------ orders

    async def insert_order(
        self, row: dict[str, Any], max_open_per_owner: int | None = None
    ) -> bool | None:
        """Insert unless the hash is listed already; True when inserted, None when the
        owner already has `max_open_per_owner` open orders (an order listed closed does not
        count)."""

        def run() -> bool | None:
            try:
                with self.engine.begin() as conn:
                    found = conn.scalar(select(orders.c.hash).where(orders.c.hash == row["hash"]))
                    if found is not None:
                        return False
                    if max_open_per_owner is not None and row["status"] == "open":
                        open_count = conn.scalar(
                            select(func.count())
                            .select_from(orders)
                            .where(orders.c.owner == row["owner"], orders.c.status == "open")
                        )
                        if int(open_count or 0) >= max_open_per_owner:
                            return None
                    conn.execute(orders.insert().values(**row))
            except IntegrityError:  # a concurrent publish of the same order won
                return False
            return True

        return await self._run(run)

    async def insert_orders(
        self, rows: Sequence[dict[str, Any]], max_open_per_owner: int | None = None
    ) -> list[bool | None]:
        """`insert_order` of each row (distinct hashes), in one transaction and one
        multi-row INSERT: per row True (inserted), False (listed already) or None (its
        owner is at `max_open_per_owner` open orders, counting the rows before it)."""
        if not rows:
            return []

        def run() -> list[bool | None]:
            with self.engine.begin() as conn:
                hashes = [r["hash"] for r in rows]
                listed = set(conn.scalars(select(orders.c.hash).where(orders.c.hash.in_(hashes))))
                owners = sorted({r["owner"] for r in rows})
                open_now: dict[str, int] = {
                    owner: int(n)
                    for owner, n in conn.execute(
                        select(orders.c.owner, func.count())
                        .where(orders.c.owner.in_(owners), orders.c.status == "open")
                        .group_by(orders.c.owner)
                    )
                }
                out: list[bool | None] = []
                fresh = []
                for r in rows:
                    if r["hash"] in listed:
                        out.append(False)
                        continue
                    if r["status"] == "open":
                        count = open_now.get(r["owner"], 0)
                        if max_open_per_owner is not None and count >= max_open_per_owner:
                            out.append(None)
                            continue
                        open_now[r["owner"]] = count + 1
                    listed.add(r["hash"])
                    fresh.append(r)
                    out.append(True)
                if fresh:
                    conn.execute(orders.insert(), fresh)
                return out

        try:
            return await self._run(run)
        except IntegrityError:  # a concurrent publish of one of them won: one at a time
            return [await self.insert_order(r, max_open_per_owner) for r in rows]

    async def get_orders(self, order_hashes: Sequence[str]) -> dict[str, StoredOrder]:
        """The listed ones of these orders, by hash."""

        def run() -> dict[str, StoredOrder]:
            with self.engine.connect() as conn:
                found = conn.execute(select(orders).where(orders.c.hash.in_(order_hashes)))
                return {r.hash: StoredOrder.from_row(r) for r in found}

        return await self._run(run) if order_hashes else {}

    async def get_order(self, order_hash: str) -> StoredOrder | None:
        def run() -> StoredOrder | None:
            with self.engine.connect() as conn:
                row = conn.execute(select(orders).where(orders.c.hash == order_hash)).first()
            return None if row is None else StoredOrder.from_row(row)

        return await self._run(run)

    async def update_order(self, order_hash: str, **values: Any) -> None:
        values.setdefault("updated_at", time.time())
        if isinstance(values.get("remaining"), int):
            values["remaining"] = pad(values["remaining"])

        def run() -> None:
            with self.engine.begin() as conn:
                conn.execute(orders.update().where(orders.c.hash == order_hash).values(**values))

        await self._run(run)

    async def open_orders(self, after: str = "", limit: int = 500) -> list[StoredOrder]:
        """Open orders by hash, a page at a time (keyset pagination for the sync loop)."""
        query = (
            select(orders)
            .where(orders.c.status == "open", orders.c.hash > after)
            .order_by(orders.c.hash)
            .limit(limit)
        )

        def run() -> list[StoredOrder]:
            with self.engine.connect() as conn:
                return [StoredOrder.from_row(r) for r in conn.execute(query)]

        return await self._run(run)

    async def list_page(self, q: OrderQuery) -> tuple[list[Any], int, bool]:
        """A page of matching rows (their PAGE_COLUMNS) in listing order (price,
        published_at, hash), the number of matches and whether that number is exact:
        counting stops at MAX_COUNT, so no request reads more of the book than its page and
        that many index entries (and a first page that is not full is its own count)."""
        page, counts = _statements(_shape(q), cut_arms=not self.is_sqlite)
        params = _params(q)
        first = q.offset == 0 and q.after is None

        def run() -> tuple[list[Any], int, bool]:
            with self.engine.connect() as conn:
                found = list(conn.execute(page, params))
                if first and len(found) < q.limit:
                    return found, len(found), True
                total = 0
                for count in counts:
                    total += int(conn.scalar(count, params) or 0)
                    if total > MAX_COUNT:
                        break
            return found, min(total, MAX_COUNT), total <= MAX_COUNT

        return await self._run(run)

    async def list_orders(self, q: OrderQuery) -> tuple[list[StoredOrder], int, bool]:
        """`list_page` with each row as a StoredOrder."""
        rows, total, exact = await self.list_page(q)
        return [StoredOrder.from_row(r) for r in rows], total, exact

    # ------------------------------------------------------------ deals

    async def insert_deal(self, deal: DealRow, block: int | None = None) -> bool:
        def run() -> bool:
            with self.engine.begin() as conn:
                found = conn.scalar(select(deals.c.deal_id).where(deals.c.deal_id == deal.deal_id))
                if found is not None:
                    return False
                conn.execute(
                    deals.insert().values(
                        deal_id=deal.deal_id,
                        category=pad(deal.category),
                        price=pad(deal.price),
                        volume=pad(deal.volume),
                        timestamp=deal.timestamp,
                        block=block,
                    )
                )
            return True

        return await self._run(run)

    async def deals_in(
        self, category: int, start: float | None = None, end: float | None = None
    ) -> list[DealRow]:
        query = select(deals).where(deals.c.category == pad(category))
        if start is not None:
            query = query.where(deals.c.timestamp >= start)
        if end is not None:
            query = query.where(deals.c.timestamp < end)
        # deal ids are unique, so equal timestamps still come back in a fixed order
        query = query.order_by(deals.c.timestamp, deals.c.block, deals.c.deal_id)

        def run() -> list[DealRow]:
            with self.engine.connect() as conn:
                return [_deal(r) for r in conn.execute(query)]

        return await self._run(run)

    async def latest_prices(self) -> list[tuple[DealRow, int]]:
        """Per category, the latest deal and the number of deals."""
        stats = (
            select(
                deals.c.category,
                func.max(deals.c.timestamp).label("ts"),
                func.count().label("n"),
            )
            .group_by(deals.c.category)
            .subquery()
        )
        same = and_(deals.c.category == stats.c.category, deals.c.timestamp == stats.c.ts)
        query = (
            select(deals, stats.c.n)
            .join(stats, same)
            .order_by(deals.c.category, deals.c.block.desc(), deals.c.deal_id.desc())
        )

        def run() -> list[tuple[DealRow, int]]:
            out: dict[int, tuple[DealRow, int]] = {}
            with self.engine.connect() as conn:
                for r in conn.execute(query):
                    d = _deal(r)
                    out.setdefault(d.category, (d, int(r.n)))
            return list(out.values())

        return await self._run(run)

    # ------------------------------------------------------------ meta

    async def get_meta(self, key: str) -> str | None:
        def run() -> str | None:
            with self.engine.connect() as conn:
                return conn.scalar(select(meta.c.value).where(meta.c.key == key))

        return await self._run(run)

    async def set_meta(self, key: str, value: str) -> None:
        def run() -> None:
            with self.engine.begin() as conn:
                done = conn.execute(meta.update().where(meta.c.key == key).values(value=value))
                if done.rowcount == 0:
                    conn.execute(meta.insert().values(key=key, value=value))

        await self._run(run)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: a commit appends the pages it changed to the log instead of copying every page
    it touches to a rollback journal and syncing both, which at 100 000 orders (nine
    B-trees touched at random places per order) made publishing wait on the disk; NORMAL
    syncs at checkpoints only, so a power cut may lose the last commits, never the file.
    A 64 MiB page cache (the default is 2 MiB) keeps the upper levels of the book's nine
    B-trees in memory, and reads beyond it map the file (up to 1 GiB) instead of copying
    each page through a read(): at 100 000 orders a query cost about a third less CPU."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.execute(f"PRAGMA mmap_size={1 << 30}")
    cursor.close()


def _deal(row: Any) -> DealRow:
    return DealRow(row.deal_id, int(row.category), int(row.price), int(row.volume), row.timestamp)


def _unrestricted_or(column: Any, name: str, zero: str) -> Any:
    """Restriction semantics of poco.vy: absent, zero, or equal to the value."""
    return or_(column.is_(None), column == zero, column == bindparam(name))


ZERO_ADDRESS = "0x" + "00" * 20
# Each filter of OrderQuery: its condition, on bound parameters named after the filter (so
# one statement per shape of query is built once and reused), and their values.
_EQUAL = ("kind", "status", "category", "app", "dataset", "workerpool", "requester", "owner")
_AT_LEAST = {"min_trust": "trust", "min_remaining": "remaining"}
_USABLE = {
    "usable_by_requester": ("requester_restrict", ZERO_ADDRESS),
    "usable_with_app": ("app_restrict", pad(0)),
    "usable_with_dataset": ("dataset_restrict", pad(0)),
    "usable_with_workerpool": ("workerpool_restrict", pad(0)),
}
FILTERS = (*_EQUAL, *_AT_LEAST, "max_price", *_USABLE, "tag")
_LEADS = {lead[0] for _, lead in INDEXES if lead}


def _condition(name: str, lead: tuple[str, ...], kind: str | None) -> Any:
    """The filter's condition on the query's chosen index `lead`: an equality on a column
    another index leads with is written as an expression (`column || ''`) that no index
    serves, so the planner cannot walk that index instead (SQLite, planning without
    statistics, would take either of two equally long equality prefixes)."""
    c = orders.c
    if name in _EQUAL:
        column = c[name] if name in lead or name not in _LEADS else c[name].concat("")
        return column == bindparam(name)
    if name in _AT_LEAST:
        return c[_AT_LEAST[name]] >= bindparam(name)
    if name == "max_price":
        return c.price <= bindparam(name)
    if name in _USABLE:
        restrict, zero = _USABLE[name]
        return _unrestricted_or(c[restrict], name, zero)
    # tag: a workerpool order must offer every requested bit; any other order must require
    # only bits the given tag offers (poco.vy: required & ~pool_tag == 0), word by word.
    # Each side is one sum of non-negative per-word misses below 1, not an equality per
    # word: PostgreSQL guesses an equality on an expression holds for 0.5 % of rows, so
    # eight of them looked so rare that it scanned the table rather than walk the listing
    # index (300 ms at 100 000 orders); for `<` it guesses a third.
    words = range(TAG_WORDS)
    offered: list[Any] = [bindparam(f"tag{i}", type_=BigInteger) for i in words]
    pool_misses = _sum([offered[i] - c[f"tag{i}"].op("&")(offered[i]) for i in words])
    unoffered = [bindparam(f"untag{i}", type_=BigInteger) for i in words]
    other_misses = _sum([c[f"tag{i}"].op("&")(unoffered[i]) for i in words])
    if kind is not None:  # one side only: planners estimate it better without the OR
        return (pool_misses if kind == "workerpool" else other_misses) < 1
    return or_(
        and_(c.kind == "workerpool", pool_misses < 1),
        and_(c.kind != "workerpool", other_misses < 1),
    )


def _sum(terms: list[Any]) -> Any:
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _params(q: OrderQuery) -> dict[str, Any]:
    """The bound values of `_statements(_shape(q))`."""
    out: dict[str, Any] = {"limit": q.limit, "offset": q.offset, "count_to": MAX_COUNT + 1}
    out["arm_limit"] = q.offset + q.limit
    for name in FILTERS:
        value = getattr(q, name)
        if value is None:
            continue
        if name == "tag":
            for i, word in enumerate(tag_words(value)):
                out[f"tag{i}"], out[f"untag{i}"] = word, ~word & WORD_MASK
        elif isinstance(value, int):
            out[name] = pad(value)
        else:
            out[name] = value
    if q.after is not None:
        out["after_price"] = pad(q.after[0])
        out["after_time"], out["after_hash"] = q.after[1], q.after[2]
    return out


Shape = tuple[str | None, str | None, tuple[str, ...], bool]


def _shape(q: OrderQuery) -> Shape:
    """What a query's statements depend on: its kind and status (the index arms) and which
    filters it sets; the values are bound parameters."""
    filters = tuple(n for n in FILTERS if n not in ("kind", "status") and getattr(q, n) is not None)
    return q.kind, q.status, filters, q.after is not None


@lru_cache(maxsize=1024)
def _statements(shape: Shape, cut_arms: bool = False) -> tuple[Any, tuple[Any, ...]]:
    """The page's SELECT and the count of each arm, for queries of this shape (`cut_arms`:
    see `_page`)."""
    page = _page(_arms(shape, keyset=True), cut_arms)
    counts = tuple(
        select(func.count()).select_from(
            select(orders.c.hash).where(arm).limit(bindparam("count_to", type_=Integer)).subquery()
        )
        for arm in _arms(shape, keyset=False)
    )
    return page, counts


def _arms(shape: Shape, keyset: bool) -> list[Any]:
    """The WHERE clause of each (kind, status) the query spans on the index it leads with:
    one when it fixes both (or the index has no kind), else one per kind that carries the
    index's column and per status, so each arm is a range of the index in listing order
    and the page merges them instead of sorting every match. `keyset`: from the cursor on
    (a page), else from the start (the count of matches over all pages)."""
    kind, status, filters, after = shape
    fixed = {*filters, *(["kind"] if kind is not None else [])}
    lead = next(lead for _, lead in INDEXES if not lead or lead[0] in fixed)
    kinds: Sequence[str | None] = [kind]
    if "kind" in lead and kind is None:
        kinds = KINDS_WITH[lead[0]]
    statuses: Sequence[str | None] = [status] if status is not None else STATUSES
    c = orders.c
    base = [_condition(name, lead, kind) for name in filters]
    if keyset and after:
        cursor = (
            bindparam("after_price", type_=String),
            bindparam("after_time", type_=Float),
            bindparam("after_hash", type_=String),
        )
        base.append(tuple_(c.price, c.published_at, c.hash) > tuple_(*cursor))
    return [
        and_(
            true(),
            *base,
            *([] if k is None else [(c.kind if "kind" in lead else c.kind.concat("")) == k]),
            *([] if s is None else [c.status == s]),
        )
        for k in kinds
        for s in statuses
    ]


def _page(arms: list[Any], cut_arms: bool) -> Any:
    """The page's SELECT: one arm in index order, or the arms merged in listing order.

    PostgreSQL plans each arm of a UNION ALL apart and keeps an index's order only where
    the arm asks for it, so there (`cut_arms`) each arm is ordered and cut to the rows a
    page can take from it; SQLite merges the plain arms' index order as it is and would
    sort the cut ones again."""
    columns = [orders.c[name] for name in PAGE_COLUMNS]
    limit, offset = bindparam("limit", type_=Integer), bindparam("offset", type_=Integer)
    if len(arms) == 1:
        ordered = select(*columns).where(arms[0]).order_by(*[orders.c[n] for n in LISTING])
        return ordered.limit(limit).offset(offset)
    listing = [orders.c[n] for n in LISTING]
    selects = [select(*columns).where(arm) for arm in arms]
    if cut_arms:
        arm_limit = bindparam("arm_limit", type_=Integer)
        cut = [s.order_by(*listing).limit(arm_limit).subquery() for s in selects]
        selects = [select(c) for c in cut]
    merged = union_all(*selects).subquery("arms")
    ordered = select(merged).order_by(*[merged.c[n] for n in LISTING])
    return ordered.limit(limit).offset(offset)


def row_for(
    *,
    order_hash: str,
    kind: str,
    order_json: dict[str, Any],
    signature: str,
    owner: str,
    status: str,
    status_reason: str | None,
    remaining: int,
    published_at: float,
) -> dict[str, Any]:
    """The orders row of a validated order (fields as from `_Struct.to_json`)."""
    o = order_json
    price = {
        "app": lambda: o["app_price"],
        "dataset": lambda: o["dataset_price"],
        "workerpool": lambda: o["workerpool_price"],
        # the most a request can pay per task: each maximum beyond what a deal can pay
        # (poco.vy MAX_PRICE) counts as that, so the sum is always a uint256
        "request": lambda: sum(
            min(o[f"{k}_max_price"], MAX_PRICE - 1) for k in ("app", "dataset", "workerpool")
        ),
    }[kind]()

    def opt(name: str) -> str | None:
        return pad(o[name]) if name in o else None

    if kind == "app":
        assets = {"app": pad(o["app"]), "dataset": None, "workerpool": None}
    elif kind == "dataset":
        assets = {"app": None, "dataset": pad(o["dataset"]), "workerpool": None}
    elif kind == "workerpool":
        assets = {"app": None, "dataset": None, "workerpool": pad(o["workerpool"])}
    else:
        assets = {
            "app": pad(o["app"]),
            "dataset": pad(o["dataset"]),
            "workerpool": pad(o["workerpool"]),
        }
    restricts = {
        "app_restrict": opt("app_restrict"),
        "dataset_restrict": opt("dataset_restrict"),
        # a request naming a workerpool restricts itself to that pool
        "workerpool_restrict": pad(o["workerpool"])
        if kind == "request"
        else opt("workerpool_restrict"),
        "requester_restrict": o.get("requester_restrict"),
    }
    tag = int(o["tag"], 16)
    return {
        "hash": order_hash,
        "kind": kind,
        "order_json": json.dumps(o),
        "signature": signature,
        "owner": owner,
        "status": status,
        "status_reason": status_reason,
        "volume": pad(o["volume"]),
        "remaining": pad(remaining),
        "price": pad(price),
        "category": opt("category"),
        "trust": opt("trust"),
        "requester": o.get("requester"),
        **assets,
        **restricts,
        **{f"tag{i}": w for i, w in enumerate(tag_words(tag))},
        "published_at": published_at,
        "updated_at": published_at,
    }
