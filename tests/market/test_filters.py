"""GET /v1/orders: every filter once matching and once not, sorting, pagination."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from comptoir.chain.types import TAG_GPU, TAG_TEE, tag_bytes

from .support import (
    ACTORS,
    APP,
    DATASET,
    POOL,
    POOL2,
    app_order,
    dataset_order,
    pool_order,
    publish,
    request_order,
)


async def hashes(client: httpx.AsyncClient, **params: Any) -> list[str]:
    r = await client.get("/v1/orders", params=params)
    assert r.status_code == 200, r.text
    page = r.json()
    assert page["total"] >= len(page["orders"])
    return [o["hash"] for o in page["orders"]]


async def test_kind_filter(client: httpx.AsyncClient) -> None:
    a = (await publish(client, app_order()))["hash"]
    await publish(client, pool_order())
    assert await hashes(client, kind="app") == [a]
    assert await hashes(client, kind="dataset") == []


async def test_unknown_kind_filter_422(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/orders", params={"kind": "banana"})
    assert r.status_code == 422
    assert "kind" in r.json()["detail"]


async def test_category_filter(client: httpx.AsyncClient) -> None:
    p = (await publish(client, pool_order(category=2)))["hash"]
    assert await hashes(client, category=2) == [p]
    assert await hashes(client, category=1) == []


async def test_tag_filter_workerpool_offers_all_requested_bits(client: httpx.AsyncClient) -> None:
    gpu = (await publish(client, pool_order(tag=tag_bytes(TAG_GPU))))["hash"]
    both = (
        await publish(client, pool_order(tag=tag_bytes(TAG_GPU | TAG_TEE), workerpool_price=30))
    )["hash"]
    high = 1 << 200
    far = (await publish(client, pool_order(tag=tag_bytes(high | TAG_GPU), workerpool_price=40)))[
        "hash"
    ]
    assert await hashes(client, kind="workerpool", tag=hex(TAG_GPU)) == [gpu, both, far]
    assert await hashes(client, kind="workerpool", tag=str(TAG_GPU | TAG_TEE)) == [both]
    assert await hashes(client, kind="workerpool", tag=hex(high)) == [far]
    assert await hashes(client, kind="workerpool", tag=hex(1 << 255)) == []


async def test_tag_filter_other_orders_are_covered_by_the_tag(client: httpx.AsyncClient) -> None:
    plain = (await publish(client, app_order()))["hash"]
    tee = (await publish(client, app_order(tag=tag_bytes(TAG_TEE), app_price=6)))["hash"]
    req = (await publish(client, request_order(tag=tag_bytes(TAG_GPU))))["hash"]
    assert await hashes(client, kind="app", tag="0x0") == [plain]
    assert await hashes(client, kind="app", tag=hex(TAG_TEE)) == [plain, tee]
    assert await hashes(client, kind="request", tag=hex(TAG_TEE)) == []
    assert await hashes(client, kind="request", tag=hex(TAG_GPU | TAG_TEE)) == [req]


async def test_bad_tag_422(client: httpx.AsyncClient) -> None:
    for bad in ("0xzz", "-1", hex(1 << 256)):
        r = await client.get("/v1/orders", params={"tag": bad})
        assert r.status_code == 422, bad


async def test_min_trust_filter(client: httpx.AsyncClient) -> None:
    p = (await publish(client, pool_order(trust=5)))["hash"]
    assert await hashes(client, min_trust=5) == [p]
    assert await hashes(client, min_trust=6) == []


async def test_min_remaining_filter(client: httpx.AsyncClient) -> None:
    a = (await publish(client, app_order(volume=7)))["hash"]
    assert await hashes(client, min_remaining=7) == [a]
    assert await hashes(client, min_remaining=8) == []


async def test_max_price_filter(client: httpx.AsyncClient) -> None:
    a = (await publish(client, app_order(app_price=2**127)))["hash"]
    assert await hashes(client, max_price=2**127) == [a]
    assert await hashes(client, max_price=2**127 - 1) == []


async def test_request_price_is_sum_of_maxima(client: httpx.AsyncClient) -> None:
    r = await publish(
        client, request_order(app_max_price=1, dataset_max_price=0, workerpool_max_price=9)
    )
    assert r["price"] == 10
    assert await hashes(client, kind="request", max_price=10) == [r["hash"]]
    assert await hashes(client, kind="request", max_price=9) == []


@pytest.mark.parametrize(
    ("name", "yes", "no"), [("app", APP, 77), ("dataset", DATASET, 77), ("workerpool", POOL, POOL2)]
)
async def test_asset_filters(client: httpx.AsyncClient, name: str, yes: int, no: int) -> None:
    order = {"app": app_order(), "dataset": dataset_order(), "workerpool": pool_order()}[name]
    h = (await publish(client, order))["hash"]
    assert await hashes(client, **{name: yes}) == [h]
    assert await hashes(client, **{name: no}) == []


async def test_app_filter_includes_requests_for_that_app(client: httpx.AsyncClient) -> None:
    a = (await publish(client, app_order()))["hash"]
    r = (await publish(client, request_order()))["hash"]
    assert set(await hashes(client, app=APP)) == {a, r}


async def test_requester_and_owner_filters(client: httpx.AsyncClient) -> None:
    r = (await publish(client, request_order()))["hash"]
    a = (await publish(client, app_order()))["hash"]
    assert await hashes(client, requester=ACTORS.requester.address.lower()) == [r]
    assert await hashes(client, requester=ACTORS.stranger.address) == []
    assert await hashes(client, owner=ACTORS.app_owner.address) == [a]
    assert await hashes(client, owner=ACTORS.pool_owner.address) == []
    bad = await client.get("/v1/orders", params={"requester": "0x123"})
    assert bad.status_code == 422
    assert "requester" in bad.json()["detail"]


async def test_usable_by_requester(client: httpx.AsyncClient) -> None:
    open_ = (await publish(client, app_order()))["hash"]
    mine = (
        await publish(client, app_order(requester_restrict=ACTORS.requester.address, app_price=6))
    )["hash"]
    assert await hashes(client, usable_by_requester=ACTORS.requester.address) == [open_, mine]
    assert await hashes(client, usable_by_requester=ACTORS.stranger.address) == [open_]


async def test_usable_with_app_dataset_workerpool(client: httpx.AsyncClient) -> None:
    free = (await publish(client, pool_order()))["hash"]
    bound = (
        await publish(
            client, pool_order(app_restrict=APP, dataset_restrict=DATASET, workerpool_price=21)
        )
    )["hash"]
    assert await hashes(client, usable_with_app=APP) == [free, bound]
    assert await hashes(client, usable_with_app=99) == [free]
    assert await hashes(client, usable_with_dataset=DATASET) == [free, bound]
    assert await hashes(client, usable_with_dataset=99) == [free]
    own = (await publish(client, app_order(workerpool_restrict=POOL)))["hash"]
    req = (await publish(client, request_order(workerpool=POOL2)))["hash"]
    assert await hashes(client, usable_with_workerpool=POOL) == [own, free, bound]
    assert set(await hashes(client, usable_with_workerpool=POOL2)) == {free, bound, req}


async def test_status_filter(client: httpx.AsyncClient) -> None:
    a = (await publish(client, app_order()))["hash"]
    assert await hashes(client) == [a]  # open by default
    assert await hashes(client, status="filled") == []
    assert await hashes(client, status="any") == [a]


async def test_sorted_by_price_then_publish_time_and_paginated(client: httpx.AsyncClient) -> None:
    published = [
        (await publish(client, app_order(app_price=price)))["hash"]
        for price in (5, 3, 5, 1, 2**100)
    ]
    expected = [published[3], published[1], published[0], published[2], published[4]]
    assert await hashes(client, limit=500) == expected
    page = (await client.get("/v1/orders", params={"limit": 2, "offset": 2})).json()
    assert [o["hash"] for o in page["orders"]] == expected[2:4]
    assert (page["total"], page["limit"], page["offset"]) == (5, 2, 2)
    assert (await client.get("/v1/orders", params={"limit": 0})).status_code == 422
    assert (await client.get("/v1/orders", params={"limit": 501})).status_code == 422
