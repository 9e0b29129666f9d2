"""Scheduler scale benchmark (bench/scale.json): simulated workers against a real scheduler.

A real local stack (anvil with the contracts, storage, market) and a real scheduler process
(``python -m comptoir.scheduler``) for a workerpool of its own; the workers are simulated
in this process and speak the scheduler's documented HTTP API exactly as the reference
worker does (docs/scheduler-api.md): challenge, signed registration, pull work, signed
commitment, reveal. No app runs: each simulated worker commits a fixed digest per task, so
the figures are the scheduler's own cost (and the chain's, for settlement gas).

For each database (SQLite; PostgreSQL with ``--postgres URL``), trust level and worker count:

- **registration**: W workers register (challenge + signed registration), wall time and
  the scheduler's CPU per registration;
- **dispatch**: one deal of ``--tasks`` tasks is matched on-chain, then the workers pull,
  commit and reveal until every task is revealed (or ``--seconds`` pass): dispatches/s,
  commits/s, p50/p99 latency per endpoint, scheduler CPU ms per task. A commitment asks
  for the worker's next assignment (``?next=1``) as the reference worker does;
  ``--separate-pulls`` pulls each one with ``work/next`` instead;
- **settlement**: the scheduler's finalize transactions, read back from their receipts:
  gas per task (match + finalize) and tasks per finalize transaction;
- **request cost** (``--probe-queued``): CPU and wall time of one dispatch and one commit
  transition on the database alone, with 1 000 and 100 000 tasks waiting and
  ``--probe-in-flight`` replicas running (flat figures: no request scans the bag);
- **process ratios**: with ``--processes 1,2`` (PostgreSQL), 2 vs 1 API processes.

The load is a closed loop of ``--concurrency`` requests in flight. The machine is
described beside the figures; CPU per operation is reported beside wall rates because
shared machines are noisy. Nothing here is asserted (no wall-clock limits in tests).

With ``--market-orders 10000,100000`` it also measures the market at those book sizes
(bench/market_scale.py: signed orders published over HTTP, filtered queries), under
"market" in bench/scale.json; ``--workers ''`` runs the market section alone.

Usage: python bench/scale.py [--workers 100,1000] [--tasks 500] [--trust 1,4] [--append]
                             [--concurrency 32] [--seconds 120] [--postgres URL]
                             [--processes 1,2] [--postgres-only] [--probe-queued 1000,100000]
                             [--profile] [--separate-pulls]
                             [--market-orders 10000,100000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rawhttp

from e2e import machine

OUT = Path(__file__).resolve().parent / "scale.json"
POOL_PRICE = 100
CATEGORY = "XL"  # 36 000 s: no deadline interferes with a benchmark run


# ---------------------------------------------------------------- measurement


@dataclass
class Latencies:
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add(self, endpoint: str, seconds: float) -> None:
        self.samples[endpoint].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for endpoint, values in sorted(self.samples.items()):
            ordered = sorted(values)
            out[endpoint] = {
                "count": len(ordered),
                "p50_ms": round(1000 * statistics.median(ordered), 2),
                "p99_ms": round(1000 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 2),
            }
        return out


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# ---------------------------------------------------------------- simulated workers


@dataclass
class SimWorker:
    account: LocalAccount
    url: str
    token: str = ""
    pending: dict[str, Any] | None = None  # handed out with its last commitment's answer
    _key: Any = None  # its coincurve key, built once (the generator shares the cores)

    def sign(self, task_id: bytes, digest: bytes, chain_id: int, hub: str) -> Any:
        """Its signed contribution, as comptoir.chain.client.sign_contribution makes it."""
        from coincurve import PrivateKey

        from comptoir.chain import eip712
        from comptoir.chain.client import SignedContribution
        from comptoir.chain.types import result_hash, result_seal

        if self._key is None:
            self._key = PrivateKey(bytes(self.account.key))
        rh, seal = result_hash(task_id, digest), result_seal(self.address, task_id, digest)
        signed = eip712.sign_digest(
            eip712.contribution_digest(task_id, rh, seal, chain_id, hub), self._key
        )
        return SignedContribution(self.address, task_id, rh, seal, *eip712.compact(signed))

    @property
    def address(self) -> str:
        return str(self.account.address)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Load:
    """The simulated workers of one run, sharing one HTTP connection pool."""

    def __init__(
        self,
        urls: list[str],
        workers: int,
        concurrency: int,
        chain_id: int,
        hub: str,
        separate_pulls: bool = False,
    ) -> None:
        # each worker talks to one of the pool's API processes (round robin)
        self.workers = [SimWorker(Account.create(), urls[i % len(urls)]) for i in range(workers)]
        self.concurrency = concurrency
        self.chain_id, self.hub = chain_id, hub
        # False: a commitment asks for the next assignment (?next=1), as the reference
        # worker does; True: every assignment is pulled with its own work/next
        self.separate_pulls = separate_pulls
        self.latency = Latencies()
        # a lean keep-alive client: the load generator shares the cores with the scheduler
        self.http = rawhttp.Pool(concurrency)
        # verdict polls are held by the scheduler: connections of their own, as each
        # worker has (the pool caps them at 10 000 held)
        self.polls = rawhttp.Pool(max(concurrency, 1024))
        self.settling: set[asyncio.Task[None]] = set()
        self.counts: dict[str, int] = defaultdict(int)
        self.errors: list[str] = []
        self.tasks_revealed: set[str] = set()

    async def request(
        self,
        w: SimWorker,
        endpoint: str,
        method: str,
        path: str,
        pool: rawhttp.Pool | None = None,
        **kw: Any,
    ) -> rawhttp.Reply:
        for attempt in range(3):
            start = time.perf_counter()
            try:
                response = await (pool or self.http).request(method, w.url + path, **kw)
                break
            except rawhttp.TransportError:
                # the server closed an idle keep-alive connection as we reused it: the
                # reference worker retries too (every endpoint tolerates a repeat)
                self.counts["transport_retries"] += 1
                if attempt == 2:
                    raise
        self.latency.add(endpoint, time.perf_counter() - start)
        if response.status_code >= 500:
            self.counts["5xx"] += 1
        return response

    async def register(self, w: SimWorker) -> None:
        got = await self.request(
            w, "challenge", "GET", "/v1/workers/challenge", params={"address": w.address}
        )
        challenge = got.json()
        signed = w.account.sign_message(encode_defunct(text=challenge["message"]))
        answer = await self.request(
            w,
            "register",
            "POST",
            "/v1/workers/register",
            json={
                "address": w.address,
                "nonce": challenge["nonce"],
                "signature": "0x" + bytes(signed.signature).hex(),
                "capabilities": {"gpu": False, "cpus": 1, "memory": 1 << 30},
            },
        )
        answer.raise_for_status()
        w.token = answer.json()["token"]

    async def register_all(self) -> None:
        queue: asyncio.Queue[SimWorker] = asyncio.Queue()
        for w in self.workers:
            queue.put_nowait(w)

        async def drive() -> None:
            while not queue.empty():
                await self.register(queue.get_nowait())

        await asyncio.gather(*(drive() for _ in range(self.concurrency)))

    async def work_one(self, w: SimWorker, stop_at: float) -> bool:
        """One assignment of `w` (the one its last commitment's answer handed out, or one
        pulled): commit, then reveal (after its verdict when the commitment's answer says
        to wait). False when there was nothing to do."""
        work, w.pending = w.pending, None
        if work is None:
            got = await self.request(w, "next", "POST", "/v1/work/next", headers=w.headers())
            if got.status_code == 204:
                return False
            got.raise_for_status()
            work = got.json()
            self.counts["dispatched"] += 1
        task_id = bytes.fromhex(work["task_id"].removeprefix("0x"))
        digest = hashlib.sha256(task_id).digest()  # every honest replica agrees
        c = w.sign(task_id, digest, self.chain_id, self.hub)
        committed = await self.request(
            w,
            "commit",
            "POST",
            f"/v1/assignments/{work['id']}/commit",
            headers=w.headers(),
            params=None if self.separate_pulls else {"next": 1},
            json={
                "result_hash": "0x" + c.result_hash.hex(),
                "result_seal": "0x" + c.result_seal.hex(),
                "r": "0x" + c.r.hex(),
                "vs": "0x" + c.vs.hex(),
            },
        )
        committed.raise_for_status()
        self.counts["committed"] += 1
        view = committed.json()
        if view.get("next") is not None:  # the slot the commitment freed is taken again
            w.pending = view["next"]
            self.counts["dispatched"] += 1
            self.counts["handed_with_commit"] += 1
        action = view.get("action")  # reveal at once when it decided the task
        if action == "wait":
            # the verdict (the other replicas' commitments) as a long poll beside the
            # worker's work, as the reference worker's reveal loop waits for it: held
            # polls take no driver (their other replicas may be what those drivers run)
            settle = asyncio.create_task(self.settle(w, work, digest, stop_at))
            self.settling.add(settle)
            settle.add_done_callback(self.settling.discard)
            return True
        await self.reveal(w, work, digest, action)
        return True

    async def settle(
        self, w: SimWorker, work: dict[str, Any], digest: bytes, stop_at: float
    ) -> None:
        """Long-poll a committed replica's verdict, then reveal it."""
        action = "wait"
        while action == "wait" and time.monotonic() < stop_at:
            seen = await self.request(
                w,
                "assignment",
                "GET",
                f"/v1/assignments/{work['id']}",
                headers=w.headers(),
                params={"wait": 2},
                pool=self.polls,
            )
            action = seen.json().get("action")
        await self.reveal(w, work, digest, action)

    async def reveal(
        self, w: SimWorker, work: dict[str, Any], digest: bytes, action: str | None
    ) -> None:
        if action == "reveal":
            revealed = await self.request(
                w,
                "reveal",
                "POST",
                f"/v1/assignments/{work['id']}/reveal",
                headers=w.headers(),
                json={"digest": "0x" + digest.hex()},
            )
            if revealed.status_code != 200:
                self.counts[f"reveal_{revealed.status_code}"] += 1
                self.errors.append(f"reveal {revealed.status_code}: {revealed.text[:200]}")
                return
            self.counts["revealed"] += 1  # replicas: two or more per task above trust 1
            self.tasks_revealed.add(work["task_id"])

    async def work(self, seconds: float, enough: int) -> float:
        """Closed loop until `enough` reveals or `seconds`; returns the elapsed time."""
        idle: asyncio.Queue[SimWorker] = asyncio.Queue()
        for w in self.workers:
            idle.put_nowait(w)
        # the verdict polls' connections are opened before the clock starts: a worker
        # keeps its connection, and a server under load reads fresh ones late (seconds)
        await asyncio.gather(
            *(
                self.polls.request("GET", w.url + "/v1/assignments/0", headers=w.headers())
                for w in self.workers[: 2 * self.concurrency]
            )
        )
        start = time.monotonic()
        stop_at = start + seconds

        async def drive() -> None:
            while time.monotonic() < stop_at and len(self.tasks_revealed) < enough:
                w = await idle.get()
                try:
                    if not await self.work_one(w, stop_at):
                        await asyncio.sleep(0.02)  # nothing for it now
                    # the assignment its commitment was handed runs next, as the
                    # reference worker's slot runs it
                    while w.pending is not None and time.monotonic() < stop_at:
                        await self.work_one(w, stop_at)
                finally:
                    idle.put_nowait(w)

        await asyncio.gather(*(drive() for _ in range(self.concurrency)))
        elapsed = time.monotonic() - start
        for settle in list(self.settling):  # polls still held past the end
            settle.cancel()
        await asyncio.gather(*self.settling, return_exceptions=True)
        return elapsed

    async def aclose(self) -> None:
        await self.http.aclose()
        await self.polls.aclose()


