"""Orders a stranger crafts to poison, squat or flood the book: every combination the
hub accepts is listed and listable, every one it would refuse is refused at POST with a
sentence, a signature lists in the one form the hub accepts, and listing has a price."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app
from comptoir.market.orderbook import SECP256K1_N, canonical_signature, sign_cancel
from comptoir.market.schemas import MAX_UINT256
from comptoir.market.store import orders as orders_table

from .support import (
    ACTORS,
    ADMIN_TOKEN,
    CHAIN_ID,
    HUB,
    app_order,
    pool_order,
    publish,
    request_order,
    signed,
)

CAP = 2**128 - 1  # the most a deal pays per asset (poco.vy MAX_PRICE - 1)


# ------------------------------------------------------------------ class 2: poisoning


async def test_request_whose_maxima_overflow_a_sum_is_listed_and_listable(
    client: httpx.AsyncClient,
) -> None:
    huge = request_order(
        app_max_price=MAX_UINT256, dataset_max_price=MAX_UINT256, workerpool_max_price=MAX_UINT256
    )
    record = await publish(client, huge)  # the hub can match it: prices are < 2**128
    assert record["price"] == 3 * CAP  # the most it can pay per task, always a uint256
    cheap = await publish(client, request_order(app_max_price=1, workerpool_max_price=1))
    page = await client.get("/v1/orders", params={"kind": "request"})
    assert page.status_code == 200
    assert [o["hash"] for o in page.json()["orders"]] == [cheap["hash"], record["hash"]]
    assert (await client.get(f"/v1/orders/{record['hash']}")).status_code == 200
    below = await client.get("/v1/orders", params={"kind": "request", "max_price": 3 * CAP - 1})
    assert [o["hash"] for o in below.json()["orders"]] == [cheap["hash"]]


@pytest.mark.parametrize(
    ("order", "sentence"),
    [
        (app_order(app_price=2**128), "The app price must be below 2**128"),
        (pool_order(workerpool_price=MAX_UINT256), "The workerpool price must be below 2**128"),
        (request_order(trust=1_000_001), "A request's trust must be at most 1000000"),
    ],
    ids=["app-price", "pool-price", "request-trust"],
)
async def test_what_the_hub_never_matches_is_refused_at_post(
    client: httpx.AsyncClient, order: Any, sentence: str
) -> None:
    r = await client.post("/v1/orders", json=signed(order))
    assert r.status_code == 422
    assert r.json()["detail"].startswith(sentence)
    assert (await client.get("/v1/orders", params={"status": "any"})).json()["total"] == 0


async def test_largest_matchable_values_are_accepted(client: httpx.AsyncClient) -> None:
    await publish(client, app_order(app_price=CAP, volume=MAX_UINT256))
    await publish(client, pool_order(workerpool_price=1000, trust=MAX_UINT256))
    await publish(client, request_order(trust=1_000_000, volume=MAX_UINT256))
    assert (await client.get("/v1/orders")).json()["total"] == 3


async def test_an_unreadable_row_cannot_fail_a_listing(client: httpx.AsyncClient) -> None:
    good = await publish(client, app_order())
    bad = await publish(client, app_order(app_price=6))
    store = client.app.state.market.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # as an older version or a bad migration left it
        conn.execute(
            update(orders_table)
            .where(orders_table.c.hash == bad["hash"])
            .values(order_json=json.dumps({"app": "not a number"}))
        )
    page = await client.get("/v1/orders")
    assert page.status_code == 200
    assert [o["hash"] for o in page.json()["orders"]] == [good["hash"]]
    raw = await store.get_order(bad["hash"])
    assert (raw.status, raw.status_reason) == ("dead", "unreadable listing")
    assert (await client.get(f"/v1/orders/{bad['hash']}")).status_code == 404


async def test_a_row_that_is_not_json_cannot_stop_listing_or_sync(
    client: httpx.AsyncClient,
) -> None:
    good = await publish(client, app_order())
    bad = await publish(client, app_order(app_price=6))
    store = client.app.state.market.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:
        conn.execute(
            update(orders_table)
            .where(orders_table.c.hash == bad["hash"])
            .values(order_json="{not json")
        )
    report = await client.post("/v1/sync", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert report.status_code == 200 and report.json()["checked"] == 1
    page = (await client.get("/v1/orders", params={"status": "any"})).json()
    assert [o["hash"] for o in page["orders"]] == [good["hash"]]


# ------------------------------------------------------------------ class 3: signatures


def _twin(signature: str) -> str:
    """The high-s form of the same signature (same signer; the hub refuses it)."""
    sig = bytes.fromhex(signature[2:])
    r, s, v = sig[:32], int.from_bytes(sig[32:64], "big"), sig[64]
    return "0x" + (r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])).hex()


async def test_high_s_twin_lists_as_the_owners_signature(client: httpx.AsyncClient) -> None:
    doc = signed(app_order())
    proper = doc["signature"]
    twin = await client.post("/v1/orders", json={**doc, "signature": _twin(proper)})
    assert twin.status_code == 201
    assert twin.json()["signature"] == proper  # listed in the form match_orders accepts
    again = await client.post("/v1/orders", json=doc)  # the owner is not blocked
    assert again.status_code == 200 and again.json()["signature"] == proper


async def test_v_zero_or_one_is_normalized_and_other_v_refused(client: httpx.AsyncClient) -> None:
    doc = signed(app_order())
    proper = doc["signature"]
    low_v = proper[:-2] + f"{int(proper[-2:], 16) - 27:02x}"
    r = await client.post("/v1/orders", json={**doc, "signature": low_v})
    assert r.status_code == 201 and r.json()["signature"] == proper
    doc2 = signed(app_order(app_price=7))
    bad_v = doc2["signature"][:-2] + "05"
    refused = await client.post("/v1/orders", json={**doc2, "signature": bad_v})
    assert refused.status_code == 422 and "v byte must be 27 or 28" in refused.json()["detail"]


def test_canonical_signature_is_idempotent_and_low_s() -> None:
    sig = bytes.fromhex(signed(app_order())["signature"][2:])
    assert canonical_signature(sig) == sig
    twin = bytes.fromhex(_twin("0x" + sig.hex())[2:])
    assert canonical_signature(twin) == sig
    assert int.from_bytes(canonical_signature(twin)[32:64], "big") <= SECP256K1_N // 2


# ------------------------------------------------------------------ class 4: parameters


@pytest.mark.parametrize(
    ("path", "params", "word"),
    [
        ("/v1/orders", {"offset": str(10**30)}, "offset"),
        ("/v1/orders", {"limit": "0"}, "limit"),
        ("/v1/prices/1", {"start": "inf"}, "start"),
        ("/v1/prices/1", {"end": "nan"}, "end"),
        ("/v1/prices/1", {"start": "1e300"}, "start"),
        ("/v1/stream", {"max_events": str(10**30)}, "max_events"),
    ],
)
async def test_unbounded_parameters_are_refused_with_a_sentence(
    client: httpx.AsyncClient, path: str, params: dict[str, str], word: str
) -> None:
    r = await client.get(path, params=params)
    assert r.status_code == 422
    assert r.json()["detail"].startswith(f"Invalid {word}:")


async def test_bounded_parameters_at_their_limit_answer(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/orders", params={"offset": "1000000", "limit": "500"})
    assert r.status_code == 200 and r.json()["orders"] == []


# ------------------------------------------------------------------ class 6: listing cost


async def test_open_orders_per_owner_are_capped(settings: MarketSettings) -> None:
    settings.max_open_per_owner = 2
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://market"
    ) as client:
        first = await publish(client, app_order(app_price=1))
        await publish(client, app_order(app_price=2))
        third = await client.post("/v1/orders", json=signed(app_order(app_price=3)))
        assert third.status_code == 403
        assert "already has 2 open orders listed here" in third.json()["detail"]
        await publish(client, pool_order())  # another owner is not affected
        sig = sign_cancel(first["hash"], ACTORS.app_owner, CHAIN_ID, HUB)
        cancel = await client.request(
            "DELETE", f"/v1/orders/{first['hash']}", json={"signature": sig}
        )
        assert cancel.status_code == 200
        assert (
            await client.post("/v1/orders", json=signed(app_order(app_price=3)))
        ).status_code == 201
    await app.state.market.store.close()


async def test_listing_needs_a_deposit_on_the_hub(
    settings: MarketSettings, memchain: InMemoryChainView
) -> None:
    memchain.balances.clear()
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://market"
    ) as client:
        request = await client.post("/v1/orders", json=signed(request_order()))
        assert request.status_code == 403
        assert "deposit 1 more first" in request.json()["detail"]
        pool = await client.post("/v1/orders", json=signed(pool_order(workerpool_price=100)))
        assert pool.status_code == 403 and "needs at least 30 deposited" in pool.json()["detail"]
        await publish(client, app_order())  # an app owner stakes nothing to be paid
        memchain.deposit(ACTORS.requester.address, 1)
        memchain.deposit(ACTORS.pool_owner.address, 30)
        assert (await client.post("/v1/orders", json=signed(request_order()))).status_code == 201
        ok = await client.post("/v1/orders", json=signed(pool_order(workerpool_price=100)))
        assert ok.status_code == 201
    await app.state.market.store.close()


async def test_admin_sync_needs_the_token(client: httpx.AsyncClient) -> None:
    stranger = await client.post("/v1/sync", headers={"Authorization": "Bearer guess"})
    assert stranger.status_code == 401
    admin = await client.post("/v1/sync", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert admin.status_code == 200
