"""Over real HTTP (uvicorn): the SSE feed, and the background sync loop driving it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app, sign_cancel
from comptoir.market.events import Broadcaster
from comptoir.testing.servers import serve_app

from .support import ACTORS, CHAIN_ID, HUB, app_order, hash_of, pool_order, signed


def serve(app: Any) -> Any:
    return serve_app(app, lifespan="on")  # the market's sync loop runs in its lifespan


async def events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """Parsed SSE events; waits for the ': connected' comment before yielding anything."""
    async for _, name, data in identified(response):
        yield name, data


async def identified(
    response: httpx.Response,
) -> AsyncIterator[tuple[str | None, str, dict[str, Any]]]:
    """(id, name, data) of each SSE event; ('connected' first, with no id)."""
    name = event_id = None
    async for line in response.aiter_lines():
        if line.startswith(": connected"):
            yield None, "connected", {}
        elif line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            yield event_id, name, json.loads(line.removeprefix("data: "))
            name = event_id = None


async def first_events(
    client: httpx.AsyncClient, count: int, **request: Any
) -> list[tuple[str | None, str, dict[str, Any]]]:
    """The first `count` events of a stream opened with `request` (params, headers)."""
    params = {"max_events": count, **request.pop("params", {})}
    async with client.stream("GET", "/v1/stream", params=params, **request) as r:
        assert r.status_code == 200
        got = [e async for e in identified(r)]
    assert got[0][1] == "connected"
    return got[1:]


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


async def test_stream_sends_what_a_subscriber_missed_after_its_position(
    settings: MarketSettings,
) -> None:
    orders = [app_order(salt=bytes([i]) * 32) for i in range(3)]
    with serve(create_market_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/v1/orders", json=signed(orders[0]))).status_code == 201
            async with client.stream("GET", "/v1/stream", params={"after": "x"}) as bad:
                assert bad.status_code == 422  # not an event id
            # the first event's id, as a page rendered then would hold it
            async with client.stream("GET", "/v1/stream", params={"max_events": 1}) as r:
                feed = identified(r)
                await anext(feed)
                assert (await client.post("/v1/orders", json=signed(orders[1]))).status_code == 201
                first_id, name, data = await asyncio.wait_for(anext(feed), 5)
            assert first_id and (name, data["hash"]) == ("order.published", hash_of(orders[1]))
            # published while nobody listened
            assert (await client.post("/v1/orders", json=signed(orders[2]))).status_code == 201
            by_query = await first_events(client, 1, params={"after": first_id})
            by_header = await first_events(client, 1, headers={"Last-Event-ID": first_id})
            for event_id, name, data in (*by_query, *by_header):
                assert (name, data["hash"]) == ("order.published", hash_of(orders[2]))
                assert event_id and event_id != first_id
            # a position already caught up with: nothing replayed, live events follow
            caught_up = by_query[0][0]
            async with client.stream(
                "GET", "/v1/stream", params={"max_events": 1, "after": caught_up}
            ) as r:
                feed = identified(r)
                await anext(feed)
                sig = sign_cancel(hash_of(orders[0]), ACTORS.app_owner, CHAIN_ID, HUB)
                await client.request(
                    "DELETE", f"/v1/orders/{hash_of(orders[0])}", json={"signature": sig}
                )
                _, name, data = await asyncio.wait_for(anext(feed), 5)
            assert (name, data["hash"]) == ("order.cancelled", hash_of(orders[0]))


async def test_stream_asks_for_a_resync_when_it_cannot_replay(settings: MarketSettings) -> None:
    with serve(create_market_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            assert (await client.post("/v1/orders", json=signed(app_order()))).status_code == 201
            ((event_id, _, _),) = await first_events(client, 1, params={"after": "0-0"})
            assert event_id is None  # a resync is not an event to resume after
            epoch = (await first_events(client, 1, params={"after": "0-0"}))[0][2]["position"]
            # another life of the stream, and a position this one never reached
            for after in ("00000000-0", epoch.rsplit("-", 1)[0] + "-999"):
                got = await first_events(client, 1, params={"after": after})
                assert got[0][1] == "stream.resync", after
            # a stranger's Last-Event-ID (not checked like ?after=): this epoch with a
            # Latin-1 superscript digit, a negative or huge count, a lone dash, 64 chars
            this = epoch.rsplit("-", 1)[0]
            for header in (
                f"{this}-\xb2".encode("latin-1"),
                f"{this}--1".encode(),
                f"{this}-{'9' * (63 - len(this))}".encode(),
                b"-",
                b"x" * 64,
            ):
                got = await first_events(client, 1, headers={"Last-Event-ID": header})
                assert got[0][1] == "stream.resync", header
            too_long = {"Last-Event-ID": "x" * 65}
            async with client.stream("GET", "/v1/stream", headers=too_long) as r:
                assert r.status_code == 422


def test_broadcaster_replays_only_what_it_still_keeps() -> None:
    hub = Broadcaster(replay_size=2)
    start = hub.position
    for n in range(3):
        hub.publish("order.updated", {"n": n})
    assert hub.missed(start) is None  # 3 missed, 2 kept
    one_back = f"{hub.epoch}-2"
    assert [json.loads(text)["n"] for _, _, text in hub.missed(one_back) or []] == [2]
    assert hub.missed(hub.position) == []
    assert hub.missed(f"{hub.epoch}-4") is None  # ahead of the stream
    assert hub.missed(f"{hub.epoch}-x") is None and hub.missed("garbage") is None


async def test_broadcaster_subscriber_hears_events_published_before_it_was_iterated() -> None:
    # the gap the explorer had: a page rendered, then an event, then its subscription
    hub = Broadcaster()
    rendered_at = hub.position
    hub.publish("deal.updated", {"deal_id": "0x01", "status": "completed"})
    stream = hub.subscribe(max_events=1, after=rendered_at)
    chunks = [chunk async for chunk in stream]
    assert chunks[0] == ": connected\n\n"
    assert chunks[1] == (
        f"id: {hub.epoch}-1\nevent: deal.updated\n"
        'data: {"deal_id":"0x01","status":"completed"}\n\n'
    )
    late = [chunk async for chunk in Broadcaster().subscribe(max_events=1, after=rendered_at)]
    assert late[1].startswith("event: stream.resync\n")  # another broadcaster's position
