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
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    MetaData,
    String,
    Table,
    Text,
    and_,
    create_engine,
    func,
    or_,
    select,
    true,
    tuple_,
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
# the filter that leads each index, most selective first (the order `_index_for` tries)
INDEXES = (
    ("requester", ("requester", "status")),
    ("app_kind", ("app", "kind", "status")),
    ("dataset_kind", ("dataset", "kind", "status")),
    ("workerpool_kind", ("workerpool", "kind", "status")),
    ("category", ("category", "status")),
    ("book", ("kind", "status")),
    ("open", ("status",)),
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
    # every filter a taker starts from leads an index that ends in the listing order
    # (price, published_at, hash), so a page is an index range scan, never a sort of the book
    # (kind second: the count of "app X's requests" then reads the index alone)
    *[Index(f"ix_market_orders_{name}", *columns, *LISTING) for name, columns in INDEXES],
    Index("ix_market_orders_owner", "owner", "status"),
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

    async def list_orders(self, q: OrderQuery) -> tuple[list[StoredOrder], int, bool]:
        """A page of matching orders in listing order (price, published_at, hash), the
        number of matches and whether that number is exact: counting stops at MAX_COUNT,
        so no request reads more of the book than its page and that many entries (and a
        first page that is not full is its own count)."""
        where = and_(true(), *_conditions(q))
        # SQLite plans without statistics and may walk the kind index for a workerpool
        # filter (a scan of every request): name the index the filters lead with
        index = _index_for(q)
        matching, page = select(orders.c.hash), select(orders)
        if index is not None:
            matching = matching.with_hint(orders, f"INDEXED BY {index}", "sqlite")
            page = page.with_hint(orders, f"INDEXED BY {index}", "sqlite")
        limited = matching.where(where).limit(MAX_COUNT + 1).subquery()
        count = select(func.count()).select_from(limited)
        page = page.where(where)
        if q.after is not None:
            price, published_at, after_hash = q.after
            page = page.where(
                tuple_(orders.c.price, orders.c.published_at, orders.c.hash)
                > tuple_(pad(price), published_at, after_hash)
            )
        page = (
            page.order_by(orders.c.price, orders.c.published_at, orders.c.hash)
            .limit(q.limit)
            .offset(q.offset)
        )

        first = q.offset == 0 and q.after is None

        def run() -> tuple[list[StoredOrder], int, bool]:
            with self.engine.connect() as conn:
                found = [StoredOrder.from_row(r) for r in conn.execute(page)]
                if first and len(found) < q.limit:
                    return found, len(found), True
                total = int(conn.scalar(count) or 0)
            return found, min(total, MAX_COUNT), total <= MAX_COUNT

        return await self._run(run)

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


def _deal(row: Any) -> DealRow:
    return DealRow(row.deal_id, int(row.category), int(row.price), int(row.volume), row.timestamp)


def _unrestricted_or(column: Any, value: str) -> Any:
    """Restriction semantics of poco.vy: absent, zero, or equal to the value."""
    zero = "0x" + "00" * 20 if len(value) == 42 else pad(0)
    return or_(column.is_(None), column == zero, column == value)


def _index_for(q: OrderQuery) -> str | None:
    """The first index (in INDEXES order) whose leading column the query fixes."""
    fixed = {n for n in ("requester", "app", "dataset", "workerpool", "category", "kind")}
    fixed = {n for n in fixed if getattr(q, n) is not None}
    if q.status is not None:
        fixed.add("status")
    for name, columns in INDEXES:
        if columns[0] in fixed:
            return f"ix_market_orders_{name}"
    return None


def _conditions(q: OrderQuery) -> Sequence[Any]:
    c = orders.c
    out: list[Any] = []
    if q.kind is not None:
        out.append(c.kind == q.kind)
    if q.status is not None:
        out.append(c.status == q.status)
    if q.category is not None:
        out.append(c.category == pad(q.category))
    if q.min_trust is not None:
        out.append(c.trust >= pad(q.min_trust))
    if q.min_remaining is not None:
        out.append(c.remaining >= pad(q.min_remaining))
    if q.max_price is not None:
        out.append(c.price <= pad(q.max_price))
    for name in ("app", "dataset", "workerpool"):
        value = getattr(q, name)
        if value is not None:
            out.append(c[name] == pad(value))
    if q.requester is not None:
        out.append(c.requester == q.requester)
    if q.owner is not None:
        out.append(c.owner == q.owner)
    if q.usable_by_requester is not None:
        out.append(_unrestricted_or(c.requester_restrict, q.usable_by_requester))
    if q.usable_with_app is not None:
        out.append(_unrestricted_or(c.app_restrict, pad(q.usable_with_app)))
    if q.usable_with_dataset is not None:
        out.append(_unrestricted_or(c.dataset_restrict, pad(q.usable_with_dataset)))
    if q.usable_with_workerpool is not None:
        out.append(_unrestricted_or(c.workerpool_restrict, pad(q.usable_with_workerpool)))
    if q.tag is not None:
        words = tag_words(q.tag)
        # A workerpool order must offer every requested bit; any other order must
        # require only bits the given tag offers (poco.vy: required & ~pool_tag == 0).
        pool = and_(true(), *[c[f"tag{i}"].op("&")(w) == w for i, w in enumerate(words) if w])
        other = and_(
            true(),
            *[
                c[f"tag{i}"].op("&")(~w & WORD_MASK) == 0
                for i, w in enumerate(words)
                if w != WORD_MASK
            ],
        )
        out.append(or_(and_(c.kind == "workerpool", pool), and_(c.kind != "workerpool", other)))
    return out


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
