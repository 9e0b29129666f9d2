"""Publish, get, cancel: signatures, validation, idempotence."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from eth_utils import to_checksum_address

from comptoir.chain.types import TAG_GPU, tag_bytes
from comptoir.market import sign_cancel

from .support import (
    ACTORS,
    APP,
    CHAIN_ID,
    HUB,
    POOL,
    app_order,
    body,
    dataset_order,
    hash_of,
    pool_order,
    publish,
    request_order,
    signed,
)

FORGED = "signature does not match the order owner"


@pytest.mark.parametrize(
    "order",
    [app_order(), dataset_order(), pool_order(tag=tag_bytes(TAG_GPU)), request_order(params="x")],
    ids=["app", "dataset", "workerpool", "request"],
)
async def test_publish_each_kind(client: httpx.AsyncClient, order: Any) -> None:
    record = await publish(client, order)
    assert record["hash"] == hash_of(order)
    assert record["status"] == "open"
    assert record["remaining"] == order.volume
    assert record["order"] == order.to_json()
    assert (record["owner"] == type(order).__name__ and False) or record["owner"]
    got = await client.get(f"/v1/orders/{record['hash']}")
    assert got.status_code == 200
    assert got.json() == record


async def test_owner_is_asset_owner_or_requester(client: httpx.AsyncClient) -> None:
    assert (await publish(client, app_order()))["owner"] == ACTORS.app_owner.address
    assert (await publish(client, request_order()))["owner"] == ACTORS.requester.address


async def test_publish_is_idempotent(client: httpx.AsyncClient) -> None:
    order = app_order()
    first = await publish(client, order)
    again = await client.post("/v1/orders", json=signed(order))
    assert again.status_code == 200
    assert again.json() == first
    page = (await client.get("/v1/orders")).json()
    assert page["total"] == 1


async def test_uint_as_decimal_string_is_the_same_order(client: httpx.AsyncClient) -> None:
    order = app_order(app_price=(2**127 + 5))
    doc = signed(order)
    doc["order"] = {**doc["order"], "app_price": str(2**127 + 5), "volume": "10"}
    r = await client.post("/v1/orders", json=doc)
    assert r.status_code == 201, r.text
    assert r.json()["hash"] == hash_of(order)
    assert r.json()["price"] == (2**127 + 5)


@pytest.mark.parametrize(
    ("order", "signer"),
    [
        (app_order(), ACTORS.stranger),
        (dataset_order(), ACTORS.app_owner),
        (pool_order(), ACTORS.requester),
        (request_order(), ACTORS.stranger),
    ],
    ids=["app", "dataset", "workerpool", "request"],
)
async def test_forged_signature_refused(client: httpx.AsyncClient, order: Any, signer: Any) -> None:
    r = await client.post("/v1/orders", json=body(order, signer))
    assert r.status_code == 400
    assert r.json() == {"detail": FORGED}
    assert (await client.get(f"/v1/orders/{hash_of(order)}")).status_code == 404


async def test_signature_for_another_chain_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/orders", json=body(app_order(), ACTORS.app_owner, chain_id=1))
    assert r.status_code == 400
    assert r.json()["detail"] == FORGED


async def test_tampered_order_refused(client: httpx.AsyncClient) -> None:
    doc = signed(app_order())
    doc["order"]["app_price"] = 0  # signed at 5
    r = await client.post("/v1/orders", json=doc)
    assert r.status_code == 400


async def test_forged_republish_of_listed_order_refused(client: httpx.AsyncClient) -> None:
    order = app_order()
    await publish(client, order)
    r = await client.post("/v1/orders", json=body(order, ACTORS.stranger))
    assert r.status_code == 400


def _mutate(field: str, value: Any, kind: str = "app") -> dict[str, Any]:
    doc = signed({"app": app_order(), "request": request_order()}[kind])
    if value is _DROP:
        del doc["order"][field]
    else:
        doc["order"][field] = value
    return doc


_DROP = object()


@pytest.mark.parametrize(
    ("doc", "mentions"),
    [
        ({**signed(app_order()), "kind": "banana"}, "banana"),
        ({k: v for k, v in signed(app_order()).items() if k != "kind"}, "kind"),
        (_mutate("volume", 0), "volume"),
        (_mutate("volume", -1), "volume"),
        (_mutate("app_price", -5), "app_price"),
        (_mutate("app_price", 2**256), "app_price"),
        (_mutate("app_price", str(2**256)), "app_price"),
        (_mutate("app_price", 1.5), "app_price"),
        (_mutate("app_price", True), "app_price"),
        (_mutate("app_price", "0x10"), "app_price"),
        (_mutate("app_price", None), "app_price"),
        (_mutate("salt", _DROP), "salt"),
        (_mutate("surprise", 1), "surprise"),
        (_mutate("tag", "0x01"), "tag"),
        (_mutate("requester_restrict", "0x1234"), "requester_restrict"),
        (_mutate("requester", 12, kind="request"), "requester"),
        (_mutate("params", "x" * 513, kind="request"), "params"),
        ({**signed(app_order()), "signature": "0xdead"}, "signature"),
        ({**signed(app_order()), "order": "not an object"}, "order"),
    ],
)
async def test_malformed_order_422(client: httpx.AsyncClient, doc: Any, mentions: str) -> None:
    r = await client.post("/v1/orders", json=doc)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and mentions in detail
    assert detail.endswith(".") and "\n" not in detail  # one sentence


async def test_not_json_422(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/orders", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert isinstance(r.json()["detail"], str)


async def test_unknown_asset_or_wrong_kind_refused(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/orders", json=signed(app_order(app=999)))
    assert r.status_code == 422
    assert "not a registered app" in r.json()["detail"]
    r = await client.post("/v1/orders", json=signed(app_order(app=POOL)))  # a workerpool id
    assert r.status_code == 422
    r = await client.post("/v1/orders", json=signed(dataset_order(dataset=APP)))
    assert r.status_code == 422


async def test_get_unknown_and_malformed_hash(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/orders/0x" + "ab" * 32)
    assert r.status_code == 404
    assert "publish it first" in r.json()["detail"]
    assert (await client.get("/v1/orders/0x1234")).status_code == 422


async def test_cancel_by_owner(client: httpx.AsyncClient) -> None:
    order = pool_order()
    h = (await publish(client, order))["hash"]
    sig = sign_cancel(h, ACTORS.pool_owner, CHAIN_ID, HUB)
    r = await client.request("DELETE", f"/v1/orders/{h}", json={"signature": sig})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert r.json()["status_reason"] == "cancelled off-chain by the owner"
    assert (await client.get("/v1/orders")).json()["total"] == 0
    assert (await client.get("/v1/orders", params={"status": "cancelled"})).json()["total"] == 1
    # idempotent, and re-publishing the signed order does not revive it
    again = await client.request("DELETE", f"/v1/orders/{h}", json={"signature": sig})
    assert again.status_code == 200
    republished = await client.post("/v1/orders", json=signed(order))
    assert republished.status_code == 200
    assert republished.json()["status"] == "cancelled"


async def test_cancel_with_query_signature(client: httpx.AsyncClient) -> None:
    h = (await publish(client, request_order()))["hash"]
    sig = sign_cancel(h, ACTORS.requester, CHAIN_ID, HUB)
    r = await client.delete(f"/v1/orders/{h}", params={"signature": sig})
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"


async def test_cancel_by_stranger_refused(client: httpx.AsyncClient) -> None:
    h = (await publish(client, app_order()))["hash"]
    for sig in (
        sign_cancel(h, ACTORS.stranger, CHAIN_ID, HUB),
        sign_cancel(h, ACTORS.app_owner, CHAIN_ID + 1, HUB),  # other chain: other message
    ):
        r = await client.request("DELETE", f"/v1/orders/{h}", json={"signature": sig})
        assert r.status_code == 400
        assert r.json()["detail"] == FORGED
    assert (await client.get(f"/v1/orders/{h}")).json()["status"] == "open"


async def test_cancel_needs_signature_and_listed_order(client: httpx.AsyncClient) -> None:
    h = (await publish(client, app_order()))["hash"]
    assert (await client.delete(f"/v1/orders/{h}")).status_code == 422
    unknown = "0x" + "cd" * 32
    sig = sign_cancel(unknown, ACTORS.app_owner, CHAIN_ID, HUB)
    r = await client.request("DELETE", f"/v1/orders/{unknown}", json={"signature": sig})
    assert r.status_code == 404


async def test_info_and_openapi(client: httpx.AsyncClient) -> None:
    info = (await client.get("/v1/info")).json()
    assert info == {"chain_id": CHAIN_ID, "hub": to_checksum_address(HUB), "version": "v1"}
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in (
        "/v1/orders",
        "/v1/orders/{order_hash}",
        "/v1/sync",
        "/v1/prices",
        "/v1/prices/{category}",
        "/v1/stream",
    ):
        assert path in paths
    post = paths["/v1/orders"]["post"]
    assert post["responses"]["201"]["content"]["application/json"]["schema"]
    assert "delete" in paths["/v1/orders/{order_hash}"]
    names = {n.split("-")[0] for n in spec["components"]["schemas"]}  # X-Input / X-Output
    assert {"AppOrderModel", "RequestOrderModel", "OrderRecord", "Candle"} <= names
