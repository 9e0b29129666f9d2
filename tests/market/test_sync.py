"""Status kept in step with the chain: partial fills, filled, cancelled on-chain, dead."""

from __future__ import annotations

import httpx
import pytest

from comptoir.chain.eip712 import order_hash
from comptoir.exceptions import ConfigError
from comptoir.market import DealEvent, InMemoryChainView, MarketSettings, create_market_app

from .support import (
    ACTORS,
    ADMIN_TOKEN,
    APP,
    CHAIN_ID,
    HUB,
    POOL,
    app_order,
    pool_order,
    publish,
    request_order,
    signed,
)


def raw(h: str) -> bytes:
    return bytes.fromhex(h[2:])


async def sync(client: httpx.AsyncClient, **headers: str) -> dict[str, int]:
    r = await client.post("/v1/sync", headers=headers or {"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert r.status_code == 200, r.text
    return r.json()


async def status(client: httpx.AsyncClient, h: str) -> tuple[str, int, str | None]:
    o = (await client.get(f"/v1/orders/{h}")).json()
    return o["status"], o["remaining"], o["status_reason"]


async def test_partial_then_filled(client: httpx.AsyncClient, memchain: InMemoryChainView) -> None:
    h = (await publish(client, app_order(volume=10)))["hash"]
    memchain.consume(raw(h), 4)
    report = await sync(client)
    assert (report["checked"], report["updated"]) == (1, 1)
    assert await status(client, h) == ("open", 6, None)
    assert (await sync(client))["updated"] == 0  # nothing new
    memchain.consume(raw(h), 6)
    await sync(client)
    assert await status(client, h) == ("filled", 0, None)
    assert (await client.get("/v1/orders")).json()["total"] == 0
    assert (await sync(client))["checked"] == 0  # closed orders are no longer polled


async def test_cancelled_on_chain(client: httpx.AsyncClient, memchain: InMemoryChainView) -> None:
    h = (await publish(client, request_order()))["hash"]
    memchain.cancel(raw(h))
    await sync(client)
    assert await status(client, h) == ("cancelled", 0, "cancelled on-chain")


async def test_owner_change_kills_asset_orders(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    a = (await publish(client, app_order()))["hash"]
    r = (await publish(client, request_order()))["hash"]
    memchain.register(APP, ACTORS.stranger.address, "app")
    await sync(client)
    assert await status(client, a) == ("dead", 10, "asset owner changed")
    assert (await status(client, r))[0] == "open"  # the requester still owns its request


async def test_unknown_asset_kills(client: httpx.AsyncClient, memchain: InMemoryChainView) -> None:
    p = (await publish(client, pool_order()))["hash"]
    del memchain.owners[POOL]
    await sync(client)
    assert await status(client, p) == ("dead", 10, "asset unknown on-chain")


async def test_publishing_a_consumed_order_shows_its_state(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    order = app_order(volume=3)
    memchain.consume(order_hash(order, CHAIN_ID, HUB), 3)
    record = await publish(client, order)
    assert (record["status"], record["remaining"]) == ("filled", 0)


async def test_deal_events_feed_prices_and_orders(
    client: httpx.AsyncClient, memchain: InMemoryChainView
) -> None:
    pool = (await publish(client, pool_order(volume=5, workerpool_price=20)))["hash"]
    req = (await publish(client, request_order(volume=2)))["hash"]
    deal = DealEvent(
        deal_id=b"\x01" * 32,
        category=1,
        workerpool_price=20,
        volume=2,
        timestamp=7200.0,
        order_hashes=(raw(pool), raw(req)),
    )
    memchain.add_deal(deal)
    report = await sync(client)
    assert report["deals"] == 1
    assert await status(client, pool) == ("open", 3, None)
    assert (await status(client, req))[:2] == ("filled", 0)
    assert (await sync(client))["deals"] == 0  # the block range moved on
    prices = (await client.get("/v1/prices")).json()
    assert prices == [{"category": 1, "price": 20, "timestamp": 7200.0, "deals": 1}]


async def test_admin_token(settings: MarketSettings) -> None:
    settings.admin_token = "s3cret"
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://market"
    ) as client:
        assert (await client.post("/v1/sync")).status_code == 401
        bad = await client.post("/v1/sync", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        await sync(client, Authorization="Bearer s3cret")
    await app.state.market.store.close()


async def test_sync_is_closed_without_an_admin_token(settings: MarketSettings) -> None:
    settings.admin_token = None
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://market"
    ) as client:
        closed = await client.post("/v1/sync", headers={"Authorization": "Bearer anything"})
        assert closed.status_code == 403
        assert "COMPTOIR_MARKET_ADMIN_TOKEN" in closed.json()["detail"]
    await app.state.market.store.close()


async def test_chain_down_is_503(client: httpx.AsyncClient, memchain: InMemoryChainView) -> None:
    async def broken(order_hash: bytes) -> int:
        raise ConnectionError("node down")

    memchain.consumed = broken  # type: ignore[method-assign]
    r = await client.post("/v1/orders", json=signed(app_order()))
    assert r.status_code == 503
    assert r.json()["detail"].startswith("Could not read the consumed volume from the chain")


async def test_deal_scan_in_block_chunks(
    settings: MarketSettings, memchain: InMemoryChainView
) -> None:
    settings.max_block_range = 2
    settings.confirmations = 1
    for n in range(5):  # blocks 2..6
        memchain.add_deal(DealEvent(bytes([n]) * 32, 1, 10 + n, 1, 100.0 * n))
    memchain.block += 4  # head 10: blocks up to 9 are read
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://market"
    ) as client:
        assert (await sync(client))["deals"] == 5
        assert await app.state.market.store.get_meta("deals_block") == str(memchain.block - 1)
        memchain.add_deal(DealEvent(b"\x09" * 32, 1, 50, 1, 900.0))  # block 11
        assert (await sync(client))["deals"] == 0  # not confirmed yet
        memchain.block += 1
        assert (await sync(client))["deals"] == 1
        candles = (await client.get("/v1/prices/1", params={"interval": 1000})).json()["candles"]
        assert [(c["open"], c["close"], c["deals"]) for c in candles] == [(10, 50, 6)]
    await app.state.market.store.close()


def test_settings_from_env() -> None:
    env = {
        "COMPTOIR_CHAIN_ID": "5",
        "COMPTOIR_HUB": HUB,
        "COMPTOIR_REGISTRY": HUB,
        "COMPTOIR_MARKET_SYNC_INTERVAL": "0",
        "COMPTOIR_MARKET_START_BLOCK": "7",
    }
    s = MarketSettings.from_env(env)
    assert (s.chain_id, s.sync_interval, s.start_block, s.database) == (5, None, 7, "market.db")
    with pytest.raises(ConfigError, match="COMPTOIR_HUB"):
        MarketSettings.from_env({"COMPTOIR_CHAIN_ID": "5"})
    with pytest.raises(ConfigError, match="integers"):
        MarketSettings.from_env({**env, "COMPTOIR_CHAIN_ID": "five"})
    with pytest.raises(ConfigError, match="needs a chain"):
        MarketSettings(chain_id=1, hub=HUB).chain_view()
