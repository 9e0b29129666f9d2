"""Market scale benchmark: N real signed orders published over HTTP to a real market process.

A real anvil with the contracts, a real market process (``comptoir.market`` under uvicorn,
its own fresh database: SQLite, and PostgreSQL with ``--postgres URL``), real signatures
and real deposits: the orders are request orders of ceil(N / 200) requesters (the market
lists at most 200 open orders per signer), each holding a deposit on the hub, naming one of
50 apps, 20 workerpools and 5 categories, with random prices, volumes and tag bits.

Per database and book size N:

- **publish**: the orders are signed beforehand (not measured), then published in batches
  of ``--batch`` (``POST /v1/batch/orders``), ``--concurrency`` requests in flight; then
  ``--singles`` more one per request (``POST /v1/orders``) into the full book: orders/s and
  the market process's CPU ms per order, for each way;
- **query**: ``--queries`` filtered listings (``GET /v1/orders``, 20 per page) cycling through
  the filters a taker uses (app, workerpool, category + price, tag, requester, minimum
  volume, next page by cursor): queries/s, p50/p99 latency, market CPU ms per query.

The market's background sync loop is off during the run (COMPTOIR_MARKET_SYNC_INTERVAL=0):
it is measured by the indexer's own benchmark, and here it would bill its chain reads to
publishes. CPU per operation is reported beside wall rates (the machine is shared and
noisy), with the market's share of a core and the load average over each phase. The load
generator speaks HTTP/1.1 over keep-alive connections itself (`Connection`), requests
encoded beforehand, so its own CPU (reported too) is a small part of the machine's.

Usage: python bench/market_scale.py [--orders 10000,100000] [--postgres URL] [--profile]
       (bench/scale.py --market-orders runs the same inside the scale benchmark)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import cpu_seconds, fresh_database, start_sampler, stop_sampler

from e2e import machine

OUT = Path(__file__).resolve().parent / "scale.json"
PER_OWNER = 200  # the market's default cap of open orders per signer
APPS, POOLS, CATEGORIES = 50, 20, 5
PAGE = 20


def requesters(n: int) -> list[LocalAccount]:
    return [Account.from_key(keccak(text=f"comptoir-bench-requester-{i}")) for i in range(n)]


def fund(rpc_url: str, deployment: Any, accounts: list[LocalAccount]) -> None:
    """One deposit of 1 token unit on the hub for each requester (what listing needs)."""
    from comptoir.chain.client import ChainClient, connect
    from comptoir.devnet import devnet_accounts

    funder = ChainClient(connect(rpc_url), deployment, devnet_accounts()[0])
    unfunded = [a for a in accounts if funder.balance(a.address) < 1]
    if not unfunded:
        return
    funder.approve(len(unfunded))
    for a in unfunded:
        funder.deposit(1, approve=False, beneficiary=a.address)


def signed_orders(
    n: int, accounts: list[LocalAccount], chain_id: int, hub: str, seed: int
) -> list[dict[str, Any]]:
    from comptoir.chain.eip712 import sign_order
    from comptoir.chain.types import RequestOrder

    rng = random.Random(seed)
    out = []
    for i in range(n):
        signer = accounts[i // PER_OWNER]
        order = RequestOrder(
            app=1 + rng.randrange(APPS),
            app_max_price=rng.randrange(100),
            dataset=0,
            dataset_max_price=0,
            workerpool=rng.choice([0, 1 + rng.randrange(POOLS)]),
            workerpool_max_price=rng.randrange(1000),
            requester=signer.address,
            volume=1 + rng.randrange(100),
            tag=(1 << rng.randrange(4)).to_bytes(32, "big"),
            category=rng.randrange(CATEGORIES),
            trust=1,
            salt=rng.randbytes(32),
        )
        signature = sign_order(order, signer, chain_id, hub)
        out.append(
            {"kind": "request", "order": order.to_json(), "signature": "0x" + signature.hex()}
        )
    return out


def start_market(home: Path, rpc_url: str, deployment: Any, database: str) -> tuple[Any, str]:
    from comptoir.stack import free_port

    port = free_port()
    env = {
        **os.environ,
        "COMPTOIR_CHAIN_ID": str(deployment.chain_id),
        "COMPTOIR_HUB": deployment.hub,
        "COMPTOIR_REGISTRY": deployment.registry,
        "COMPTOIR_RPC_URL": rpc_url,
        "COMPTOIR_MARKET_DB": database,
        "COMPTOIR_MARKET_SYNC_INTERVAL": "0",
    }
    code = (
        "from comptoir.market.server import run_market\n"
        "from comptoir.market.settings import MarketSettings\n"
        f"run_market('127.0.0.1', {port}, MarketSettings.from_env(), log_level='warning')\n"
    )
    log = open(home / f"market-{port}.log", "wb")  # noqa: SIM115 (kept by the child)
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the market exited at start; see {log.name}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/info", timeout=2.0).status_code == 200:
                return proc, url
        time.sleep(0.2)
    raise SystemExit(f"the market did not answer within 60 s; see {log.name}")


def quantiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {"p50_ms": 0.0, "p99_ms": 0.0}
    return {
        "p50_ms": round(1000 * statistics.median(ordered), 2),
        "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
    }


class Connection:
    """One keep-alive HTTP/1.1 connection: the load generator's own minimal client. httpx
    costs several ms of CPU per request, more than the market it measures, and on a 2-core
    machine the client's CPU is taken from the server's; requests here are encoded before
    the clock starts, and a response is read by its Content-Length."""

    def __init__(self, url: str) -> None:
        split = urlsplit(url)
        self.host, self.port = split.hostname or "127.0.0.1", split.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}\r\n"
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + (body or b""))
        status = int((await self.reader.readuntil(b"\r\n")).split()[1])
        length = None
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise SystemExit(f"{method} {target}: the market answered without Content-Length")
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()


Job = tuple[str, str, bytes | None]  # method, path and query, encoded JSON body


def get(path: str, params: dict[str, Any]) -> Job:
    return "GET", f"{path}?{urlencode(params)}", None


def post(path: str, payload: Any) -> Job:
    return "POST", path, json.dumps(payload, separators=(",", ":")).encode()


async def closed_loop(
    url: str, jobs: list[Job], concurrency: int
) -> tuple[float, list[float], dict[int, int]]:
    """Runs the jobs, `concurrency` in flight (one connection each): the elapsed time, the
    latencies and the count of each HTTP status (and of each batch item's)."""
    queue = list(reversed(jobs))
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def drive() -> None:
        connection = Connection(url)
        try:
            while queue:
                method, target, body = queue.pop()
                start = time.perf_counter()
                status, answer = await connection.request(method, target, body)
                latencies.append(time.perf_counter() - start)
                statuses[status] = statuses.get(status, 0) + 1
                if target == "/v1/batch/orders" and status == 200:
                    for item in json.loads(answer)["results"]:
                        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
        finally:
            await connection.close()

    start = time.monotonic()
    await asyncio.gather(*(drive() for _ in range(concurrency)))
    return time.monotonic() - start, latencies, statuses


def query_jobs(count: int, accounts: list[LocalAccount], seed: int) -> list[Job]:
    rng = random.Random(seed)
    filters = [
        lambda: {"kind": "request", "app": 1 + rng.randrange(APPS)},
        lambda: {"kind": "request", "workerpool": 1 + rng.randrange(POOLS)},
        lambda: {"category": rng.randrange(CATEGORIES), "max_price": rng.randrange(200, 900)},
        lambda: {"kind": "request", "tag": hex(1 << rng.randrange(4))},
        lambda: {"requester": rng.choice(accounts).address},
        lambda: {"app": 1 + rng.randrange(APPS), "min_remaining": rng.randrange(50, 100)},
        lambda: {"usable_with_workerpool": 1 + rng.randrange(POOLS), "max_price": 500},
    ]
    return [get("/v1/orders", {**filters[i % len(filters)](), "limit": PAGE}) for i in range(count)]


async def cursor_walk(url: str, pages: int) -> dict[str, Any]:
    """Pages deep into one filter by cursor: the latency of the last page vs the first."""
    params: dict[str, Any] = {"kind": "request", "limit": PAGE}
    times = []
    connection = Connection(url)
    try:
        for _ in range(pages):
            method, target, _ = get("/v1/orders", params)
            start = time.perf_counter()
            status, answer = await connection.request(method, target, None)
            times.append(time.perf_counter() - start)
            page = json.loads(answer)
            if status != 200 or page["next"] is None:
                break
            params["after"] = page["next"]
    finally:
        await connection.close()
    return {
        "pages": len(times),
        "first_ms": round(1000 * times[0], 2),
        "last_ms": round(1000 * times[-1], 2),
    }


async def phase(
    name: str,
    unit: tuple[str, str],
    url: str,
    pid: int,
    jobs: list[Job],
    count: int,
    concurrency: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    """One closed-loop phase: wall rate, market and load-generator CPU per operation,
    latency quantiles and the load average over the phase. `unit`: what is counted
    (plural, singular), `count` of them in the jobs; `profile`: where py-spy's samples of
    the market go, with the top functions in the result."""
    units, one = unit
    sampler = start_sampler(profile, pid, name.replace(" ", "-")) if profile else None
    cpu0, client0, load0 = cpu_seconds(pid), time.process_time(), os.getloadavg()[0]
    wall, latencies, statuses = await closed_loop(url, jobs, concurrency)
    cpu, client = cpu_seconds(pid) - cpu0, time.process_time() - client0
    out: dict[str, Any] = {
        units: count,
        "requests": len(jobs),
        "seconds": round(wall, 2),
        f"{units}_per_second": round(count / wall, 1),
        f"market_cpu_ms_per_{one}": round(1000 * cpu / count, 3),
        f"client_cpu_ms_per_{one}": round(1000 * client / count, 3),
        "market_cpu_share": round(cpu / wall, 2),  # cores the market kept busy
        "request": quantiles(latencies),
        "load_average": [round(load0, 2), round(os.getloadavg()[0], 2)],
        "statuses": statuses,
    }
    if sampler is not None:
        out["profile_top"] = stop_sampler(*sampler)
        print("\n".join(out["profile_top"]))
    print(
        f"  {name}: {count} {units} in {wall:.1f} s ({count / wall:.0f}/s), "
        f"{1000 * cpu / count:.2f} ms market CPU each ({1000 * client / count:.2f} ms client), "
        f"p50 {out['request']['p50_ms']} ms, load {load0:.1f} -> {os.getloadavg()[0]:.1f}"
    )
    return out


async def measure(
    url: str,
    pid: int,
    bodies: list[dict[str, Any]],
    singles: list[dict[str, Any]],
    accounts: list[LocalAccount],
    *,
    batch: int,
    concurrency: int,
    queries: int,
    profile: Path | None = None,
) -> dict[str, Any]:
    jobs = [post("/v1/batch/orders", bodies[i : i + batch]) for i in range(0, len(bodies), batch)]
    orders = ("orders", "order")
    batched = await phase("batch publish", orders, url, pid, jobs, len(bodies), concurrency)
    batched["batch"] = batch
    jobs = [post("/v1/orders", b) for b in singles]
    single = await phase("single publish", orders, url, pid, jobs, len(singles), concurrency)
    jobs = query_jobs(queries, accounts, seed=len(bodies))
    query = await phase(
        "filtered queries", ("queries", "query"), url, pid, jobs, queries, concurrency, profile
    )
    query["page"] = PAGE
    query["cursor_walk"] = await cursor_walk(url, 200)
    return {"publish_batch": batched, "publish_single": single, "query": query}


def run_market_bench(
    rpc_url: str,
    deployment: Any,
    home: Path,
    sizes: list[int],
    postgres: str | None,
    *,
    batch: int = 100,
    concurrency: int = 4,
    singles: int = 1000,
    queries: int = 2000,
    profile: bool = False,
) -> list[dict[str, Any]]:
    """Every (database, size) run; what bench/scale.py writes under "market"."""
    runs = []
    for n in sizes:
        accounts = requesters(math.ceil((n + singles) / PER_OWNER))
        fund(rpc_url, deployment, accounts)
        t0 = time.monotonic()
        bodies = signed_orders(n + singles, accounts, deployment.chain_id, deployment.hub, n)
        print(f"{n + singles} orders signed in {time.monotonic() - t0:.1f} s (not measured)")
        for base in [None, *([postgres] if postgres else [])]:
            name = "postgresql" if base else "sqlite"
            print(f"market: {name}, {n} orders")
            database = fresh_database(base, f"bench_market_{n}_{int(time.time())}", home)
            proc, url = start_market(home, rpc_url, deployment, database)
            try:
                figures = asyncio.run(
                    measure(
                        url,
                        proc.pid,
                        bodies[:n],
                        bodies[n:],
                        accounts,
                        batch=batch,
                        concurrency=concurrency,
                        queries=queries,
                        profile=home if profile else None,
                    )
                )
            finally:
                proc.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(15)
                if proc.poll() is None:
                    proc.kill()
            runs.append({"database": name, "orders": n, **figures})
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", default="10000", help="book sizes, e.g. 10000,100000")
    parser.add_argument("--postgres", default=None, help="also run on this PostgreSQL URL")
    parser.add_argument("--batch", type=int, default=100, help="orders per batch request")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight")
    parser.add_argument("--singles", type=int, default=1000, help="orders published one by one")
    parser.add_argument("--queries", type=int, default=2000, help="filtered queries per run")
    parser.add_argument("--output", type=Path, default=OUT)
    parser.add_argument("--profile", action="store_true", help="sample the queries (py-spy)")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="comptoir-market-scale-"))
    os.environ["COMPTOIR_HOME"] = str(home)
    os.environ["COMPTOIR_DEVNET_PORT"] = "0"
    from comptoir import devnet
    from comptoir.config import load_settings

    settings = load_settings()
    net = devnet.up(settings)
    try:
        runs = run_market_bench(
            net.rpc_url,
            net.deployment,
            home,
            [int(n) for n in args.orders.split(",")],
            args.postgres,
            batch=args.batch,
            concurrency=args.concurrency,
            singles=args.singles,
            queries=args.queries,
            profile=args.profile,
        )
    finally:
        devnet.down(settings)
    report = json.loads(args.output.read_text()) if args.output.exists() else {}
    report["market"] = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": machine(),
        "command": "python bench/market_scale.py " + " ".join(sys.argv[1:]),
        "runs": runs,
    }
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output} (market)")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
