"""The local stack: everything Comptoir needs on one machine, started and stopped as one.

``up(settings, workers=N)`` starts, each as its own process with its log under
``<home>/devnet/logs`` and its pid recorded in ``<home>/devnet/stack.json``:

1. the chain (:mod:`comptoir.devnet`: anvil, protocol deployed, test accounts funded);
2. the blob storage server with the dataset key service (chain-backed key release);
3. the market (order book) API;
4. one workerpool: registered on-chain, its orders published in every category, its
   scheduler running (``python -m comptoir.scheduler``);
5. N workers (``python -m comptoir.worker``), each with its own funded account;

and registers a sample app (``primes``, see :func:`comptoir.sdk.init_app`) with an app
order, so ``comptoir run primes`` works at once. ``down`` stops it all (SIGTERM, then
SIGKILL after a grace period) and the chain last, so its state is dumped; ``status``
reports each service. The SDK finds the services through the record
(:class:`comptoir.sdk.Config`).

Test accounts (anvil's mnemonic): 0 deployer, 1 requester, 2 app developer, 3 dataset
owner, 4 scheduler, 5-8 then 10+ workers (9 is left to tests as a stranger).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from eth_account.signers.local import LocalAccount
from web3.types import RPCEndpoint

from comptoir import devnet
from comptoir.chain.client import ChainClient
from comptoir.config import Settings
from comptoir.exceptions import ComptoirError, DevnetError

STACK_FILE = "stack.json"
REQUESTER, APP_OWNER, DATASET_OWNER, SCHEDULER = 1, 2, 3, 4
WORKER_SLOTS = (5, 6, 7, 8)  # then 10, 11, ...
POOL_NAME = "devnet-pool"
POOL_PRICE = 100
APP_PRICE = 5
WORKER_STAKE_RATIO = 10
SCHEDULER_REWARD_RATIO = 10
SCHEDULER_DEPOSIT = 10**7  # the scheduler stakes 30 % of the pool price per task
WORKER_DEPOSIT = 100_000
SAMPLE_APP = "primes"
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
FAST_ENV = {  # quick loops: a local stack is for trying things out and for tests
    "COMPTOIR_SCHEDULER_POLL": "0.1",
    "COMPTOIR_SCHEDULER_REVEAL_WAIT": "5",
    "COMPTOIR_SCHEDULER_LEASE": "15",
    "COMPTOIR_SCHEDULER_RECONCILE": "10",
    "COMPTOIR_SCHEDULER_GRACE": "60",
    "COMPTOIR_WORKER_POLL": "0.3",
    "COMPTOIR_WORKER_HEARTBEAT": "2",
    "COMPTOIR_WORKER_GPU": "0",
    "COMPTOIR_WORKER_MEMORY_LIMIT": str(256 << 20),
    "COMPTOIR_WORKER_OUTPUT_LIMIT": str(16 << 20),
}


def worker_account_index(i: int) -> int:
    return WORKER_SLOTS[i] if i < len(WORKER_SLOTS) else 10 + i - len(WORKER_SLOTS)


def account(index: int) -> LocalAccount:
    from comptoir.sdk.wallet import devnet_account

    return devnet_account(index)


# ---------------------------------------------------------------- records


@dataclass
class Service:
    name: str
    pid: int
    create_time: float
    log: str
    url: str | None = None
    address: str | None = None  # the account a scheduler or worker signs with
    state: str | None = None  # its supervisor's state file (comptoir.supervise)

    @property
    def running(self) -> bool:
        try:
            proc = psutil.Process(self.pid)
            # same pid and same start time: not a recycled pid
            return (
                abs(proc.create_time() - self.create_time) < 1.0
                and proc.status() != psutil.STATUS_ZOMBIE
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False


@dataclass
class Stack:
    settings: Settings
    rpc_url: str = ""
    urls: dict[str, str] = field(default_factory=dict)
    schedulers: dict[int, str] = field(default_factory=dict)
    workerpool: int = 0
    app: int = 0
    app_checksum: str = ""
    services: list[Service] = field(default_factory=list)

    @property
    def path(self) -> Path:
        return self.settings.devnet_dir / STACK_FILE

    @property
    def logs(self) -> Path:
        return self.settings.devnet_dir / "logs"

    def workers(self) -> list[Service]:
        return [s for s in self.services if s.name.startswith("worker-")]

    def service(self, name: str) -> Service | None:
        return next((s for s in self.services if s.name == name), None)

    def save(self) -> None:
        doc = {
            "rpc_url": self.rpc_url,
            "urls": self.urls,
            "schedulers": {str(k): v for k, v in self.schedulers.items()},
            "workerpool": self.workerpool,
            "app": self.app,
            "app_checksum": self.app_checksum,
            "services": [s.__dict__ for s in self.services],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        os.replace(tmp, self.path)

    @classmethod
    def load(cls, settings: Settings) -> Stack:
        stack = cls(settings)
        try:
            doc = json.loads(stack.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return stack
        stack.rpc_url = str(doc.get("rpc_url", ""))
        stack.urls = dict(doc.get("urls", {}))
        stack.schedulers = {int(k): str(v) for k, v in doc.get("schedulers", {}).items()}
        stack.workerpool = int(doc.get("workerpool", 0))
        stack.app = int(doc.get("app", 0))
        stack.app_checksum = str(doc.get("app_checksum", ""))
        stack.services = [Service(**s) for s in doc.get("services", [])]
        return stack


# ---------------------------------------------------------------- processes


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    env.update(PYTHONUNBUFFERED="1", **FAST_ENV)
    for key in ("COMPTOIR_ANVIL",):  # tool locations pass through
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


def _spawn(stack: Stack, name: str, args: list[str], env: dict[str, str], **info: Any) -> Service:
    stack.logs.mkdir(parents=True, exist_ok=True)
    log = stack.logs / f"{name}.log"
    state = stack.logs / f"{name}.supervisor.json"
    state.unlink(missing_ok=True)
    # under a supervisor that restarts it when it dies (comptoir.supervise)
    supervised = ["-m", "comptoir.supervise", "--name", name, "--state", str(state), "--"]
    with open(log, "ab") as fh:
        # own session: the services outlive the command that started them
        proc = subprocess.Popen(
            [sys.executable, *supervised, *args],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=_child_env(env),
            start_new_session=True,
        )
    created = psutil.Process(proc.pid).create_time()
    service = Service(name, proc.pid, created, str(log), state=str(state), **info)
    stack.services.append(service)
    stack.save()
    return service


def _wait_http(service: Service, url: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.running:
            raise DevnetError(
                f"The {service.name} service exited at start; see {service.log}: "
                + log_tail(service)
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise DevnetError(
        f"The {service.name} service did not answer within {timeout:.0f} s; see {service.log}."
    )


def log_tail(service: Service, lines: int = 1) -> str:
    """The last `lines` lines of the service's log ("no output" when there are none)."""
    try:
        found = Path(service.log).read_text(errors="replace").strip().splitlines()
    except FileNotFoundError:
        return "no output"
    except OSError as e:
        return f"log unreadable: {e}"
    return "\n".join(found[-lines:]) if found else "no output"


