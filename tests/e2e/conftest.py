"""End-to-end harness: the real anvil devnet, a real blob + key server, the scheduler and
the workers as real processes (``python -m comptoir.scheduler`` / ``comptoir.worker``).

Each test runs on the shared session devnet rolled back afterwards (the ``chain``
fixture); every process a test starts is stopped before that rollback.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from eth_account.signers.local import LocalAccount

from comptoir import devnet as devnet_mod
from comptoir.apps import build_bundle, sealed
from comptoir.chain.client import APP_TYPE_BUNDLE, ChainClient
from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import (
    ZERO_ADDRESS,
    AppOrder,
    DatasetOrder,
    Deal,
    RequestOrder,
    WorkerpoolOrder,
)
from comptoir.scheduler.keypolicy import chain_deal_check
from comptoir.storage import LocalBlobStore, StorageClient, encrypt_dataset
from comptoir.storage.keys import (
    KeyServiceClient,
    KeyVault,
    NonceBook,
    SignedNoncePolicy,
    create_key_router,
)
from comptoir.storage.server import create_storage_app

APP_PRICE = 7
DATASET_PRICE = 3
POOL_PRICE = 100
WORKER_STAKE_RATIO = 25
SCHEDULER_REWARD_RATIO = 10
SCHEDULER_STAKE = POOL_PRICE * 30 // 100
WORKER_STAKE = POOL_PRICE * WORKER_STAKE_RATIO // 100
WORKERS_BASE = POOL_PRICE * (100 - SCHEDULER_REWARD_RATIO) // 100
WORKER_ROLES = ("w1", "w2", "w3", "w4", "stranger")

pytestmark = pytest.mark.devnet


# ---------------------------------------------------------------- in-process HTTP server


class ThreadServer:
    """uvicorn on a free port in a daemon thread."""

    def __init__(self, app: Any) -> None:
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Storage:
    url: str
    root: Path
    store: LocalBlobStore

    def upload(self, data: bytes) -> str:
        with StorageClient(self.url) as client:
            return client.upload(data)

    def blob_url(self, digest: str) -> str:
        return f"{self.url}/blobs/{digest}"


@pytest.fixture(scope="session")
def storage(
    devnet: devnet_mod.Devnet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storage]:
    """Blob server with the dataset key service (chain-backed release policy)."""
    with storage_server(devnet, tmp_path_factory.mktemp("storage")) as served:
        yield served


@contextlib.contextmanager
def storage_server(devnet: devnet_mod.Devnet, root: Path) -> Iterator[Storage]:
    """An in-process blob server + key service over `root`, releasing keys per `devnet`."""
    store = LocalBlobStore(root / "blobs", fsync=False)
    app = create_storage_app(store)
    policy = SignedNoncePolicy(NonceBook(), chain_deal_check(devnet.client()))
    app.include_router(create_key_router(KeyVault(), policy, nonces=policy.nonces))
    server = ThreadServer(app)
    url = server.start()
    try:
        yield Storage(url, root, store)
    finally:
        server.stop()


# ---------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Proc:
    name: str
    args: list[str]
    env: dict[str, str]
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        fh = open(self.log, "ab")  # noqa: SIM115 - owned by the child until it exits
        self.popen = subprocess.Popen(
            [sys.executable, *self.args],
            env=self.env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL, no goodbye: what a crash or a power cut looks like."""
        if self.alive:
            assert self.popen is not None
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        if not self.alive:
            return
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


# ---------------------------------------------------------------- the pool under test