# ---------------------------------------------------------------- the pool under test


@dataclass
class PoolUnderTest:
    workerpool: int
    owner: LocalAccount
    scheduler: subprocess.Popen[bytes]
    url: str


def start_scheduler(
    home: Path, stack: Any, owner: LocalAccount, pool: int, db_url: str, loops: bool = True
) -> PoolUnderTest:
    from comptoir.stack import free_port

    port = free_port()
    env = {
        **os.environ,
        "COMPTOIR_RPC_URL": stack.rpc_url,
        "COMPTOIR_DEPLOYMENT": str(stack.settings.devnet_dir / "deployment.json"),
        "COMPTOIR_SCHEDULER_KEY": owner.key.hex(),
        "COMPTOIR_SCHEDULER_WORKERPOOL": str(pool),
        "COMPTOIR_SCHEDULER_DB": db_url,
        "COMPTOIR_SCHEDULER_PORT": str(port),
        "COMPTOIR_SCHEDULER_POLL": "0.3",
        "COMPTOIR_SCHEDULER_REVEAL_WAIT": "30",
        "COMPTOIR_SCHEDULER_LEASE": "600",  # simulated workers send no heartbeats
        "COMPTOIR_SCHEDULER_LOOPS": "1" if loops else "0",  # extra processes: API only
    }
    log = open(home / f"scheduler-{pool}-{port}.log", "wb")  # noqa: SIM115 (kept by the child)
    proc = subprocess.Popen(
        [sys.executable, "-m", "comptoir.scheduler"], env=env, stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the scheduler exited at start; see {log.name}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=2.0).status_code == 200:
                return PoolUnderTest(pool, owner, proc, url)
        time.sleep(0.2)
    raise SystemExit(f"the scheduler did not answer within 60 s; see {log.name}")


