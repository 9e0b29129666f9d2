"""The explorer's pages served by the real market app over a stand-in chain (no node): the
order book and the price index render and filter, bad input gets a clear answer, unknown
ids a 404 page, and /docs needs nothing from the internet."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.market.support import (
    ACTORS,
    APP,
    CHAIN_ID,
    HUB,
    POOL,
    app_order,
    body,
    hash_of,
    pool_order,
)

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    chain = InMemoryChainView()
    chain.register(APP, ACTORS.app_owner.address, "app")
    chain.register(POOL, ACTORS.pool_owner.address, "workerpool")
    # the market lists only orders whose signers hold a deposit on the hub
    for actor in (ACTORS.requester, ACTORS.pool_owner):
        chain.deposit(actor.address, 10**9)
    settings = MarketSettings(
        chain_id=CHAIN_ID,
        hub=HUB,
        database=str(tmp_path / "market.db"),
        chain=chain,
        sync_interval=None,
    )
    app = create_market_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://market") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.market.store.close()


async def _publish(client: httpx.AsyncClient) -> list[str]:
    orders = [
        (app_order(app_price=5), ACTORS.app_owner),
        (pool_order(workerpool_price=20, trust=3), ACTORS.pool_owner),
        (pool_order(workerpool_price=90, trust=9, tag=(2).to_bytes(32, "big")), ACTORS.pool_owner),
    ]
    for order, signer in orders:
        r = await client.post("/v1/orders", json=body(order, signer))
        assert r.status_code == 201, r.text
    return [hash_of(o) for o, _ in orders]


def _rows(html: str) -> list[str]:
    return re.findall(r'<span class="kind kind-(\w+)">', html)


async def test_home_shows_book_and_says_the_chain_is_missing(client: httpx.AsyncClient) -> None:
    await _publish(client)
    r = await client.get("/explorer/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert sorted(_rows(r.text)) == ["app", "workerpool", "workerpool"]
    assert "not connected to a chain yet" in r.text
    # every script and stylesheet is served by the market itself
    for src in re.findall(r'(?:src|href)="(/[^"]+\.(?:js|css|svg))"', r.text):
        assert (await client.get(src)).status_code == 200, src
    assert "http://" not in re.sub(r'href="http://[^"]*"', "", r.text.split("<main")[0])
    redirect = await client.get("/", follow_redirects=False)
    assert redirect.status_code == 307 and redirect.headers["location"] == "/explorer/"


async def test_book_filters(client: httpx.AsyncClient) -> None:
    await _publish(client)
    pools = await client.get("/explorer/fragments/book", params={"kind": "workerpool"})
    assert _rows(pools.text) == ["workerpool", "workerpool"]
    cheap = await client.get("/explorer/fragments/book", params={"max_price": "50"})
    assert sorted(_rows(cheap.text)) == ["app", "workerpool"]
    trusted = await client.get("/explorer/fragments/book", params={"min_trust": "5"})
    assert _rows(trusted.text) == ["workerpool"] and ">90<" in trusted.text
    gpu = await client.get("/explorer/fragments/book", params={"kind": "workerpool", "tag": "gpu"})
    assert _rows(gpu.text) == ["workerpool"] and ">GPU<" in gpu.text
    none = await client.get("/explorer/fragments/book", params={"max_price": "1", "kind": "app"})
    assert _rows(none.text) == [] and "No open order matches" in none.text


async def test_bad_filters_are_ignored_or_refused_in_one_sentence(
    client: httpx.AsyncClient,
) -> None:
    await _publish(client)
    odd = await client.get(
        "/explorer/fragments/book",
        params={"kind": "spaceship", "min_trust": "-3", "max_price": "1e9", "category": "x"},
    )
    assert odd.status_code == 200 and len(_rows(odd.text)) == 3
    bad_tag = await client.get("/explorer/fragments/book", params={"tag": "purple"})
    assert bad_tag.status_code == 200 and 'id="tag-err"' in bad_tag.text
    huge = await client.get("/explorer/fragments/book", params={"tag": "g" * 5000})
    assert huge.status_code == 422 and huge.json()["detail"].startswith("Invalid tag")


async def test_chart_draws_recorded_deals(client: httpx.AsyncClient) -> None:
    market = client.app.state.market  # type: ignore[attr-defined]
    now = time.time()
    await market.record_deal(1, 20, 3, now - 120)
    await market.record_deal(1, 30, 1, now - 100)
    await market.record_deal(1, 25, 2, now - 30)
    r = await client.get("/explorer/fragments/chart", params={"category": "1", "interval": "60"})
    closes = re.findall(r'class="candle [^"]*"[^>]*data-close="(\d+)"', r.text)
    # the wide and the narrow picture both hold every candle
    assert closes.count("25") == 2 and "30" in closes
    assert 'data-testid="last-price">25<' in r.text
    volumes = re.findall(r'data-volume="(\d+)"', r.text)
    assert sum(map(int, volumes)) == 2 * 6
    empty = await client.get("/explorer/fragments/chart", params={"category": "7"})
    assert "No deal in this category yet" in empty.text and 'class="candle' not in empty.text


async def test_unknown_ids_and_search(client: httpx.AsyncClient) -> None:
    hashes = await _publish(client)
    missing = "0x" + "cd" * 32
    for path in (f"/explorer/deals/{missing}", "/explorer/deals/xyz", "/explorer/tasks/0x12"):
        r = await client.get(path)
        assert r.status_code == 404 and "is known on this chain" in r.text, path
    assert (await client.get(f"/explorer/orders/{missing}")).status_code == 404
    found = await client.get("/explorer/search", params={"q": hashes[0]}, follow_redirects=False)
    assert found.status_code == 303 and found.headers["location"] == f"/explorer/orders/{hashes[0]}"
    order = await client.get(found.headers["location"])
    assert order.status_code == 200 and ACTORS.app_owner.address in order.text
    address = ACTORS.requester.address.lower()
    to_address = await client.get("/explorer/search", params={"q": address}, follow_redirects=True)
    assert to_address.status_code == 200 and "Escrow, free" in to_address.text
    nothing = await client.get("/explorer/search", params={"q": missing})
    assert nothing.status_code == 200 and "Nothing matches" in nothing.text
    long = await client.get("/explorer/search", params={"q": "x" * 201})
    assert long.status_code == 422


async def test_docs_work_offline(client: httpx.AsyncClient) -> None:
    r = await client.get("/docs")
    assert r.status_code == 200
    assert "cdn." not in r.text and "unpkg" not in r.text
    for asset in re.findall(r'(?:src|href)="(/docs/static/[^"]+)"', r.text):
        got = await client.get(asset)
        assert got.status_code == 200 and len(got.content) > 1000, asset
    spec = await client.get("/openapi.json")
    assert not [p for p in spec.json()["paths"] if p.startswith("/explorer")]