@dataclass
class Pool:
    devnet: devnet_mod.Devnet
    storage: Storage
    accounts: dict[str, LocalAccount]
    clients: dict[str, ChainClient]
    tmp: Path
    workerpool: int
    procs: list[Proc] = field(default_factory=list)
    scheduler_url: str = ""
    scheduler_proc: Proc | None = None
    workers: dict[str, Proc] = field(default_factory=dict)

    def __getitem__(self, role: str) -> ChainClient:
        return self.clients[role]

    # -------------------------------------------------------- processes

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
        env.update(
            COMPTOIR_RPC_URL=self.devnet.rpc_url,
            COMPTOIR_DEPLOYMENT=str(self.devnet.settings.devnet_dir / "deployment.json"),
            COMPTOIR_STORAGE_URL=self.storage.url,
            PYTHONUNBUFFERED="1",
        )
        return env

    def start_scheduler(self, **overrides: str) -> Proc:
        port = free_port() if not self.scheduler_url else int(self.scheduler_url.rsplit(":")[-1])
        env = self._env()
        env.update(
            COMPTOIR_SCHEDULER_KEY=self.accounts["scheduler"].key.hex(),
            COMPTOIR_SCHEDULER_WORKERPOOL=str(self.workerpool),
            COMPTOIR_SCHEDULER_DB=str(self.tmp / "scheduler.db"),
            COMPTOIR_SCHEDULER_PORT=str(port),
            COMPTOIR_SCHEDULER_LEASE="4",
            COMPTOIR_SCHEDULER_REVEAL_WAIT="5",
            COMPTOIR_SCHEDULER_POLL="0.3",
            COMPTOIR_SCHEDULER_RECONCILE="5",
            COMPTOIR_SCHEDULER_MAX_ATTEMPTS="3",
            COMPTOIR_SCHEDULER_GRACE="30",
        )
        env.update(overrides)
        proc = Proc("scheduler", ["-m", "comptoir.scheduler"], env, self.tmp / "scheduler.log")
        self.procs.append(proc.start())
        self.scheduler_proc = proc
        self.scheduler_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: self._healthy(proc), 30, "the scheduler to answer")
        return proc

    def _healthy(self, proc: Proc) -> bool:
        if not proc.alive:
            raise AssertionError(f"the scheduler exited:\n{proc.tail()}")
        try:
            return httpx.get(f"{self.scheduler_url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, role: str, **overrides: str) -> Proc:
        env = self._env()
        env.update(
            COMPTOIR_WORKER_KEY=self.accounts[role].key.hex(),
            COMPTOIR_SCHEDULER_URL=self.scheduler_url,
            COMPTOIR_WORKER_DIR=str(self.tmp / role),
            COMPTOIR_WORKER_POLL="0.3",
            COMPTOIR_WORKER_HEARTBEAT="0.5",
            COMPTOIR_WORKER_MEMORY_LIMIT=str(128 << 20),
            COMPTOIR_WORKER_OUTPUT_LIMIT=str(8 << 20),
            COMPTOIR_WORKER_MAX_PROCESSES="32",
            COMPTOIR_WORKER_GPU="0",
        )
        env.update(overrides)
        proc = Proc(role, ["-m", "comptoir.worker"], env, self.tmp / f"{role}.log")
        self.procs.append(proc.start())
        self.workers[role] = proc
        return proc

    def wait_workers(self, roles: tuple[str, ...], timeout: float = 40) -> None:
        want = {self.accounts[r].address for r in roles}
        wait_for(
            lambda: want <= {w["address"] for w in self.get("/v1/workers") if w["online"]},
            timeout,
            f"workers {roles} to register",
        )

    def stop_all(self) -> None:
        for p in self.procs:
            p.stop()

    def logs(self) -> str:
        return "\n".join(f"----- {p.name} -----\n{p.tail()}" for p in self.procs)

    # -------------------------------------------------------- scheduler API

    def get(self, path: str) -> Any:
        resp = httpx.get(f"{self.scheduler_url}{path}", timeout=5)
        resp.raise_for_status()
        return resp.json()

    def task(self, deal: Deal, index: int = 0) -> dict[str, Any] | None:
        try:
            return dict(self.get(f"/v1/tasks/0x{deal.task_id(index).hex()}"))
        except httpx.HTTPStatusError:
            return None
        except httpx.HTTPError:
            return None  # scheduler restarting

    def task_status(self, deal: Deal, index: int = 0) -> str | None:
        t = self.task(deal, index)
        return None if t is None else str(t["status"])

    def wait_settled(self, deal: Deal, timeout: float = 60) -> None:
        def done() -> bool:
            return all(self["stranger"].is_settled(deal.deal_id, i) for i in range(deal.volume))

        wait_for(done, timeout, f"deal 0x{deal.deal_id.hex()[:12]} to settle", self)

    # -------------------------------------------------------- assets and deals

    def register_app(self, source: dict[str, str], command: list[str] | None = None) -> int:
        """A bundle app from {file name: text}; uploaded, then registered on-chain."""
        src = self.tmp / f"app-{len(list(self.tmp.glob('app-*')))}"
        src.mkdir()
        manifest = {"name": "e2e", "command": command or ["python3", "main.py"]}
        (src / "comptoir.json").write_text(json.dumps(manifest))
        for name, text in source.items():
            (src / name).write_text(text)
        bundle = build_bundle(src)
        digest = self.storage.upload(bundle)
        return self["app_dev"].register_app(
            "e2e-app", self.storage.blob_url(digest), bytes.fromhex(digest), APP_TYPE_BUNDLE
        )

    def register_dataset(self, plaintext: bytes) -> int:
        blob, key = encrypt_dataset(plaintext)
        digest = self.storage.upload(blob)
        dataset = self["dataset_owner"].register_dataset(
            "e2e-data", self.storage.blob_url(digest), bytes.fromhex(digest)
        )
        keys = KeyServiceClient(self.storage.url)
        try:
            keys.register_key(digest, key, self.accounts["dataset_owner"].key)
        finally:
            keys.close()
        return dataset

    def deal(
        self,
        app: int,
        *,
        dataset: int = 0,
        volume: int = 1,
        trust: int = 1,
        category: int = TEST_CATEGORY_ID,
        params: str = "",
        tag: int = 0,
        callback: str = ZERO_ADDRESS,
    ) -> Deal:
        requester = self.accounts["requester"].address
        tag_b = tag.to_bytes(32, "big")
        if dataset and not params.startswith(sealed.TERMS_PREFIX):
            # as the SDK does: a result computed on a dataset is sealed to the requester
            key = sealed.public_key_of(bytes(self.accounts["requester"].key))
            params = sealed.request_params(params, key, seal=False)
        app_order = AppOrder(app=app, app_price=APP_PRICE, volume=volume)
        pool_order = WorkerpoolOrder(
            workerpool=self.workerpool,
            workerpool_price=POOL_PRICE,
            volume=volume,
            category=category,
            trust=trust,
            tag=tag_b,
        )
        dataset_order = (
            DatasetOrder(dataset=dataset, dataset_price=DATASET_PRICE, volume=volume)
            if dataset
            else None
        )
        request = RequestOrder(
            app=app,
            app_max_price=APP_PRICE,
            dataset=dataset,
            dataset_max_price=DATASET_PRICE if dataset else 0,
            workerpool=self.workerpool,
            workerpool_max_price=POOL_PRICE,
            requester=requester,
            volume=volume,
            category=category,
            trust=trust,
            params=params,
            tag=tag_b,
            callback=callback,
        )
        return self["requester"].match_orders(
            app_order,
            self["app_dev"].sign_order(app_order),
            dataset_order,
            self["dataset_owner"].sign_order(dataset_order) if dataset_order else b"",
            pool_order,
            self["scheduler"].sign_order(pool_order),
            request,
            self["requester"].sign_order(request),
        )

    def balances(self) -> dict[str, int]:
        return {role: c.balance() for role, c in self.clients.items()}

    def escrow_holds_everything(self) -> None:
        """Section 2 invariant once no deal is open."""
        hub = self["deployer"].deployment.hub
        held = self["deployer"].token_balance(hub)
        assert held == sum(self.balances().values()) + self["deployer"].held_stakes()


def wait_for(
    predicate: Callable[[], Any], timeout: float, what: str, pool: Pool | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = f"\n{pool.logs()}" if pool is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{logs}")
        time.sleep(0.2)


@pytest.fixture
def pool(
    chain: devnet_mod.Devnet,
    storage: Storage,
    accounts: dict[str, LocalAccount],
    clients: dict[str, ChainClient],
    tmp_path: Path,
) -> Iterator[Pool]:
    """A workerpool registered by the scheduler account; requester, scheduler and workers
    have deposited. Processes started through it are stopped before the chain rolls back."""
    workerpool = clients["scheduler"].register_workerpool(
        "e2e-pool", WORKER_STAKE_RATIO, SCHEDULER_REWARD_RATIO
    )
    clients["requester"].deposit(100_000)
    clients["scheduler"].deposit(100_000)
    for role in WORKER_ROLES:
        clients[role].deposit(1_000)
    p = Pool(chain, storage, accounts, clients, tmp_path, workerpool)
    try:
        yield p
    finally:
        p.stop_all()
        print(p.logs())  # shown by pytest when the test failed
