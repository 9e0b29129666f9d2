"""Against a real anvil devnet (comptoir.testing.fixtures): Web3ChainView reads the real
Registry and Hub; publish, match on-chain, sync, cancel on-chain, transfer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from comptoir.chain.client import ChainClient
from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import AppOrder, RequestOrder, WorkerpoolOrder
from comptoir.devnet import Devnet
from comptoir.market import MarketSettings, Web3ChainView, create_market_app

pytestmark = pytest.mark.devnet


def doc(kind: str, order: object, client: ChainClient) -> dict[str, object]:
    return {
        "kind": kind,
        "order": order.to_json(),  # type: ignore[attr-defined]
        "signature": "0x" + client.sign_order(order).hex(),  # type: ignore[arg-type]
    }


@pytest.fixture
async def market(chain: Devnet, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Devnet]]:
    d = chain.deployment
    settings = MarketSettings(
        chain_id=chain.chain_id,
        hub=d.hub,
        database=tmp_path / "m.db",
        sync_interval=None,
        chain=Web3ChainView(chain.rpc_url, d.registry, d.hub),
        start_block=chain.w3.eth.block_number,
        admin_token="anvil-admin",
    )
    app = create_market_app(settings)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://market",
        headers={"Authorization": "Bearer anvil-admin"},
    ) as client:
        yield client, chain
    await app.state.market.store.close()
    await app.state.market.close_chain()


async def test_real_chain_lifecycle(
    market: tuple[httpx.AsyncClient, Devnet], clients: dict[str, ChainClient]
) -> None:
    http, _ = market
    app_dev, scheduler, requester = clients["app_dev"], clients["scheduler"], clients["requester"]
    app = app_dev.register_app("echo", "oci://echo", b"\x11" * 32)
    pool = scheduler.register_workerpool("pool", 25, 10)
    requester.deposit(10_000)
    scheduler.deposit(10_000)

    app_order = AppOrder(app=app, app_price=7, volume=3)
    pool_order = WorkerpoolOrder(
        workerpool=pool, workerpool_price=100, volume=3, category=TEST_CATEGORY_ID, trust=1
    )
    request = RequestOrder(
        app=app,
        app_max_price=7,
        dataset=0,
        dataset_max_price=0,
        workerpool=0,
        workerpool_max_price=100,
        requester=requester.address,
        volume=1,
        category=TEST_CATEGORY_ID,
        trust=1,
    )
    hashes = {}
    for kind, order, signer in (
        ("app", app_order, app_dev),
        ("workerpool", pool_order, scheduler),
        ("request", request, requester),
    ):
        r = await http.post("/v1/orders", json=doc(kind, order, signer))
        assert r.status_code == 201, r.text
        hashes[kind] = r.json()["hash"]
        assert hashes[kind] == "0x" + signer.order_hash(order).hex()  # same digest as the hub
    forged = await http.post("/v1/orders", json=doc("app", app_order.replace(volume=9), scheduler))
    assert forged.status_code == 400
    wrong_kind = await http.post("/v1/orders", json=doc("app", AppOrder(pool, 1, 1), scheduler))
    assert wrong_kind.status_code == 422

    deal = clients["stranger"].match_orders(
        app_order,
        app_dev.sign_order(app_order),
        None,
        b"",
        pool_order,
        scheduler.sign_order(pool_order),
        request,
        requester.sign_order(request),
    )
    report = (await http.post("/v1/sync")).json()
    assert report["deals"] == 1 and report["checked"] == 3
    state = {k: (await http.get(f"/v1/orders/{h}")).json() for k, h in hashes.items()}
    assert (state["app"]["status"], state["app"]["remaining"]) == ("open", 2)
    assert (state["workerpool"]["status"], state["workerpool"]["remaining"]) == ("open", 2)
    assert state["request"]["status"] == "filled"
    candles = (await http.get(f"/v1/prices/{TEST_CATEGORY_ID}")).json()["candles"]
    assert [(c["open"], c["volume"], c["deals"]) for c in candles] == [(100, deal.volume, 1)]

    app_dev.cancel_order(app_order)
    scheduler.transfer_asset(pool, clients["stranger"].address)
    await http.post("/v1/sync")
    app_state = (await http.get(f"/v1/orders/{hashes['app']}")).json()
    assert (app_state["status"], app_state["status_reason"]) == ("cancelled", "cancelled on-chain")
    pool_state = (await http.get(f"/v1/orders/{hashes['workerpool']}")).json()
    assert (pool_state["status"], pool_state["status_reason"]) == ("dead", "asset owner changed")


async def test_chain_view_accepts_build_artifact_abis(
    chain: Devnet, clients: dict[str, ChainClient]
) -> None:
    from comptoir.chain.build import artifact

    d = chain.deployment
    app = clients["app_dev"].register_app("echo", "oci://echo", b"\x11" * 32)
    full = Web3ChainView(
        chain.rpc_url,
        d.registry,
        d.hub,
        registry_abi=artifact("Registry").abi,
        hub_abi=artifact("Hub").abi,
    )
    minimal = Web3ChainView(chain.rpc_url, d.registry, d.hub)
    for view in (full, minimal):
        assert await view.owner_of(app) == clients["app_dev"].address
        assert await view.kind_of(app) == 1
        assert await view.owner_of(10**9) is None and await view.kind_of(10**9) == 0
        assert await view.consumed(b"\x00" * 32) == 0
        assert await view.block_number() == chain.w3.eth.block_number
        assert await view.balance_of(clients["app_dev"].address) == clients["app_dev"].balance()
        await view.close()


def _high_s_twin(signature: bytes) -> str:
    from comptoir.market.orderbook import SECP256K1_N

    s = int.from_bytes(signature[32:64], "big")
    twin = signature[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - signature[64]])
    return "0x" + twin.hex()


async def test_listed_signatures_are_the_ones_the_hub_accepts(
    market: tuple[httpx.AsyncClient, Devnet], clients: dict[str, ChainClient]
) -> None:
    """Twins (high s) and v = 0/1 forms are listed in the hub's form: a match with the
    listed signatures goes through, one with the twin as sent is refused by the hub."""
    from comptoir.exceptions import TransactionRejected

    http, _ = market
    app_dev, scheduler, requester = clients["app_dev"], clients["scheduler"], clients["requester"]
    app = app_dev.register_app("twin", "oci://twin", b"\x22" * 32)
    pool = scheduler.register_workerpool("twin-pool", 25, 10)
    requester.deposit(10_000)
    scheduler.deposit(10_000)
    app_order = AppOrder(app=app, app_price=7, volume=3)
    pool_order = WorkerpoolOrder(
        workerpool=pool, workerpool_price=100, volume=3, category=TEST_CATEGORY_ID, trust=1
    )
    request = RequestOrder(
        app=app,
        app_max_price=7,
        dataset=0,
        dataset_max_price=0,
        workerpool=pool,
        workerpool_max_price=100,
        requester=requester.address,
        volume=1,
        category=TEST_CATEGORY_ID,
        trust=1,
    )
    app_twin = _high_s_twin(app_dev.sign_order(app_order))
    proper_pool = scheduler.sign_order(pool_order)
    pool_low_v = "0x" + (proper_pool[:64] + bytes([proper_pool[64] - 27])).hex()
    listed = {}
    for kind, order, sig in (
        ("app", app_order, app_twin),
        ("workerpool", pool_order, pool_low_v),
        ("request", request, _high_s_twin(requester.sign_order(request))),
    ):
        r = await http.post(
            "/v1/orders", json={"kind": kind, "order": order.to_json(), "signature": sig}
        )
        assert r.status_code == 201, r.text
        listed[kind] = bytes.fromhex(r.json()["signature"][2:])
    stranger = clients["stranger"]
    with pytest.raises(TransactionRejected) as refused:  # the twin as sent: the hub refuses it
        stranger.match_orders(
            app_order,
            bytes.fromhex(app_twin[2:]),
            None,
            b"",
            pool_order,
            listed["workerpool"],
            request,
            listed["request"],
        )
    assert refused.value.reason == "ecdsa: invalid signature `s` value"
    stranger.match_orders(
        app_order,
        listed["app"],
        None,
        b"",
        pool_order,
        listed["workerpool"],
        request,
        listed["request"],
    )
    assert stranger.consumed(request) == 1