def stop_scheduler(p: PoolUnderTest) -> None:
    p.scheduler.terminate()
    try:
        p.scheduler.wait(15)
    except subprocess.TimeoutExpired:
        p.scheduler.kill()


def start_sampler(home: Path, pid: int, label: str) -> tuple[subprocess.Popen[bytes], Path]:
    """py-spy (``pip install py-spy``) sampling every thread of the scheduler."""
    out = home / f"profile-{label}.txt"
    proc = subprocess.Popen(
        [
            shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--output",
            str(out),
            "--rate",
            "200",
            "--gil",  # only the thread holding the GIL: where the CPU goes, not waits
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return proc, out


def stop_sampler(proc: subprocess.Popen[bytes], out: Path, top: int = 25) -> list[str]:
    """Stop the sampler; the functions where the scheduler spent its samples (self time,
    and inclusive time for functions of comptoir)."""
    proc.send_signal(2)
    proc.wait(30)
    own: dict[str, int] = defaultdict(int)
    inclusive: dict[str, int] = defaultdict(int)
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        if frames and "(idle)" not in frames[-1] and "select" not in frames[-1]:
            total += n
            own[frames[-1]] += n
            for f in set(frames):
                if "comptoir" in f:
                    inclusive[f] += n
    lines = [
        f"self {100 * n / max(total, 1):5.1f}%  {f}"
        for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]
    ]
    lines += [
        f"incl {100 * n / max(total, 1):5.1f}%  {f}"
        for f, n in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    ]
    return lines


def fresh_database(base: str | None, name: str, home: Path) -> str:
    if base is None:
        return str(home / f"{name}.db")
    import sqlalchemy

    engine = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


async def wait_settled(url: str, tasks: int, seconds: float) -> float:
    start = time.monotonic()
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        while time.monotonic() - start < seconds:
            counts = (await http.get("/v1/status")).json().get("tasks", {})
            if counts.get("finalized", 0) + counts.get("settled", 0) >= tasks:
                break
            await asyncio.sleep(0.5)
    return time.monotonic() - start


async def settlement_gas(url: str, w3: Any, deal: Any) -> dict[str, Any]:
    hashes: set[str] = set()
    settled = 0
    async with httpx.AsyncClient(base_url=url, timeout=30.0) as http:
        for i in range(deal.volume):
            tid = "0x" + deal.deal.task_id(i).hex()
            view = (await http.get(f"/v1/tasks/{tid}")).json()
            if view.get("finalize_tx"):
                hashes.add(view["finalize_tx"])
                settled += 1
    gas = sum(int(w3.eth.get_transaction_receipt(h)["gasUsed"]) for h in hashes)
    return {"finalize_transactions": len(hashes), "finalize_gas": gas, "tasks_settled": settled}


# ---------------------------------------------------------------- one measured run


async def one_run(
    stack: Any,
    home: Path,
    *,
    workers: int,
    tasks: int,
    trust: int,
    concurrency: int,
    seconds: float,
    postgres: str | None,
    label: str,
    profile: bool = False,
    processes: int = 1,
    separate_pulls: bool = False,
) -> dict[str, Any]:
    from comptoir.chain.client import connect
    from comptoir.sdk import Comptoir, devnet_account
    from comptoir.stack import REQUESTER

    w3 = connect(stack.rpc_url)
    owner = Account.create()
    deployer = devnet_account(0)
    async with Comptoir(stack.settings, deployer) as root:
        w3.provider.make_request("anvil_setBalance", [owner.address, hex(10**22)])  # type: ignore[arg-type]
        chain = await root.chain()
        await root._call(chain.mint, owner.address, 10**12)
    async with Comptoir(stack.settings, owner) as manager:
        # worker stake 0 %: simulated workers need no escrow deposit
        pool = (await manager.deploy_pool(f"bench-{label}", 0, 10)).workerpool
        await manager.deposit(10**11)
        await manager.publish_pool_order(
            pool, POOL_PRICE, 10_000_000, category=CATEGORY, trust=trust
        )
    db_url = fresh_database(postgres, f"bench_scale_{label}", home)
    under = start_scheduler(home, stack, owner, pool, db_url)
    extra = [
        start_scheduler(home, stack, owner, pool, db_url, loops=False) for _ in range(processes - 1)
    ]
    urls = [under.url] + [e.url for e in extra]
    async with Comptoir(stack.settings, owner) as manager:
        # requesters only match pools whose scheduler answers at the endpoint on-chain
        await manager.advertise_pool(pool, under.url)
    load = Load(urls, workers, concurrency, int(w3.eth.chain_id), stack_hub(stack), separate_pulls)
    pids = [under.scheduler.pid] + [e.scheduler.pid for e in extra]

    def cpu() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    result: dict[str, Any] = {
        "database": "postgresql" if postgres else "sqlite",
        "workers": workers,
        "tasks": tasks,
        "trust": trust,
        "concurrency": concurrency,
        "api_processes": processes,
        # how a freed slot gets its next assignment
        "pulls": "separate work/next" if separate_pulls else "with the commitment (?next=1)",
    }
    try:
        sampler = start_sampler(home, under.scheduler.pid, f"{label}-register") if profile else None
        cpu0, own0, t0 = cpu(), time.process_time(), time.monotonic()
        await load.register_all()
        reg_wall = time.monotonic() - t0
        reg_cpu, reg_own = cpu() - cpu0, time.process_time() - own0
        if sampler is not None:
            result["registration_profile_top"] = stop_sampler(*sampler)
        result["registration"] = {
            "seconds": round(reg_wall, 2),
            "per_second": round(workers / reg_wall, 1),
            "scheduler_cpu_ms_each": round(1000 * reg_cpu / workers, 2),
            "load_generator_cpu_ms_each": round(1000 * reg_own / workers, 2),
            "load_average_1min_after": round(os.getloadavg()[0], 2),
        }
        print(f"  {workers} workers registered in {reg_wall:.1f} s")

        async with Comptoir(stack.settings, devnet_account(REQUESTER)) as requester:
            await requester.deposit(tasks * 200)
            match_start = time.monotonic()
            deals = await requester.request(
                "primes", volume=tasks, trust=trust, category=CATEGORY, workerpool=pool
            )
            match_s = time.monotonic() - match_start
        deal = deals[0]
        result["match_seconds"] = round(match_s, 2)
        await asyncio.sleep(1.0)  # the scheduler's watcher picks the deal up
        sampler = start_sampler(home, under.scheduler.pid, label) if profile else None
        cpu0, own0 = cpu(), time.process_time()
        elapsed = await load.work(seconds, tasks)
        work_cpu, work_own = cpu() - cpu0, time.process_time() - own0
        if sampler is not None:
            result["profile_top"] = stop_sampler(*sampler)
        done = len(load.tasks_revealed)
        result["dispatch"] = {
            "seconds": round(elapsed, 2),
            "replicas_dispatched": load.counts["dispatched"],
            "tasks_revealed": done,
            "replicas_revealed": load.counts["revealed"],
            "dispatches_per_second": round(load.counts["dispatched"] / elapsed, 1),
            "handed_with_commitment": load.counts["handed_with_commit"],
            "tasks_per_second": round(done / elapsed, 1),
            "commits_per_second": round(load.counts["committed"] / elapsed, 1),
            "scheduler_cpu_ms_per_task": round(1000 * work_cpu / max(done, 1), 2),
            # what the scheduler could do with its CPU alone: tasks per CPU second
            "tasks_per_scheduler_cpu_second": round(done / max(work_cpu, 1e-9), 1),
            "load_generator_cpu_ms_per_task": round(1000 * work_own / max(done, 1), 2),
            "load_average_1min_after": round(os.getloadavg()[0], 2),
            "server_errors": load.counts["5xx"],
            "transport_retries": load.counts["transport_retries"],
            "refused": {k: v for k, v in load.counts.items() if k.startswith("reveal_")},
            "first_refusals": load.errors[:5],
        }
        print(
            f"  dispatch: {load.counts['dispatched']} replicas in {elapsed:.1f} s "
            f"({load.counts['dispatched'] / elapsed:.0f}/s), "
            f"{1000 * work_cpu / max(done, 1):.1f} ms scheduler CPU per task"
        )
        result["latency"] = load.latency.summary()
        settle_s = await wait_settled(under.url, tasks, 120.0)
        receipt = w3.eth.get_transaction_receipt(deal_tx(w3, deal, stack_hub(stack)))
        gas = await settlement_gas(under.url, w3, deal)
        # the match is shared by the whole bag; finalize gas by the tasks it settled
        settled = max(gas["tasks_settled"], 1)
        per_task = int(receipt["gasUsed"]) / tasks + gas["finalize_gas"] / settled
        result["settlement"] = {
            "seconds_after_dispatch": round(settle_s, 1),
            **gas,
            "match_gas": int(receipt["gasUsed"]),
            "tasks_per_finalize": round(settled / max(gas["finalize_transactions"], 1), 1),
            "gas_per_task": round(per_task),
        }
        print(f"  settlement: {gas['finalize_transactions']} txs, {per_task:.0f} gas/task")
    finally:
        await load.aclose()
        if under.scheduler.poll() is not None:
            print(f"  the scheduler exited with {under.scheduler.returncode} during the run")
        for p in [under, *extra]:
            stop_scheduler(p)
    return result


# ---------------------------------------------------------------- per-request cost probe


def _probe_deal(scheduler: str, volume: int, trust: int) -> Any:
    """A deal as the watcher records it (no chain: the probe measures the database side)."""
    from comptoir.chain import events as ev
    from comptoir.chain.client import AssetInfo
    from comptoir.chain.types import ZERO_ADDRESS, Deal
    from comptoir.scheduler import state

    deal = Deal(
        request_hash=os.urandom(32),
        first_task=0,
        volume=volume,
        requester=str(Account.create().address),
        app_owner=ZERO_ADDRESS,
        app_price=1,
        dataset_owner=ZERO_ADDRESS,
        dataset_price=0,
        scheduler=scheduler,
        workerpool_price=POOL_PRICE,
        scheduler_stake=0,
        worker_stake=0,
        scheduler_reward_ratio=10,
        trust=trust,
        contribution_deadline=2**40,
        final_deadline=2**41,
        callback=ZERO_ADDRESS,
    )
    zero = b"\x00" * 32
    created = ev.DealCreated(
        deal_id=deal.deal_id,
        workerpool=1,
        requester=deal.requester,
        deal=deal,
        app=1,
        dataset=0,
        category=0,
        tag=zero,
        beneficiary=ZERO_ADDRESS,
        params="",
        app_order_hash=zero,
        dataset_order_hash=zero,
        workerpool_order_hash=zero,
        block_number=1,
    )
    app = AssetInfo(1, 1, ZERO_ADDRESS, "app", "loc", b"\xaa" * 32, 2, zero)
    return deal, state.DealInfo(created, 36_000, app, None)


def probe_request_cost(
    db_url: str, *, queued: int, in_flight: int, trust: int, samples: int
) -> dict[str, Any]:
    """CPU and wall time of the scheduler's dispatch and commit transitions (the state
    functions its API calls, on a real database) with `queued` tasks waiting and
    `in_flight` replicas already running: what one request costs, without HTTP. CPU is
    this process's (on PostgreSQL the server's own work shows in the wall time)."""
    from comptoir.chain import eip712
    from comptoir.chain.client import SignedContribution, sign_contribution
    from comptoir.chain.deploy import Deployment
    from comptoir.scheduler import state, trustpolicy
    from comptoir.scheduler.db import Database
    from comptoir.scheduler.settings import SchedulerSettings

    scheduler = Account.create()
    hub = "0x" + "11" * 20
    deployment = Deployment(31337, hub, hub, hub, hub, hub, 1)
    settings = SchedulerSettings(
        rpc_url="http://127.0.0.1:1",
        deployment=deployment,
        private_key=scheduler.key.hex(),
        workerpool=1,
    )
    db = Database(db_url)
    db.tx(lambda c: trustpolicy.store(c, settings.lone_score, settings.audit_rate))
    # `queued` tasks still waiting once the replicas in flight are out
    _deal, info = _probe_deal(str(scheduler.address), queued + in_flight, trust)
    db.tx(lambda c: state.add_deal(c, info, time.time()))
    keys = [Account.create() for _ in range(in_flight + samples)]
    now = time.time()

    def register_all(c: Any) -> None:
        for k in keys:
            state.register_worker(c, str(k.address), False, 1, 1 << 30, 0, now, 10**18)

    db.tx(register_all)

    def auth(worker: str, task: bytes) -> bytes:
        return eip712.sign_authorization(scheduler, worker, task, 31337, hub)

    def pull(k: LocalAccount) -> dict[str, Any] | None:
        return db.tx(lambda c: state.next_work(c, settings, str(k.address), 0, time.time(), auth))

    for k in keys[:in_flight]:  # replicas in flight before the measured requests
        pull(k)
    measured = keys[in_flight:]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    got = [pull(k) for k in measured]
    next_cpu, next_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    contributions = []
    for k, w in zip(measured, got, strict=True):
        if w is None:
            continue
        task = bytes.fromhex(w["task_id"][2:])
        c = sign_contribution(k, task, hashlib.sha256(task).digest(), 31337, hub)
        contributions.append((w["id"], str(k.address), c))
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for aid, address, c in contributions:
        signed = SignedContribution(address, c.task_id, c.result_hash, c.result_seal, c.r, c.vs)
        db.tx(lambda conn, a=aid, w=address, s=signed: state.commit(conn, a, w, s, time.time()))
    commit_cpu, commit_wall = time.process_time() - cpu0, time.perf_counter() - wall0
    db.close()
    n, m = max(len(got), 1), max(len(contributions), 1)
    return {
        "queued": queued,
        "in_flight": in_flight,
        "trust": trust,
        "dispatched": sum(1 for w in got if w is not None),
        "next_work_cpu_ms": round(1000 * next_cpu / n, 3),
        "next_work_wall_ms": round(1000 * next_wall / n, 3),
        "commit_cpu_ms": round(1000 * commit_cpu / m, 3),
        "commit_wall_ms": round(1000 * commit_wall / m, 3),
    }


def process_ratios(runs: list[dict[str, Any]]) -> list[str]:
    """2 vs 1 API processes on the same database, trust and worker count: the ratio of
    dispatch rates and of scheduler CPU per task (all processes together)."""
    by_key: dict[tuple[Any, ...], dict[int, dict[str, Any]]] = defaultdict(dict)
    for run in runs:
        key = (run["database"], run["trust"], run["workers"])
        by_key[key][int(run["api_processes"])] = run
    out = []
    for (database, trust, workers), per in sorted(by_key.items()):
        if 1 not in per or 2 not in per:
            continue
        one, two = per[1]["dispatch"], per[2]["dispatch"]
        rate = two["dispatches_per_second"] / max(one["dispatches_per_second"], 1e-9)
        cpu = two["scheduler_cpu_ms_per_task"] / max(one["scheduler_cpu_ms_per_task"], 1e-9)
        out.append(
            f"{database}, trust {trust}, {workers} workers: 2 vs 1 API processes "
            f"dispatch x{rate:.2f}, scheduler CPU per task x{cpu:.2f}"
        )
    return out


def stack_hub(stack: Any) -> str:
    from comptoir.chain.deploy import Deployment

    return Deployment.load(stack.settings.devnet_dir / "deployment.json").hub


def deal_tx(w3: Any, deal: Any, hub: str) -> str:
    """The match transaction: the requester's hub transaction in the deal's block."""
    block = w3.eth.get_block(deal.block, full_transactions=True)
    for tx in block["transactions"]:
        if str(tx["to"]).lower() == hub.lower() and tx["from"] == deal.deal.requester:
            return "0x" + bytes(tx["hash"]).hex()
    raise SystemExit(f"no match transaction found in block {deal.block}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="100,1000", help="simulated worker counts")
    parser.add_argument("--tasks", type=int, default=500, help="tasks in each run's deal")
    parser.add_argument("--trust", default="1,4", help="trust levels to measure")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=120.0, help="cap per dispatch phase")
    parser.add_argument("--postgres", default=None, help="also run on this PostgreSQL URL")
    parser.add_argument(
        "--postgres-only", action="store_true", help="with --postgres: skip the SQLite runs"
    )
    parser.add_argument("--profile", action="store_true", help="sample the scheduler (py-spy)")
    parser.add_argument(
        "--processes", default="1", help="API processes per pool, e.g. 1,2 (PostgreSQL only)"
    )
    parser.add_argument(
        "--probe-queued",
        default="1000,100000",
        help="bag sizes at which one request's database cost is probed ('' to skip)",
    )
    parser.add_argument(
        "--probe-in-flight", type=int, default=1000, help="replicas running during the probe"
    )
    parser.add_argument(
        "--market-orders",
        default="",
        help="also the market section (bench/market_scale.py) at these book sizes, e.g. 10000",
    )
    parser.add_argument(
        "--separate-pulls",
        action="store_true",
        help="pull every assignment with work/next (not with the commitment's ?next=1)",
    )
    parser.add_argument("--output", type=Path, default=OUT)
    parser.add_argument(
        "--append",
        action="store_true",
        help="add this invocation's runs and probes to those already in --output",
    )
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="comptoir-scale-"))
    os.environ["COMPTOIR_HOME"] = str(home)
    os.environ["COMPTOIR_DEVNET_PORT"] = "0"
    from comptoir import stack as stack_mod
    from comptoir.chain.deploy import Deployment
    from comptoir.config import load_settings

    settings = load_settings()
    databases: list[str | None] = [] if args.postgres_only else [None]
    databases += [args.postgres] if args.postgres else []
    command = "python bench/scale.py " + " ".join(sys.argv[1:])
    earlier: dict[str, Any] = {}
    if args.output.exists():
        earlier = json.loads(args.output.read_text())
    report: dict[str, Any] = {
        "description": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": {**machine(), "load_average_at_start": list(os.getloadavg())},
        "commands": [*earlier.get("commands", []), command] if args.append else [command],
        "runs": list(earlier.get("runs", [])) if args.append else [],
        "request_cost": list(earlier.get("request_cost", [])) if args.append else [],
    }
    if "market" in earlier and not args.market_orders:
        report["market"] = earlier["market"]  # measured by another invocation: kept
    started = time.monotonic()
    queued_sizes = [int(q) for q in args.probe_queued.split(",") if q]
    for n, (db, trust, queued) in enumerate(
        (db, int(t), q) for db in databases for t in args.trust.split(",") for q in queued_sizes
    ):
        url = fresh_database(db, f"bench_probe_{n}_{int(time.time())}", home)
        cost = {
            "database": "postgresql" if db else "sqlite",
            **probe_request_cost(
                url, queued=queued, in_flight=args.probe_in_flight, trust=trust, samples=200
            ),
        }
        report["request_cost"].append(cost)
        print(
            f"probe: {cost['database']}, trust {trust}, {queued} queued, "
            f"{args.probe_in_flight} in flight: next_work {cost['next_work_cpu_ms']} ms CPU, "
            f"commit {cost['commit_cpu_ms']} ms CPU"
        )
        args.output.write_text(json.dumps(report, indent=2) + "\n")
    with stack_mod.running(settings, workers=1, notify=print) as stack:
        combos = [
            (db, trust, workers, procs)
            for db in databases
            for trust in (int(t) for t in args.trust.split(","))
            for workers in (int(w) for w in args.workers.split(",") if w)
            for procs in (int(p) for p in args.processes.split(","))
            if procs == 1 or db is not None  # several processes need PostgreSQL
        ]
        for n, (db, trust, workers, procs) in enumerate(combos, 1):
            name = "postgresql" if db else "sqlite"
            print(
                f"run {n}: {name}, trust {trust}, {workers} workers, {args.tasks} tasks, "
                f"{procs} API process(es)"
            )
            run = asyncio.run(
                one_run(
                    stack,
                    home,
                    workers=workers,
                    tasks=args.tasks,
                    trust=trust,
                    concurrency=args.concurrency,
                    seconds=args.seconds,
                    postgres=db,
                    label=f"{n}_{int(time.time())}",
                    profile=args.profile,
                    processes=procs,
                    separate_pulls=args.separate_pulls,
                )
            )
            report["runs"].append(run)
            args.output.write_text(json.dumps(report, indent=2) + "\n")
        if args.market_orders:
            from market_scale import run_market_bench

            report["market"] = run_market_bench(
                stack.rpc_url,
                Deployment.load(stack.settings.devnet_dir / "deployment.json"),
                home,
                [int(n) for n in args.market_orders.split(",")],
                args.postgres,
            )
            args.output.write_text(json.dumps(report, indent=2) + "\n")
    report["total_seconds"] = round(time.monotonic() - started, 1)
    report["load_average_at_end"] = list(os.getloadavg())
    report["process_ratios"] = process_ratios(report["runs"])
    for line in report["process_ratios"]:
        print("  ", line)
    for run in report["runs"]:
        for line in run.get("profile_top", []):
            print("  ", line)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