def _terminate(service: Service, timeout: float = STOP_TIMEOUT) -> None:
    if not service.running:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(service.pid, signal.SIGTERM)
    try:
        psutil.Process(service.pid).wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.pid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            psutil.Process(service.pid).wait(5)
    except psutil.NoSuchProcess:
        pass


# ---------------------------------------------------------------- lifecycle


Notify = Callable[[str], None]


def up(
    settings: Settings,
    workers: int = 3,
    port: int | None = None,
    notify: Notify | None = None,
) -> Stack:
    """Start the chain and every service (stopping what a previous stack left running)."""
    say = notify or (lambda message: None)
    if workers < 1:
        raise DevnetError("The local stack needs at least one worker (--workers 1 or more).")
    previous = Stack.load(settings)
    for service in previous.services:
        _terminate(service)
    say("Starting the chain...")
    net = devnet.up(settings, port=port)
    stack = Stack(settings, rpc_url=net.rpc_url)
    stack.workerpool, stack.app, stack.app_checksum = (
        previous.workerpool,
        previous.app,
        previous.app_checksum,
    )
    stack.save()
    try:
        _start(stack, net, workers, say)
    except BaseException:
        down(settings, chain=False)
        raise
    return stack


def _start(stack: Stack, net: devnet.Devnet, workers: int, say: Notify) -> None:
    deployment_file = str(stack.settings.devnet_dir / "deployment.json")
    chain_env = {"COMPTOIR_RPC_URL": net.rpc_url, "COMPTOIR_DEPLOYMENT": deployment_file}
    data = stack.settings.devnet_dir / "stack"
    data.mkdir(parents=True, exist_ok=True)
    host = stack.settings.devnet_host  # listened on and advertised: others reach it there
    listen = ["--host", host]

    say("Starting storage and the key service...")
    port = free_port(host)
    storage = _spawn(
        stack,
        "storage",
        ["-m", "comptoir.stack", "storage", *listen, "--port", str(port), "--root", str(data)],
        chain_env,
        url=f"http://{host}:{port}",
    )
    say("Starting the market API...")
    mport = free_port(host)
    market = _spawn(
        stack,
        "market",
        [
            "-m",
            "comptoir.stack",
            "market",
            *listen,
            "--port",
            str(mport),
            "--db",
            str(data / "market.db"),
            "--stack-file",
            str(stack.path),
        ],
        chain_env,
        url=f"http://{host}:{mport}",
    )
    assert storage.url and market.url
    _wait_http(storage, f"{storage.url}/healthz")
    _wait_http(market, f"{market.url}/v1/info")
    stack.urls = {
        "storage": storage.url,
        "keys": storage.url,
        "market": market.url,
        "explorer": f"{market.url}/explorer/",
    }
    stack.save()

    say("Registering the workerpool and the sample app...")
    pool, app = _provision(stack, net, workers)
    stack.workerpool, stack.app = pool, app
    stack.save()

    say("Starting the scheduler...")
    sport = free_port(host)
    scheduler = _spawn(
        stack,
        "scheduler",
        ["-m", "comptoir.scheduler"],
        {
            **chain_env,
            "COMPTOIR_STORAGE_URL": storage.url,
            "COMPTOIR_SCHEDULER_KEY": account(SCHEDULER).key.hex(),
            "COMPTOIR_SCHEDULER_WORKERPOOL": str(pool),
            "COMPTOIR_SCHEDULER_DB": str(data / f"scheduler-{pool}.db"),
            "COMPTOIR_SCHEDULER_HOST": host,
            "COMPTOIR_SCHEDULER_PORT": str(sport),
        },
        url=f"http://{host}:{sport}",
        address=account(SCHEDULER).address,
    )
    assert scheduler.url
    _wait_http(scheduler, f"{scheduler.url}/healthz")
    stack.schedulers = {pool: scheduler.url}
    stack.save()
    # the pool's endpoint on-chain: requesters and workers elsewhere find it by pool id
    pool_owner = net.client(account(SCHEDULER))
    if pool_owner.workerpool_endpoint(pool) != scheduler.url:
        pool_owner.set_location(pool, scheduler.url)

    say(f"Starting {workers} worker(s)...")
    started = [_start_worker(stack, i, chain_env) for i in range(workers)]
    _wait_workers(stack, scheduler, started)


