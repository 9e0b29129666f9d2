"""The market as the network's index, against a real anvil devnet and the real market app:
incremental ingestion that resumes after a restart, order status from chain events, a reorg
rolled back and re-read, the confirmation depth, and the query API's bounds."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from comptoir import devnet
from comptoir.chain.client import ChainClient
from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import AppOrder, RequestOrder, WorkerpoolOrder
from comptoir.devnet import Devnet
from comptoir.market import MarketSettings, create_market_app
from comptoir.market import indexstore as ix

pytestmark = pytest.mark.devnet

Market = Callable[..., Any]


def doc(kind: str, order: Any, client: ChainClient) -> dict[str, Any]:
    return {
        "kind": kind,
        "order": order.to_json(),
        "signature": "0x" + client.sign_order(order).hex(),
    }


def index_settings(chain: Devnet, database: Path, start: int, **kw: Any) -> MarketSettings:
    """A market reading the devnet over JSON-RPC, so it keeps the index."""
    d = chain.deployment
    return MarketSettings(
        chain_id=chain.chain_id,
        hub=d.hub,
        registry=d.registry,
        rpc_url=chain.rpc_url,
        database=database,
        sync_interval=None,
        start_block=start,
        admin_token="anvil-admin",
        **kw,
    )


def claimed_deal(chain: Devnet, clients: dict[str, ChainClient]) -> tuple[Any, Any, Any]:
    """A deal whose task 0 was claimed after its final deadline; (deal, app, pool orders)."""
    app_order, pool_order, request, _ = orders_for(clients)
    deal = match(clients, app_order, pool_order, request)
    now = chain.w3.eth.get_block("latest")["timestamp"]
    devnet.increase_time(chain.w3, deal.final_deadline - now + 1)
    clients["scheduler"].claim(deal, [0])
    return deal, app_order, pool_order


@pytest.fixture
def market(chain: Devnet, tmp_path: Path) -> Market:
    """Opens the real market app (index on) over one database; call it again to restart."""
    start = chain.w3.eth.block_number

    @asynccontextmanager
    async def open_market(confirmations: int = 0) -> AsyncIterator[httpx.AsyncClient]:
        # several chunks per pass, as a capped provider forces
        settings = index_settings(
            chain, tmp_path / "m.db", start, confirmations=confirmations, max_block_range=3
        )
        app = create_market_app(settings)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://market",
                headers={"Authorization": "Bearer anvil-admin"},
            ) as client,
        ):
            client.app = app  # type: ignore[attr-defined]
            yield client

    return open_market


def journal_size(http: httpx.AsyncClient) -> int:
    engine = http.app.state.market.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ix.journal)).scalar() or 0)


def orders_for(clients: dict[str, ChainClient], volume: int = 1) -> tuple[Any, Any, Any, int]:
    app_dev, scheduler, requester = clients["app_dev"], clients["scheduler"], clients["requester"]
    app = app_dev.register_app("echo", "oci://echo", b"\x11" * 32)
    pool = scheduler.register_workerpool("pool", 25, 10)
    requester.deposit(10_000)
    scheduler.deposit(10_000)
    app_order = AppOrder(app=app, app_price=7, volume=3)
    pool_order = WorkerpoolOrder(
        workerpool=pool, workerpool_price=100, volume=3, category=TEST_CATEGORY_ID, trust=1
    )
    return app_order, pool_order, request_for(clients, app, volume), pool


def request_for(clients: dict[str, ChainClient], app: int, volume: int = 1) -> RequestOrder:
    return RequestOrder(
        app=app,
        app_max_price=7,
        dataset=0,
        dataset_max_price=0,
        workerpool=0,
        workerpool_max_price=100,
        requester=clients["requester"].address,
        volume=volume,
        category=TEST_CATEGORY_ID,
        trust=1,
    )


def match(clients: dict[str, ChainClient], app_order: Any, pool_order: Any, request: Any) -> Any:
    app_dev, scheduler, requester = clients["app_dev"], clients["scheduler"], clients["requester"]
    return clients["stranger"].match_orders(
        app_order,
        app_dev.sign_order(app_order),
        None,
        b"",
        pool_order,
        scheduler.sign_order(pool_order),
        request,
        requester.sign_order(request),
    )


def mine(chain: Devnet, blocks: int) -> None:
    for _ in range(blocks):
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


async def publish(http: httpx.AsyncClient, kind: str, order: Any, signer: ChainClient) -> str:
    r = await http.post("/v1/orders", json=doc(kind, order, signer))
    assert r.status_code == 201, r.text
    return str(r.json()["hash"])


async def status(http: httpx.AsyncClient, order_hash: str) -> tuple[str, int, str | None]:
    body = (await http.get(f"/v1/orders/{order_hash}")).json()
    return body["status"], body["remaining"], body["status_reason"]


async def test_index_follows_the_chain_across_restarts(
    chain: Devnet, clients: dict[str, ChainClient], market: Market
) -> None:
    app_dev, scheduler, requester = clients["app_dev"], clients["scheduler"], clients["requester"]
    app_order, pool_order, request, pool = orders_for(clients)
    async with market() as http:
        hashes = {
            "app": await publish(http, "app", app_order, app_dev),
            "pool": await publish(http, "workerpool", pool_order, scheduler),
            "request": await publish(http, "request", request, requester),
        }
        deal = match(clients, app_order, pool_order, request)
        report = (await http.post("/v1/sync")).json()
        assert report["deals"] == 1 and report["checked"] == 3
        assert await status(http, hashes["app"]) == ("open", 2, None)
        assert await status(http, hashes["pool"]) == ("open", 2, None)
        assert (await status(http, hashes["request"]))[0] == "filled"
        r = await http.get("/v1/deals", params={"requester": requester.address})
        page = r.json()
        assert r.status_code == 200, r.text
        assert [d["deal_id"] for d in page["deals"]] == ["0x" + deal.deal_id.hex()]
        assert page["deals"][0]["volume"] == 1 and page["deals"][0]["workerpool"] == pool
        assert page["index"]["final"] <= chain.w3.eth.block_number  # idle blocks may follow
        apps = (
            await http.get("/v1/assets", params={"kind": "app", "owner": app_dev.address})
        ).json()
        assert [(a["name"], a["location"]) for a in apps["assets"]] == [("echo", "oci://echo")]
        logged = journal_size(http)
        assert logged > 0

    # restart: the cursor resumes, nothing is read or counted twice
    request2 = request_for(clients, app_order.app)
    async with market() as http:
        assert (await http.post("/v1/sync")).json()["deals"] == 0
        assert journal_size(http) == logged
        assert (await status(http, hashes["app"]))[:2] == ("open", 2)  # full reconcile: same
        await publish(http, "request", request2, requester)
        deal2 = match(clients, app_order, pool_order, request2)
        assert (await http.post("/v1/sync")).json()["deals"] == 1
        page = (await http.get("/v1/deals", params={"limit": 1})).json()
        assert [d["deal_id"] for d in page["deals"]] == ["0x" + deal2.deal_id.hex()]
        older = (await http.get("/v1/deals", params={"cursor": page["next_cursor"]})).json()
        assert [d["deal_id"] for d in older["deals"]] == ["0x" + deal.deal_id.hex()]
        assert older["next_cursor"] is None
        assert await status(http, hashes["app"]) == ("open", 1, None)

        # on-chain cancel and transfer reach the book through events
        app_dev.cancel_order(app_order)
        scheduler.transfer_asset(pool, clients["stranger"].address)
        await http.post("/v1/sync")
        assert await status(http, hashes["app"]) == ("cancelled", 0, "cancelled on-chain")
        assert await status(http, hashes["pool"]) == ("dead", 1, "asset owner changed")
        owned = (await http.get(f"/v1/assets/{pool}")).json()
        assert owned["owner"] == clients["stranger"].address

        # a claim after the final deadline: the task shows as claimed, the deal counts it
        devnet.increase_time(
            chain.w3, deal.final_deadline - chain.w3.eth.get_block("latest")["timestamp"] + 1
        )
        scheduler.claim(deal, [0])
        await http.post("/v1/sync")
        task_id = "0x" + deal.task_id(0).hex()
        task = (await http.get(f"/v1/tasks/{task_id}")).json()
        assert (task["status"], task["deal_id"], task["index"]) == (
            "claimed",
            "0x" + deal.deal_id.hex(),
            0,
        )
        one = (await http.get(f"/v1/deals/0x{deal.deal_id.hex()}")).json()
        assert (one["claimed"], one["finalized"]) == (1, 0)
        listed = (await http.get(f"/v1/deals/0x{deal.deal_id.hex()}/tasks")).json()
        assert [t["task_id"] for t in listed["tasks"]] == [task_id]


async def test_a_reorg_rolls_index_rows_back_and_rereads(
    chain: Devnet, clients: dict[str, ChainClient], market: Market
) -> None:
    app_dev, requester = clients["app_dev"], clients["requester"]
    app_order, pool_order, request, _ = orders_for(clients)
    async with market() as http:
        request_hash = await publish(http, "request", request, requester)
        await publish(http, "app", app_order, app_dev)
        await http.post("/v1/sync")
        fork = devnet.snapshot(chain.w3)
        deal = match(clients, app_order, pool_order, request)
        gone = app_dev.register_app("gone", "oci://gone", b"\x33" * 32)
        await http.post("/v1/sync")
        assert (await status(http, request_hash))[0] == "filled"
        assert (await http.get(f"/v1/assets/{gone}")).json()["name"] == "gone"
        assert (await http.get(f"/v1/deals/0x{deal.deal_id.hex()}")).status_code == 200

        devnet.revert(chain.w3, fork)  # the chain forgets the deal and the app
        kept = app_dev.register_app("kept", "oci://kept", b"\x44" * 32)
        mine(chain, 4)
        await http.post("/v1/sync")
        assert http.app.state.market.sync.last_index.rolled_back_to is not None  # type: ignore[attr-defined]
        missing = await http.get(f"/v1/deals/0x{deal.deal_id.hex()}")
        assert missing.status_code == 404 and "No deal" in missing.json()["detail"]
        assert (await http.get(f"/v1/assets/{kept}")).json()["name"] == "kept"
        names = [a["name"] for a in (await http.get("/v1/assets")).json()["assets"]]
        assert "gone" not in names and "kept" in names
        assert await status(http, request_hash) == ("open", 1, None)  # the fill went back
        head = (await http.get("/v1/index")).json()
        assert head["final"] <= chain.w3.eth.block_number  # idle blocks may follow the sync
        final_block = chain.w3.eth.get_block(head["final"])
        assert head["final_hash"] == "0x" + bytes(final_block["hash"]).hex()


async def test_only_final_events_are_indexed(
    chain: Devnet, clients: dict[str, ChainClient], market: Market
) -> None:
    mine(chain, 3)  # blocks the index starts in are already final
    async with market(confirmations=3) as http:
        app = clients["app_dev"].register_app("deep", "oci://deep", b"\x55" * 32)
        before = chain.w3.eth.block_number
        await http.post("/v1/sync")
        head = (await http.get("/v1/index")).json()
        assert head["confirmations"] == 3
        # 3 behind the head the sync saw (an idle block may land meanwhile)
        assert before - 3 <= head["final"] <= chain.w3.eth.block_number - 3
        assert (await http.get(f"/v1/assets/{app}")).status_code == 404
        mine(chain, 3)
        await http.post("/v1/sync")
        assert (await http.get(f"/v1/assets/{app}")).json()["name"] == "deep"


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/v1/deals", {"limit": 501}, "limit"),
        ("/v1/deals", {"limit": 0}, "limit"),
        ("/v1/deals", {"cursor": "abc"}, "cursor"),
        ("/v1/deals", {"cursor": "9" * 20}, "cursor"),  # past a SQL BIGINT: no 500
        ("/v1/deals/0x" + "ab" * 32 + "/tasks", {"cursor": "9" * 20}, "cursor"),
        ("/v1/deals", {"requester": "0x12"}, "requester"),
        ("/v1/deals", {"workerpool": -1}, "workerpool"),
        ("/v1/assets", {"kind": "car"}, "kind"),
        ("/v1/assets", {"name": "x" * 300}, "name"),
        ("/v1/assets/-4", {}, "asset"),
        ("/v1/tasks/0x12", {}, "task_id"),
        ("/v1/deals/0xzz", {}, "deal_id"),
    ],
)
async def test_query_bounds(market: Market, path: str, params: dict[str, Any], words: str) -> None:
    async with market() as http:
        r = await http.get(path, params=params)
        assert r.status_code == 422, r.text
        assert words in r.json()["detail"]


async def test_unknown_rows_and_page_caps(clients: dict[str, ChainClient], market: Market) -> None:
    for i in range(4):
        clients["app_dev"].register_app(f"a{i}", f"oci://a{i}", bytes([i + 1]) * 32)
    async with market() as http:
        await http.post("/v1/sync")
        r = await http.get("/v1/tasks/0x" + "ab" * 32)
        assert r.status_code == 404 and "ask its scheduler" in r.json()["detail"]
        first = (await http.get("/v1/assets", params={"kind": "app", "limit": 3})).json()
        assert len(first["assets"]) == 3 and first["next_cursor"] is not None
        rest = (
            await http.get("/v1/assets", params={"kind": "app", "cursor": first["next_cursor"]})
        ).json()
        assert [a["name"] for a in rest["assets"]] == ["a3"]
        assert (await http.get("/v1/assets", params={"name": "a2"})).json()["assets"][0][
            "location"
        ] == "oci://a2"


def test_capped_provider_chunks_and_an_interrupted_catch_up_resumes(
    chain: Devnet, clients: dict[str, ChainClient], tmp_path: Path
) -> None:
    """Through a provider that refuses more than 2 blocks per eth_getLogs, the indexer
    halves its ranges; a provider failure mid catch-up leaves the cursor at the last chunk
    written, and the next pass resumes there without reading or storing anything twice."""
    from sqlalchemy import create_engine

    from comptoir.chain.client import connect
    from comptoir.exceptions import ChainError
    from comptoir.market.indexer import ChainIndexer
    from comptoir.testing.servers import serve_app
    from network.test_logscan import CappedProvider  # the same capping proxy

    start = chain.w3.eth.block_number + 1
    names = [f"capped-{i}" for i in range(6)]
    for name in names:
        clients["app_dev"].register_app(name, f"oci://{name}", b"\x77" * 32)
        mine(chain, 2)
    d = chain.deployment
    provider = CappedProvider(chain.rpc_url, cap=2)
    engine = create_engine(f"sqlite:///{tmp_path / 'ix.db'}")
    with serve_app(provider.app()) as url:
        indexer = ChainIndexer(
            engine, connect(url), d.hub, d.registry, d.contributions, start, max_range=8
        )
        indexer.create_tables()
        served = 0
        original = indexer.read_chunk

        def failing_after_two(after: int, final: int) -> Any:
            nonlocal served
            served += 1
            if served > 2:
                provider.broken = True
            return original(after, final)

        indexer.read_chunk = failing_after_two  # type: ignore[method-assign]
        with pytest.raises(ChainError):
            indexer.run_once()
        stopped = indexer.cursor().block
        assert start - 1 < stopped < chain.w3.eth.block_number  # two chunks were written
        assert all(b - a + 1 <= 2 for a, b in provider.served)
        provider.broken = False
        provider.served.clear()
        indexer.read_chunk = original  # type: ignore[method-assign]
        before = chain.w3.eth.block_number
        report = indexer.run_once()
        assert before <= report.cursor <= chain.w3.eth.block_number
        assert min(a for a, _ in provider.served) == stopped + 1  # resumed, not restarted
    with engine.connect() as conn:
        rows = conn.execute(select(ix.assets.c.name).order_by(ix.assets.c.asset)).all()
        logged = conn.execute(select(func.count()).select_from(ix.journal)).scalar()
    assert [r.name for r in rows] == names
    assert logged == len(names)  # one AssetRegistered each, none twice


def test_a_reorg_while_a_chunk_is_read_is_never_written(
    chain: Devnet, clients: dict[str, ChainClient], tmp_path: Path, monkeypatch: Any
) -> None:
    """The logs of a chunk and the hash stored as its cursor must come from one chain: a
    reorg between the two reads would keep the old fork's events under the new fork's
    hash, where no later pass could see them as rolled back."""
    from sqlalchemy import create_engine

    from comptoir.market import indexer as indexer_module
    from comptoir.market.indexer import ChainIndexer

    app_dev = clients["app_dev"]
    start = chain.w3.eth.block_number + 1
    fork = devnet.snapshot(chain.w3)
    app_dev.register_app("gone", "oci://gone", b"\x33" * 32)
    mine(chain, 2)
    real = indexer_module.logscan.get_logs
    reorged: list[bool] = []

    def get_logs(*args: Any, **kw: Any) -> Any:
        logs = real(*args, **kw)
        if not reorged:  # the chain reorganizes right after the logs were read
            reorged.append(True)
            devnet.revert(chain.w3, fork)
            app_dev.register_app("kept", "oci://kept", b"\x44" * 32)
            mine(chain, 2)
        return logs

    monkeypatch.setattr(indexer_module.logscan, "get_logs", get_logs)
    d = chain.deployment
    engine = create_engine(f"sqlite:///{tmp_path / 'ix.db'}")
    indexer = ChainIndexer(engine, chain.w3, d.hub, d.registry, d.contributions, start_block=start)
    indexer.create_tables()
    for _ in range(3):  # a pass that saw the reorg may fail: the next one resumes
        try:
            indexer.run_once()
            break
        except Exception:
            continue
    with engine.connect() as conn:
        names = set(conn.scalars(select(ix.assets.c.name)))
    assert "gone" not in names and "kept" in names
