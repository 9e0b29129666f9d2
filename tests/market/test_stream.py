"""Over real HTTP (uvicorn): the SSE feed, and the background sync loop driving it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app, sign_cancel
from comptoir.testing.servers import serve_app

from .support import ACTORS, CHAIN_ID, HUB, app_order, hash_of, pool_order, signed


def serve(app: Any) -> Any:
    return serve_app(app, lifespan="on")  # the market's sync loop runs in its lifespan


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Parsed SSE events; waits for the ': connected' comment before yielding anything."""
    name = None
    async for line in response.aiter_lines():
        if line.startswith(": connected"):
            yield "connected", {}
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            yield name, json.loads(line.removeprefix("data: "))
            name = None


async def test_stream_receives_publish_and_cancel(settings: MarketSettings) -> None:
    order = app_order()
    with serve(create_market_app(settings)) as url:
        async with (
            httpx.AsyncClient(base_url=url, timeout=10) as client,
            client.stream("GET", "/v1/stream", params={"max_events": 2}) as r,
        ):
            assert r.headers["content-type"].startswith("text/event-stream")
            feed = events(r)
            assert (await anext(feed))[0] == "connected"
            posted = await client.post("/v1/orders", json=signed(order))
            assert posted.status_code == 201
            name, data = await asyncio.wait_for(anext(feed), 5)
            assert name == "order.published"
            assert data["hash"] == hash_of(order) and data["status"] == "open"
            sig = sign_cancel(data["hash"], ACTORS.app_owner, CHAIN_ID, HUB)
            await client.request("DELETE", f"/v1/orders/{data['hash']}", json={"signature": sig})
            name, data = await asyncio.wait_for(anext(feed), 5)
            assert (name, data["status"]) == ("order.cancelled", "cancelled")


async def test_background_sync_loop_emits_updates(
    settings: MarketSettings, memchain: InMemoryChainView
) -> None:
    settings.sync_interval = 0.05
    order = pool_order(volume=4)
    with serve(create_market_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/v1/orders", json=signed(order))).status_code == 201
            async with client.stream("GET", "/v1/stream", params={"max_events": 1}) as r:
                feed = events(r)
                await anext(feed)
                memchain.consume(bytes.fromhex(hash_of(order)[2:]), 1)
                name, data = await asyncio.wait_for(anext(feed), 5)
    assert name == "order.updated"
    assert (data["status"], data["remaining"]) == ("open", 3)