def _start_worker(stack: Stack, i: int, chain_env: dict[str, str]) -> Service:
    acct = account(worker_account_index(i))
    scheduler = stack.service("scheduler")
    assert scheduler is not None and scheduler.url and stack.urls.get("storage")
    work = stack.settings.devnet_dir / "workers" / f"worker-{i}"
    return _spawn(
        stack,
        f"worker-{i}",
        ["-m", "comptoir.worker"],
        {
            **chain_env,
            "COMPTOIR_WORKER_KEY": acct.key.hex(),
            "COMPTOIR_SCHEDULER_URL": scheduler.url,
            "COMPTOIR_STORAGE_URL": stack.urls["storage"],
            "COMPTOIR_WORKER_DIR": str(work),
        },
        address=acct.address,
    )


def _wait_workers(stack: Stack, scheduler: Service, started: list[Service]) -> None:
    """Until every worker registered with the scheduler (so the first request is served)."""
    want = {s.address for s in started}
    deadline = time.monotonic() + START_TIMEOUT + 5 * len(started)
    while time.monotonic() < deadline:
        for s in started:
            if not s.running:
                raise DevnetError(f"Worker {s.name} exited at start; see {s.log}: {log_tail(s)}")
        with contextlib.suppress(httpx.HTTPError, ValueError):
            listed = httpx.get(f"{scheduler.url}/v1/workers", timeout=2.0).json()
            online = {w["address"] for w in listed if w.get("online")}
            if want <= online:
                return
        time.sleep(0.2)
    raise DevnetError(
        f"Not every worker registered with the scheduler within the time allowed; see the "
        f"logs in {stack.logs}."
    )


