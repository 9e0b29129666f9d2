"""Shared helpers of the market tests: actors, signed orders."""

from __future__ import annotations

from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.chain.eip712 import order_hash, sign_order
from comptoir.chain.types import (
    AppOrder,
    DatasetOrder,
    RequestOrder,
    WorkerpoolOrder,
    _Struct,
)
from comptoir.market.schemas import KIND_OF_STRUCT

CHAIN_ID = 31337
HUB = "0x" + "4b" * 20
APP, DATASET, POOL, POOL2 = 1, 2, 3, 4
ADMIN_TOKEN = "market-admin"


def key(n: int) -> LocalAccount:
    return Account.from_key(n.to_bytes(32, "big"))


class ACTORS:
    app_owner = key(101)
    dataset_owner = key(102)
    pool_owner = key(103)
    requester = key(104)
    stranger = key(105)


def body(order: _Struct, signer: LocalAccount, chain_id: int = CHAIN_ID) -> dict[str, Any]:
    return {
        "kind": KIND_OF_STRUCT[type(order)],
        "order": order.to_json(),
        "signature": "0x" + sign_order(order, signer, chain_id, HUB).hex(),
    }


def hash_of(order: _Struct) -> str:
    return "0x" + order_hash(order, CHAIN_ID, HUB).hex()


def app_order(**kw: Any) -> AppOrder:
    return AppOrder(**{"app": APP, "app_price": 5, "volume": 10, **kw})


def dataset_order(**kw: Any) -> DatasetOrder:
    return DatasetOrder(**{"dataset": DATASET, "dataset_price": 3, "volume": 10, **kw})


def pool_order(**kw: Any) -> WorkerpoolOrder:
    return WorkerpoolOrder(
        **{
            "workerpool": POOL,
            "workerpool_price": 20,
            "volume": 10,
            "category": 1,
            "trust": 3,
            **kw,
        }
    )


def request_order(**kw: Any) -> RequestOrder:
    fields = {
        "app": APP,
        "app_max_price": 5,
        "dataset": 0,
        "dataset_max_price": 0,
        "workerpool": 0,
        "workerpool_max_price": 20,
        "requester": ACTORS.requester.address,
        "volume": 2,
        "category": 1,
        "trust": 1,
    }
    return RequestOrder(**{**fields, **kw})


SIGNERS: dict[type, LocalAccount] = {
    AppOrder: ACTORS.app_owner,
    DatasetOrder: ACTORS.dataset_owner,
    WorkerpoolOrder: ACTORS.pool_owner,
    RequestOrder: ACTORS.requester,
}


def signed(order: _Struct) -> dict[str, Any]:
    return body(order, SIGNERS[type(order)])


async def publish(client: httpx.AsyncClient, order: _Struct) -> dict[str, Any]:
    r = await client.post("/v1/orders", json=signed(order))
    assert r.status_code == 201, r.text
    return r.json()
