"""The market's network index: catch-up rate, query latency, and the CPU of one order-book
sync pass with many open orders, before (an eth_call per order) and after (the index).

On a fresh devnet: registers ASSETS apps (one AssetRegistered log each) spread over BLOCKS
blocks, makes DEALS deals, then
- indexes it all from the deployment block into a fresh SQLite database (blocks/s, events/s),
- times GET /v1/assets, /v1/assets?name=, /v1/deals?requester= and /v1/deals/{id} through
  the real market app over HTTP (median and p95 of QUERIES calls each),
- lists ORDERS open app orders in the book (rows written directly: publishing them would
  time signature checks, not the sync) and measures the CPU time of this process for one
  sync pass without the index (the previous path) and with it (an idle pass, and a pass
  after one deal).

    .venv/bin/python bench/index.py [--assets 300] [--blocks 3000] [--deals 20]
                                    [--orders 10000] [--queries 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from comptoir import devnet
from comptoir.chain.client import ChainClient
from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import AppOrder, RequestOrder, WorkerpoolOrder
from comptoir.config import load_settings
from comptoir.market import MarketSettings, Web3ChainView, create_market_app
from comptoir.market.store import orders as orders_table
from comptoir.market.store import row_for
from comptoir.testing.servers import serve_app


def make_deals(net: devnet.Devnet, n: int) -> tuple[ChainClient, int, ChainClient, Any]:
    app_dev, scheduler, requester = net.client(2), net.client(3), net.client(1)
    app = app_dev.register_app("bench-app", "oci://bench", b"\x11" * 32)
    pool = scheduler.register_workerpool("bench-pool", 25, 10)
    requester.deposit(10**9)
    scheduler.deposit(10**9)
    app_order = AppOrder(app=app, app_price=1, volume=10**6)
    pool_order = WorkerpoolOrder(
        workerpool=pool, workerpool_price=10, volume=10**6, category=TEST_CATEGORY_ID, trust=1
    )
    app_sig, pool_sig = app_dev.sign_order(app_order), scheduler.sign_order(pool_order)

    def one() -> None:
        request = RequestOrder(
            app=app,
            app_max_price=1,
            dataset=0,
            dataset_max_price=0,
            workerpool=0,
            workerpool_max_price=10,
            requester=requester.address,
            volume=1,
            category=TEST_CATEGORY_ID,
            trust=1,
        )
        requester.match_orders(
            app_order, app_sig, None, b"", pool_order, pool_sig, request,
            requester.sign_order(request),
        )  # fmt: skip

    for _ in range(n):
        one()
    return app_dev, app, requester, one


def percentiles(samples: list[float]) -> str:
    samples = sorted(samples)
    p95 = samples[int(0.95 * (len(samples) - 1))]
    return f"median {statistics.median(samples) * 1000:6.2f} ms, p95 {p95 * 1000:6.2f} ms"


async def list_orders(settings: MarketSettings, app_dev: ChainClient, app: int, n: int) -> None:
    market = create_market_app(settings).state.market
    await market.store.ready()
    rows = []
    for i in range(n):
        order = AppOrder(app=app, app_price=1 + i, volume=5)
        rows.append(
            row_for(
                order_hash="0x" + app_dev.order_hash(order).hex(),
                kind="app",
                order_json=order.to_json(),
                signature="0x" + "00" * 65,
                owner=app_dev.address,
                status="open",
                status_reason=None,
                remaining=5,
                published_at=time.time(),
            )
        )
    with market.store.engine.begin() as conn:  # one transaction: the setup, not the bench
        conn.execute(orders_table.insert(), rows)
    await market.store.close()


async def sync_cpu(settings: MarketSettings, then: Any = None) -> tuple[float, float, Any]:
    """(CPU seconds, wall seconds, report) of one sync pass of a market over `settings`."""
    app = create_market_app(settings)
    market = app.state.market
    async with app.router.lifespan_context(app):
        if market.indexer is not None:
            await market.sync.run_once()  # catch up and reconcile once: the steady state
            if then is not None:
                then()
        cpu, wall = time.process_time(), time.perf_counter()
        report = await market.sync.run_once()
        return time.process_time() - cpu, time.perf_counter() - wall, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--assets", type=int, default=300)
    parser.add_argument("--blocks", type=int, default=3_000)
    parser.add_argument("--deals", type=int, default=20)
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = load_settings({"COMPTOIR_HOME": home, "COMPTOIR_DEVNET_BLOCK_TIME": "0"})
        net = devnet.up(settings, port=0)
        try:
            run(net, Path(home), args)
        finally:
            devnet.down(settings)


def run(net: devnet.Devnet, home: Path, args: argparse.Namespace) -> None:
    d = net.deployment
    owner = net.client(4)
    gap = max(args.blocks // max(args.assets, 1), 0)
    for i in range(args.assets):
        owner.register_app(f"app-{i}", f"oci://app-{i}", i.to_bytes(32, "big"))
        if gap:
            net.w3.provider.make_request("anvil_mine", [hex(gap)])  # type: ignore[arg-type]
    app_dev, app_id, requester, one_deal = make_deals(net, args.deals)
    head = net.w3.eth.block_number

    def indexed(db: Path, **kw: Any) -> MarketSettings:
        return MarketSettings.from_deployment(
            d, net.rpc_url, database=db, sync_interval=None, admin_token="b", **kw
        )

    print(f"devnet: {head - d.block:,} blocks since deployment, {args.assets} assets, "
          f"{args.deals} deals")  # fmt: skip
    # catch-up
    settings = indexed(home / "catchup.db")
    app = create_market_app(settings)
    indexer = app.state.market.indexer
    indexer.create_tables()
    cpu, wall = time.process_time(), time.perf_counter()
    report = indexer.run_once()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"catch-up: {report.blocks:,} blocks, {report.events:,} events in {wall:.2f} s "
          f"({report.blocks / wall:,.0f} blocks/s, {report.events / wall:,.0f} events/s, "
          f"{cpu:.2f} s CPU; {settings.max_block_range} blocks per eth_getLogs)")  # fmt: skip

    # queries over real HTTP
    with serve_app(create_market_app(settings), lifespan="on") as url, httpx.Client() as http:
        deal_id = http.get(f"{url}/v1/deals", params={"limit": 1}).json()["deals"][0]["deal_id"]
        queries: dict[str, tuple[str, dict[str, Any]]] = {
            "GET /v1/assets?kind=app&limit=100": ("/v1/assets", {"kind": "app", "limit": 100}),
            "GET /v1/assets?name=app-7": ("/v1/assets", {"name": "app-7"}),
            "GET /v1/deals?requester=...": ("/v1/deals", {"requester": requester.address}),
            "GET /v1/deals/{id}": (f"/v1/deals/{deal_id}", {}),
        }
        for label, (path, params) in queries.items():
            samples = []
            for _ in range(args.queries):
                started = time.perf_counter()
                assert http.get(url + path, params=params).status_code == 200
                samples.append(time.perf_counter() - started)
            print(f"  {label:<36} {percentiles(samples)}")

    # one sync pass over many open orders
    print(f"sync pass, {args.orders:,} open orders (CPU of the market process):")
    before_db, after_db = home / "before.db", home / "after.db"
    for db in (before_db, after_db):
        asyncio.run(list_orders(indexed(db), app_dev, app_id, args.orders))
    chain = Web3ChainView(net.rpc_url, d.registry, d.hub)
    before = indexed(before_db, chain=chain, deal_source=False)
    cpu, wall_s, rep = asyncio.run(sync_cpu(before))
    print(f"  before (eth_call per order): {cpu:6.2f} s CPU, {wall_s:6.2f} s wall, "
          f"{rep.checked:,} orders read")  # fmt: skip
    cpu, wall_s, rep = asyncio.run(sync_cpu(indexed(after_db)))
    print(f"  index, idle pass:            {cpu:6.2f} s CPU, {wall_s:6.2f} s wall, "
          f"{rep.checked:,} orders touched")  # fmt: skip
    cpu, wall_s, rep = asyncio.run(sync_cpu(indexed(after_db), then=one_deal))
    print(f"  index, pass after one deal:  {cpu:6.2f} s CPU, {wall_s:6.2f} s wall, "
          f"{rep.checked:,} orders touched")  # fmt: skip
    print("reproduce: .venv/bin/python bench/index.py " + " ".join(
        f"--{k} {v}" for k, v in vars(args).items()))  # fmt: skip


if __name__ == "__main__":
    main()