def _fund_worker(net: devnet.Devnet, i: int) -> ChainClient:
    """Worker `i`'s chain client; accounts beyond the devnet's funded ten get gas money
    and test tokens first."""
    index = worker_account_index(i)
    client = net.client(account(index))
    if index >= devnet.N_ACCOUNTS and client.token_balance() == 0:
        net.w3.provider.make_request(RPCEndpoint("anvil_setBalance"), [client.address, hex(10**22)])
        net.client(0).mint(client.address, devnet.TEST_TOKENS)
    return client


def _provision(stack: Stack, net: devnet.Devnet, workers: int) -> tuple[int, int]:
    """Workerpool, its orders, worker accounts, the sample app and its order (idempotent
    across restarts: assets recorded in the stack file and still on-chain are kept)."""
    from comptoir.sdk import ComptoirSync, Config, build_app, init_app

    config = Config.load(
        stack.settings,
        env={},
        market_url=stack.urls["market"],
        storage_url=stack.urls["storage"],
    )
    for i in range(workers):
        worker = _fund_worker(net, i)
        if worker.balance() < WORKER_DEPOSIT:
            worker.deposit(WORKER_DEPOSIT)

    with ComptoirSync(config, account(SCHEDULER)) as pool_owner:
        chain = net.client(account(SCHEDULER))
        pool = stack.workerpool
        if not (pool and chain.asset(pool).kind == 3 and chain.owner_of(pool) == chain.address):
            pool = pool_owner.deploy_pool(
                POOL_NAME, WORKER_STAKE_RATIO, SCHEDULER_REWARD_RATIO
            ).workerpool
        if chain.balance() < SCHEDULER_DEPOSIT // 2:
            chain.deposit(SCHEDULER_DEPOSIT)
        # the trust a pool of `workers` fresh workers reaches: 2**workers (weight 2 each)
        trust = min(2**workers, 1000)
        listed = set()
        for o in pool_owner.orderbook("workerpool", workerpool=pool, min_remaining=1000):
            if o.order.trust > trust:  # fewer workers than last time: unreachable trust
                pool_owner.market.cancel(
                    o.hash, account(SCHEDULER), chain.chain_id, chain.deployment.hub
                )
            else:
                listed.add((o.order.category, o.order.trust))
        for category in range(chain.category_count()):
            if (category, trust) not in listed:  # a restart keeps the orders still listed
                pool_owner.publish_pool_order(
                    pool, POOL_PRICE, 1_000_000, category=category, trust=trust
                )

    with ComptoirSync(config, account(APP_OWNER)) as dev:
        chain = net.client(account(APP_OWNER))
        source = stack.settings.devnet_dir / "stack" / "sample-app"
        if not source.exists():
            init_app(source, SAMPLE_APP)
        built = build_app(source, stack.settings.devnet_dir / "stack" / "sample-app.tgz")
        app = stack.app
        fresh = not (
            app
            and stack.app_checksum == built.checksum
            and chain.asset(app).kind == 1
            and chain.owner_of(app) == chain.address
        )
        if fresh:
            app = dev.deploy_app(built.path, SAMPLE_APP).app
        else:
            dev.upload_package(app, built.path)  # the storage folder may have been wiped
        stack.app_checksum = built.checksum
        if not dev.orderbook("app", app=app, min_remaining=1000):
            dev.publish_app_order(app, APP_PRICE, 1_000_000)
    return pool, app


