"""Batch publishing, keyset pagination and the publish path's chain cache, through the API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from comptoir.market import InMemoryChainView, sign_cancel
from comptoir.market import store as store_module
from comptoir.market.app import MAX_BATCH
from comptoir.market.lookups import ChainLookups, TTLCache
from comptoir.market.sync import MarketSync

from .support import (
    ACTORS,
    APP,
    CHAIN_ID,
    HUB,
    app_order,
    body,
    hash_of,
    pool_order,
    publish,
    request_order,
    signed,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_clock(client: httpx.AsyncClient) -> Clock:
    """Drives the TTL of the book's chain cache by hand."""
    clock = Clock()
    lookups: ChainLookups = client.app.state.market.book.lookups  # type: ignore[attr-defined]
    lookups.assets.clock = lookups.balances.clock = clock
    return clock


async def batch(client: httpx.AsyncClient, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    r = await client.post("/v1/batch/orders", json=bodies)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    assert len(results) == len(bodies)
    return results


# ---------------------------------------------------------------- batch


async def test_batch_reports_each_order(client: httpx.AsyncClient) -> None:
    listed_before = app_order(app_price=1)
    await publish(client, listed_before)
    good = [request_order(volume=v) for v in (1, 2, 3)]
    forged = body(app_order(app_price=2), ACTORS.stranger)
    unknown = signed(app_order(app=999))
    bodies = [signed(good[0]), forged, signed(good[1]), signed(listed_before), unknown]
    bodies += [signed(good[2]), signed(good[2])]  # the same order twice in one batch
    results = await batch(client, bodies)
    assert [r["status"] for r in results] == [201, 400, 201, 200, 422, 201, 200]
    assert results[1]["order"] is None and "signature" in results[1]["detail"]
    assert "not a registered app" in results[4]["detail"]
    assert results[0]["order"]["hash"] == hash_of(good[0])
    page = (await client.get("/v1/orders", params={"status": "any"})).json()
    assert page["total"] == 4  # listed_before + three requests, the duplicate once
    assert {o["hash"] for o in page["orders"]} == {hash_of(o) for o in [listed_before, *good]}


async def test_batch_is_bounded(client: httpx.AsyncClient) -> None:
    one = signed(request_order())
    r = await client.post("/v1/batch/orders", json=[one] * (MAX_BATCH + 1))
    assert r.status_code == 422
    assert "at most 100" in r.json()["detail"]
    assert (await client.get("/v1/orders")).json()["total"] == 0  # nothing listed
    r = await client.post("/v1/batch/orders", json=[one, {"kind": "app", "order": {}}])
    assert r.status_code == 422  # a malformed element refuses the whole batch
    assert (await client.get("/v1/orders")).json()["total"] == 0
    assert await batch(client, []) == []


async def test_batch_counts_the_owner_cap_across_its_own_orders(
    client: httpx.AsyncClient,
) -> None:
    client.app.state.market.book.max_open_per_owner = 3  # type: ignore[attr-defined]
    await publish(client, request_order(volume=1))
    results = await batch(client, [signed(request_order(volume=v)) for v in (2, 3, 4, 5)])
    assert [r["status"] for r in results] == [201, 201, 403, 403]
    assert "3 open orders" in results[2]["detail"]


async def test_batch_refuses_an_order_whose_deposit_is_missing(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    memchain.balances.clear()
    results = await batch(client, [signed(request_order()), signed(app_order())])
    assert [r["status"] for r in results] == [403, 201]
    assert "deposit 1 more" in results[0]["detail"]


# ---------------------------------------------------------------- pagination


async def test_keyset_pages_walk_the_whole_book_once_in_order(client: httpx.AsyncClient) -> None:
    # equal prices (and often equal publish times in one batch): the hash breaks ties
    orders = [request_order(volume=v, app_max_price=v % 3) for v in range(1, 24)]
    await batch(client, [signed(o) for o in orders])
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"kind": "request", "limit": 5}
    for _ in range(len(orders)):  # bounded: a cursor that does not advance fails
        page = (await client.get("/v1/orders", params=params)).json()
        assert page["total"] == len(orders) and page["total_exact"]
        seen += page["orders"]
        if page["next"] is None:
            break
        params["after"] = page["next"]
    else:
        pytest.fail("the pages never ended")
    assert len(seen) == len(orders)
    assert {o["hash"] for o in seen} == {hash_of(o) for o in orders}
    keys = [(o["price"], o["published_at"], o["hash"]) for o in seen]
    assert keys == sorted(keys)
    by_offset = (await client.get("/v1/orders", params={"kind": "request", "limit": 100})).json()
    assert [o["hash"] for o in by_offset["orders"]] == [o["hash"] for o in seen]


async def test_keyset_pages_keep_the_filters(client: httpx.AsyncClient) -> None:
    await batch(client, [signed(request_order(volume=v)) for v in range(1, 6)])
    await batch(client, [signed(pool_order(volume=v)) for v in range(1, 6)])
    first = (await client.get("/v1/orders", params={"kind": "workerpool", "limit": 2})).json()
    rest = (
        await client.get(
            "/v1/orders", params={"kind": "workerpool", "limit": 10, "after": first["next"]}
        )
    ).json()
    assert rest["next"] is None
    assert {o["kind"] for o in first["orders"] + rest["orders"]} == {"workerpool"}
    assert len(first["orders"] + rest["orders"]) == 5


@pytest.mark.parametrize(
    "after", ["x", "1:2", "1:nan:0x" + "00" * 32, "1:inf:0x" + "00" * 32, "1:2:0xZZ"]
)
async def test_a_malformed_cursor_is_one_sentence(client: httpx.AsyncClient, after: str) -> None:
    r = await client.get("/v1/orders", params={"after": after})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("Query parameter after must be the `next` value")


async def test_totals_stop_counting_past_the_cap(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MAX_COUNT", 3)
    await batch(client, [signed(request_order(volume=v)) for v in range(1, 6)])
    page = (await client.get("/v1/orders", params={"limit": 2})).json()
    assert (page["total"], page["total_exact"], len(page["orders"])) == (3, False, 2)
    few = (await client.get("/v1/orders", params={"min_remaining": 5})).json()
    assert (few["total"], few["total_exact"]) == (1, True)


# ---------------------------------------------------------------- chain cache


async def test_a_dropped_deposit_refuses_listings_once_the_cache_expires(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    clock = fake_clock(client)
    await publish(client, request_order(volume=1))
    memchain.balances.clear()  # the requester withdrew everything
    clock.now += client.app.state.market.book.lookups.balances.ttl  # type: ignore[attr-defined]
    r = await client.post("/v1/orders", json=signed(request_order(volume=2)))
    assert r.status_code == 403 and "deposit 1 more" in r.json()["detail"]


async def test_a_refusal_is_never_served_from_the_cache(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    fake_clock(client)  # time stands still: only a fresh read can see the change
    memchain.balances.clear()
    assert (await client.post("/v1/orders", json=signed(request_order()))).status_code == 403
    memchain.deposit(ACTORS.requester.address, 5)
    await publish(client, request_order())
    # an asset that changed hands: the new owner lists at once, the old one is refused
    await publish(client, app_order(app_price=1))
    memchain.register(APP, ACTORS.stranger.address, "app")
    r = await client.post("/v1/orders", json=body(app_order(app_price=3), ACTORS.stranger))
    assert r.status_code == 201
    r = await client.post("/v1/orders", json=signed(app_order(app_price=4)))
    assert r.status_code == 400


async def test_a_cancel_frees_the_owners_slot_at_once(client: httpx.AsyncClient) -> None:
    client.app.state.market.book.max_open_per_owner = 2  # type: ignore[attr-defined]
    first = await publish(client, request_order(volume=1))
    await publish(client, request_order(volume=2))
    third = request_order(volume=3)
    assert (await client.post("/v1/orders", json=signed(third))).status_code == 403
    signature = sign_cancel(first["hash"], ACTORS.requester, CHAIN_ID, HUB)
    r = await client.request("DELETE", f"/v1/orders/{first['hash']}", json={"signature": signature})
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    await publish(client, third)


def test_the_cache_is_bounded_in_size_and_time() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(ttl=5.0, size=3, clock=clock)
    for i in range(5):
        cache.put(i, str(i))
    assert len(cache) == 3 and cache.get(0) == (False, None) and cache.get(4) == (True, "4")
    clock.now += 5.0
    assert cache.get(4) == (False, None)
    off: TTLCache[int, str] = TTLCache(ttl=0.0, size=3, clock=clock)
    off.put(1, "1")
    assert off.get(1) == (False, None)


async def test_a_book_made_before_the_new_indexes_gets_them(tmp_path: Any) -> None:
    from sqlalchemy import inspect

    from comptoir.market.store import MarketStore

    path = tmp_path / "old.db"
    first = MarketStore(path)
    await first.ready()
    first.engine.dispose()
    with first.engine.begin() as conn:  # as an older version left it: no asset index,
        conn.exec_driver_sql("DROP INDEX ix_market_orders_app_kind")  # and indexes since
        conn.exec_driver_sql("CREATE INDEX ix_market_orders_owner ON market_orders (owner)")
        conn.exec_driver_sql("CREATE INDEX ix_market_orders_category ON market_orders (category)")
    await first.close()
    again = MarketStore(path)
    await again.ready()
    names = {i["name"] for i in inspect(again.engine).get_indexes("market_orders")}
    assert "ix_market_orders_app_kind" in names
    assert not names & {"ix_market_orders_owner", "ix_market_orders_category"}
    assert names >= {"ix_market_orders_owner_book", "ix_market_orders_category_kind"}
    with again.engine.connect() as conn:  # a file book: WAL, so commits do not copy pages
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar() == 1 << 30
    await again.close()


async def test_sync_reads_every_match_across_keyset_pages(client: httpx.AsyncClient) -> None:
    """The sync's reads of the book page on the listing keyset: every order once, with
    pages smaller than the matches and prices that tie."""
    orders = [request_order(volume=v) for v in range(1, 6)]
    orders += [app_order(app_price=p) for p in (3, 3, 1)]
    results = await batch(client, [signed(o) for o in orders])
    assert [r["status"] for r in results] == [201] * len(orders)
    market = client._transport.app.state.market  # type: ignore[attr-defined]
    sync = MarketSync(market.book, interval=0, page_size=2)
    got = await sync._every_match(store_module.OrderQuery(status="open"))
    assert sorted(o.hash for o in got) == sorted(hash_of(o) for o in orders)
    apps = await sync._every_match(store_module.OrderQuery(kind="app", status="open"))
    assert [o.price for o in apps] == [1, 3, 3]
