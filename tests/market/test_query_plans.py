"""Every filter combination GET /v1/orders documents is served by the index it leads with,
in listing order (no scan of the table, no sort of the matches), on SQLite and PostgreSQL.

The plans are the databases' own (EXPLAIN of the statements the store runs). PostgreSQL
would scan a test-sized table whatever its indexes, so it plans with sequential scans and
sorts priced out (enable_seqscan/enable_sort off): what remains is a scan or a sort only
when no index can serve the query, which is what must never happen.
"""

from __future__ import annotations

import itertools
import re
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eth_utils import to_checksum_address

from comptoir.market.store import (
    STATUSES,
    MarketStore,
    OrderQuery,
    _params,
    _shape,
    _statements,
    row_for,
)

from .support import ACTORS, app_order, dataset_order, pool_order, request_order

REQUESTER = ACTORS.requester.address
# the filter that picks each index, most selective first, with a value to filter by
ANCHORS: dict[str, tuple[str | None, Any]] = {
    "requester": ("requester", REQUESTER),
    "owner_book": ("owner", REQUESTER),
    "app_kind": ("app", 1),
    "dataset_kind": ("dataset", 2),
    "workerpool_kind": ("workerpool", 3),
    "category_kind": ("category", 0),
    "open": (None, None),  # or "book" when the query names a kind
}
# filters no index leads with: checked on the rows of the anchor's range
OTHERS: dict[str, Any] = {
    "tag": 2,
    "min_trust": 1,
    "min_remaining": 5,
    "max_price": 500,
    "usable_by_requester": REQUESTER,
    "usable_with_app": 1,
    "usable_with_dataset": 2,
    "usable_with_workerpool": 3,
}
CURSOR = (10, 1.5, "0x" + "11" * 32)
SORT = re.compile(r"^\s*(->\s+)?(Incremental )?Sort\b(?! Key)")  # a Sort node, not a key


@pytest.fixture
async def store(database: str) -> AsyncIterator[MarketStore]:
    found = MarketStore(database)
    await found.ready()
    now = time.time()
    rows = []
    # a book where each filter value is one of several, so the planners see it selective
    requesters = [REQUESTER, *[to_checksum_address(f"0x{n:040x}") for n in range(1, 10)]]
    book = [
        request_order(
            volume=1 + n % 7,
            app=n % 10,
            dataset=n % 5,
            workerpool=n % 8,
            category=n % 5,
            requester=requesters[n % 10],
        )
        for n in range(1200)
    ]
    book += [app_order(app=n % 10, app_price=n) for n in range(240)]
    book += [dataset_order(dataset=n % 5, dataset_price=n) for n in range(120)]
    book += [pool_order(workerpool=n % 8, category=n % 5, workerpool_price=n) for n in range(240)]
    for i, order in enumerate(book):
        kind = type(order).__name__.removesuffix("Order").lower()
        rows.append(
            row_for(
                order_hash=f"0x{i:064x}",
                kind=kind,
                order_json=order.to_json(),
                signature="0x" + "ab" * 65,
                owner=getattr(order, "requester", requesters[i % 10]),
                status=STATUSES[i % 4],
                status_reason=None,
                remaining=order.volume,
                published_at=now + i,
            )
        )
    await found.insert_orders(rows)
    if not found.is_sqlite:
        with found.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE market_orders")
    yield found
    await found.close()


def plan_problems(store: MarketStore, query: OrderQuery, index: str) -> list[str]:
    """What is wrong with the plans of a query's page and counts ([] when nothing): the page
    must read the table through ix_market_orders_<index> alone and not sort, each count
    through an index (which one is the planner's: a count needs no order)."""
    page, counts = _statements(_shape(query), cut_arms=not store.is_sqlite)
    params = _params(query)
    problems = []
    with store.engine.begin() as conn:
        if not store.is_sqlite:
            for knob in ("seqscan", "sort", "incremental_sort", "bitmapscan"):
                conn.exec_driver_sql(f"SET LOCAL enable_{knob} = off")
        for statement, is_page in [(page, True), *[(c, False) for c in counts]]:
            expected = f"ix_market_orders_{index}" if is_page else "ix_market_orders_"
            sql = str(
                statement.params(**params).compile(
                    store.engine, compile_kwargs={"literal_binds": True}
                )
            )
            if store.is_sqlite:
                lines = [r[3] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
                reads = [line for line in lines if "market_orders" in line]
                wrong = [
                    line
                    for line in reads
                    if not line.startswith("SEARCH market_orders USING ")
                    or f"INDEX {expected}" not in line
                ]
                sorts = [line for line in lines if "TEMP B-TREE" in line] if is_page else []
            else:
                lines = [r[0] for r in conn.exec_driver_sql(f"EXPLAIN (COSTS OFF) {sql}")]
                reads = [line for line in lines if " on market_orders" in line]
                wrong = [line for line in reads if f"using {expected}" not in line]
                sorts = [line for line in lines if SORT.search(line)] if is_page else []
            if not reads:
                problems.append(f"no read of market_orders in {lines}")
            problems += wrong + sorts
    return problems


def queries() -> list[tuple[OrderQuery, str]]:
    out = []
    for (index, (anchor, value)), other, kind, status, after in itertools.product(
        ANCHORS.items(),
        [None, *OTHERS],
        [None, "request", "workerpool"],
        ["open", None],
        [None, CURSOR],
    ):
        query = OrderQuery(kind=kind, status=status, limit=20, after=after)
        if anchor is not None:
            setattr(query, anchor, value)
        if other is not None:
            setattr(query, other, OTHERS[other])
        if anchor is None and kind is not None:
            index = "book"
        out.append((query, index))
    return out


async def test_every_documented_filter_is_an_ordered_index_range(store: MarketStore) -> None:
    checked = queries()
    failures = {
        repr(q): problems for q, index in checked if (problems := plan_problems(store, q, index))
    }
    assert not failures, "\n".join(f"{q}: {p}" for q, p in failures.items())
    assert len(checked) == len(ANCHORS) * (len(OTHERS) + 1) * 3 * 2 * 2


async def test_a_missing_index_is_caught(store: MarketStore) -> None:
    """The check can fail: without the app index an app filter walks another index."""
    query = OrderQuery(kind="request", app=1, max_price=500, limit=20)
    assert plan_problems(store, query, "app_kind") == []
    with store.engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX ix_market_orders_app_kind")
    store.engine.dispose()  # sqlite3 would answer from its cache of prepared statements
    assert plan_problems(store, query, "app_kind") != []


async def test_the_page_merges_arms_in_listing_order(store: MarketStore) -> None:
    """A query spanning several (kind, status) arms returns the same orders as a sort of
    every match, page after page by cursor."""
    every, _, _ = await store.list_orders(OrderQuery(app=1, status=None, limit=500))
    expected = sorted(every, key=lambda o: (o.price, o.published_at, o.hash))
    assert {o.kind for o in expected} == {"app", "request"}
    assert len({o.status for o in expected}) > 1
    seen = []
    query = OrderQuery(app=1, status=None, limit=7)
    for _ in range(len(expected)):
        page, total, exact = await store.list_orders(query)
        assert (total, exact) == (len(expected), True)
        seen += page
        if len(page) < query.limit:
            break
        last = page[-1]
        query.after = (last.price, last.published_at, last.hash)
    assert [o.hash for o in seen] == [o.hash for o in expected]