@contextlib.contextmanager
def running(
    settings: Settings, workers: int = 3, port: int | None = 0, notify: Notify | None = None
) -> Iterator[Stack]:
    """A stack for the duration of a ``with`` block (scripts, tests, benchmarks); it is
    stopped however the block ends."""
    try:
        yield up(settings, workers, port=port, notify=notify)
    finally:
        down(settings)


def down(settings: Settings, chain: bool = True) -> list[str]:
    """Stop the workers, the scheduler, the market, storage, then the chain; the names of
    what was running."""
    stack = Stack.load(settings)
    stopped = []
    # workers first: they release what they hold with the scheduler still up
    order = sorted(stack.services, key=lambda s: (not s.name.startswith("worker-"), s.name))
    for service in order:
        if service.running:
            _terminate(service)
            stopped.append(service.name)
    stack.services = []
    if stack.path.exists():
        stack.save()
    if chain and devnet.down(settings):
        stopped.append("chain")
    return stopped


@dataclass(frozen=True)
class ServiceState:
    name: str
    running: bool
    pid: int
    url: str | None
    address: str | None
    log: str
    restarts: int = 0  # times its supervisor restarted it
    supervisor: str | None = None  # running, backoff (restarting), failed, stopped
    note: str = ""  # why it last died, what the supervisor does about it


def status(settings: Settings) -> list[ServiceState]:
    """Each recorded service, whether it runs and how often it was restarted (the chain:
    devnet.status)."""
    from comptoir.supervise import SupervisorState

    out = []
    for s in Stack.load(settings).services:
        sup = SupervisorState.load(s.state) if s.state else None
        running = s.running and (sup is None or sup.state == "running")
        out.append(
            ServiceState(
                s.name,
                running,
                s.pid,
                s.url,
                s.address,
                s.log,
                restarts=sup.restarts if sup else 0,
                supervisor=sup.state if sup else None,
                note=sup.message if sup else "",
            )
        )
    return out


def add_workers(settings: Settings, count: int) -> list[Service]:
    """Start `count` more workers on a running stack."""
    stack = Stack.load(settings)
    scheduler = stack.service("scheduler")
    if scheduler is None or not scheduler.running:
        raise DevnetError(
            "No local stack is running; start one with 'comptoir devnet up --workers N'."
        )
    info = devnet._read_info(settings) or {}
    chain_env = {
        "COMPTOIR_RPC_URL": str(info.get("rpc_url", stack.rpc_url)),
        "COMPTOIR_DEPLOYMENT": str(settings.devnet_dir / "deployment.json"),
    }
    first = len(stack.workers())
    net = devnet.up(settings)
    for i in range(first, first + count):
        _fund_worker(net, i)
    started = [_start_worker(stack, i, chain_env) for i in range(first, first + count)]
    _wait_workers(stack, scheduler, started)
    return started


# ---------------------------------------------------------------- service entry points


OWNER_SCAN_EVERY_S = 10.0  # at most one scan of the registered datasets per this


def dataset_owner_resolver(
    client: ChainClient,
    scan_every_s: float = OWNER_SCAN_EVERY_S,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[str], str | None]:
    """checksum -> the on-chain owner of the newest dataset registered with it. Anyone may
    ask (a key registration signed by any fresh key gets this far): the registered datasets
    are scanned at most every `scan_every_s`, not once per request; the owner is read each
    time (one call: a transfer is seen at once)."""
    import threading

    from comptoir.sdk import chainscan

    lock = threading.Lock()
    known: dict[str, int] = {}
    scanned = [-float("inf")]

    def resolve(checksum: str) -> str | None:
        key = checksum.lower().removeprefix("0x")
        with lock:
            if key not in known and clock() - scanned[0] >= scan_every_s:
                scanned[0] = clock()
                known.clear()
                for e in chainscan.registered_assets(client, 2):  # oldest first: newest wins
                    known[e.checksum.hex()] = e.asset
            asset = known.get(key)
        return None if asset is None else client.owner_of(asset)

    return resolve


def serve_storage(root: Path, port: int, host: str = "127.0.0.1") -> None:
    """Blob server + dataset key service; keys released per the chain (keypolicy)."""
    import asyncio

    import uvicorn

    from comptoir.chain.client import ChainClient
    from comptoir.config import load_settings
    from comptoir.httpguard import sane_recursion_limit
    from comptoir.scheduler.keypolicy import chain_deal_check, chain_upload_check
    from comptoir.storage import LocalBlobStore
    from comptoir.storage.grants import Network, SpentGrants, UploadGate
    from comptoir.storage.keys import KeyVault, NonceBook, SignedNoncePolicy, create_key_router
    from comptoir.storage.quota import StorageLimits, UploadLedger
    from comptoir.storage.server import create_storage_app

    client = ChainClient.from_settings(load_settings())
    limits = StorageLimits.from_env(os.environ)

    dataset_owner = dataset_owner_resolver(client)

    async def owner_of(checksum: str) -> str | None:
        return await asyncio.to_thread(dataset_owner, checksum)

    blobs = LocalBlobStore(root / "blobs", fsync=False)
    (root / "spool").mkdir(parents=True, exist_ok=True)  # on the disk the cap watches
    # strangers upload only with a grant the chain backs, within quotas (grants.py)
    gate = UploadGate(
        Network(client.chain_id, client.deployment.hub), chain_upload_check(client), SpentGrants()
    )
    app = create_storage_app(
        blobs,
        max_upload_bytes=limits.max_blob_bytes,
        spool_dir=root / "spool",
        gate=gate,
        ledger=UploadLedger(limits, root / "uploads.db", disk=root),
    )
    policy = SignedNoncePolicy(NonceBook(), chain_deal_check(client))
    app.include_router(
        create_key_router(
            KeyVault(root / "keys.db"), policy, nonces=policy.nonces, owner_of=owner_of
        )
    )
    sane_recursion_limit()  # web3 imports raise it past what the C stack holds
    uvicorn.run(app, host=host, port=port, log_level="warning")


def recorded_schedulers(stack_file: Path) -> dict[int, str]:
    """The schedulers a stack record lists (read on each call: they start after the market)."""
    try:
        doc = json.loads(stack_file.read_text())
        return {int(k): str(v) for k, v in (doc.get("schedulers") or {}).items()}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def serve_market(
    db: Path | str, port: int, stack_file: Path | None = None, host: str = "127.0.0.1"
) -> None:
    """The market API, with the explorer reading the stack's schedulers from its record."""
    import uvicorn

    from comptoir.chain.client import ChainClient
    from comptoir.config import load_settings
    from comptoir.market import MarketSettings, create_market_app

    settings = load_settings()
    client = ChainClient.from_settings(settings)
    network = settings.network  # the index follows the network's depth and range cap
    market = MarketSettings.from_deployment(
        client.deployment,
        settings.resolved_rpc_url(),
        database=db,
        sync_interval=1.0,
        confirmations=network.confirmations if network else 0,
        max_block_range=min(network.log_range, 2000) if network else 2000,
    )
    app = create_market_app(market)
    if stack_file is not None:
        app.state.explorer.schedulers = lambda: recorded_schedulers(stack_file)
    if market.index is not False:  # the explorer catches up from this market's own index
        own = "127.0.0.1" if host in ("0.0.0.0", "", "::", "[::]") else host.strip("[]")
        app.state.explorer.index_url = f"http://{f'[{own}]' if ':' in own else own}:{port}"
    uvicorn.run(app, host=host, port=port, log_level="warning")


def main(argv: list[str] | None = None) -> int:
    """``python -m comptoir.stack storage|market``: the stack's own services."""
    parser = argparse.ArgumentParser(prog="comptoir-stack")
    sub = parser.add_subparsers(dest="service", required=True)
    s = sub.add_parser("storage")
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--host", default="127.0.0.1")
    m = sub.add_parser("market")
    m.add_argument("--db", type=Path, required=True)
    m.add_argument("--port", type=int, required=True)
    m.add_argument("--stack-file", type=Path, default=None)
    m.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    try:
        if args.service == "storage":
            serve_storage(args.root, args.port, args.host)
        else:
            serve_market(args.db, args.port, args.stack_file, args.host)
    except ComptoirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
