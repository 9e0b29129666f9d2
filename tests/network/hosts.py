"""Parties on hosts of their own: each with its address, its home and its processes.

A :class:`Lan` builds hosts as network namespaces plugged into one bridge (itself in a
namespace of its own), so parties share nothing but the network; :func:`loopback_host`
makes the same kind of host on this machine's loopback (for a chain such as hardhat's
node). :func:`run_network` is the whole flow, every party configured by network name only.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from comptoir import stack
from comptoir.chain.client import ChainClient, connect
from comptoir.chain.deploy import Deployment
from comptoir.sdk import devnet_account

from .support import COMPTOIR, cli, cli_env, deploy, join, ok

NETWORK = "lab"
TOKENS = 10**9  # minted by the operator to every party's account
START_TIMEOUT = 180.0
COMMAND_TIMEOUT = 300.0  # one CLI command, on a machine other work may load
PARALLEL = 4
REQUESTERS = (1, 8)  # the requester's wallet for each pool's bag (devnet accounts)


@dataclass
class Host:
    """One party's machine: the address others reach it at, its home, how to run there."""

    name: str
    address: str
    home: Path
    prefix: Sequence[str] = ()  # e.g. ('nsenter', '--net=/run/netns/NS', '--')
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cli(
        self, *args: str, timeout: float = COMMAND_TIMEOUT, **env: str
    ) -> subprocess.CompletedProcess[str]:
        return cli(self.home, *args, timeout=timeout, prefix=self.prefix, **env)

    def ok(self, *args: str, timeout: float = COMMAND_TIMEOUT, **env: str) -> str:
        return ok(self.cli(*args, timeout=timeout, **env))

    def json(self, *args: str, **env: str) -> dict[str, object]:
        return dict(json.loads(self.ok(*args, "--json", **env)))

    def port(self, default: int) -> int:
        """A host of its own has every port; the loopback host shares them."""
        if self.prefix:
            return default
        with socket.socket() as s:
            s.bind((self.address, 0))
            return int(s.getsockname()[1])

    def spawn(self, label: str, command: Sequence[str], **env: str) -> subprocess.Popen[bytes]:
        """A long-running process on this host (stopped with the host), logged to a file."""
        self.home.mkdir(parents=True, exist_ok=True)
        log = (self.home / f"{label}.log").open("ab")
        proc = subprocess.Popen(
            [*self.prefix, *command],
            cwd=self.home,
            env=cli_env(self.home, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its children (sandboxes) stop with it
        )
        log.close()
        self.procs.append(proc)
        return proc

    def serve(self, label: str, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return self.spawn(label, [*COMPTOIR, *args], **env)

    def log(self, label: str) -> str:
        path = self.home / f"{label}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        self.procs.clear()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def _netns(ns: str, *args: str) -> None:
    _ip("netns", "exec", ns, *args)


class NoNamespaces(Exception):
    """This machine cannot create network namespaces (not root, or no iproute2)."""


class Lan:
    """A private network 10.77.S.0/24: a bridge in its own namespace, one namespace per host
    plugged into it by a veth pair, and this test process at .254 (the operator's console)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = f"{os.getpid() % 1000:03d}{random.randrange(100, 999)}"
        self.subnet = f"10.77.{random.randrange(1, 250)}"
        self.switch = f"cmsw{self.tag}"
        self.hosts: list[Host] = []
        self._namespaces: list[str] = []
        self._links: list[str] = []

    def __enter__(self) -> Lan:
        try:
            _ip("netns", "add", self.switch)
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            raise NoNamespaces(str(exc)) from None
        self._namespaces.append(self.switch)
        try:
            _netns(self.switch, "ip", "link", "add", "br0", "type", "bridge")
            _netns(self.switch, "ip", "link", "set", "br0", "up")
            console = f"cmc{self.tag}"  # this process's leg, in the root namespace
            self._plug(console, None, f"{self.subnet}.254")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _plug(self, inner: str, ns: str | None, address: str) -> None:
        outer = f"cmb{inner[3:]}"  # the bridge end, moved into the switch namespace
        _ip("link", "add", inner, "type", "veth", "peer", "name", outer)
        if ns is None:
            self._links.append(inner)
        _ip("link", "set", outer, "netns", self.switch)
        _netns(self.switch, "ip", "link", "set", outer, "master", "br0", "up")
        run = ["ip", "netns", "exec", ns] if ns else []
        if ns:
            _ip("link", "set", inner, "netns", ns)
            _netns(ns, "ip", "link", "set", "lo", "up")
        subprocess.run([*run, "ip", "addr", "add", f"{address}/24", "dev", inner], check=True)
        subprocess.run([*run, "ip", "link", "set", inner, "up"], check=True)

    def host(self, name: str) -> Host:
        index = len(self.hosts) + 1
        ns = f"cm{self.tag}h{index}"
        _ip("netns", "add", ns)
        self._namespaces.append(ns)
        address = f"{self.subnet}.{index + 1}"
        self._plug(f"cmh{self.tag}{index:02d}", ns, address)
        # the network namespace alone ('ip netns exec' would also remount /sys, hiding the
        # cgroup tree a worker's sandbox needs)
        prefix = ("nsenter", f"--net=/run/netns/{ns}", "--")
        host = Host(name, address, self.root / name, prefix=prefix)
        self.hosts.append(host)
        return host

    def __exit__(self, *exc: object) -> None:
        for host in self.hosts:  # processes first: a namespace outlives its deletion otherwise
            host.stop()
        for link in self._links:
            subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)
        for ns in reversed(self._namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def loopback_host(root: Path, name: str) -> Host:
    return Host(name, "127.0.0.1", root / name)


def wait_http(url: str, what: str, alive: Callable[[], bool], log: Callable[[], str]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=3).status_code == 200:
                return
        assert alive(), f"{what} exited: {log()}"
        time.sleep(0.3)
    raise AssertionError(f"{what} did not answer at {url}: {log()}")


def wait_rpc(url: str, timeout: float = START_TIMEOUT) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.post(url, json=body, timeout=2).status_code == 200:
                return
        assert time.monotonic() < deadline, f"no JSON-RPC node answered at {url}"
        time.sleep(0.3)


@dataclass
class Pool:
    owner: int  # devnet account index of the pool's owner (its scheduler's key)
    workers: list[int]  # devnet account indexes of its workers
    host: Host | None = None
    worker_hosts: list[Host] = field(default_factory=list)
    id: int = 0
    url: str = ""


@dataclass
class Parties:
    """Who runs where (hosts chosen by the caller: namespaces, or loopback)."""

    chain_url: str
    operator: Host  # deploys the protocol (account 0)
    market: Host
    storage: Host
    developer: Host  # the app's owner (account 2)
    requester: Host  # accounts 1, 8: one wallet per pool, so the bags run at once
    pools: list[Pool]


def _service_env() -> dict[str, str]:
    return {
        k: v
        for k, v in stack.FAST_ENV.items()
        if k.startswith(("COMPTOIR_SCHEDULER_", "COMPTOIR_WORKER_"))
    }


def _parallel(*steps: Callable[[], object]) -> None:
    """Independent parties act at once (each step is one party's commands, in order)."""
    # a few at a time: on a loaded machine a dozen interpreters starting at once time out
    with ThreadPoolExecutor(max_workers=min(len(steps), PARALLEL)) as pool:
        for future in [pool.submit(step) for step in steps]:
            future.result()


def _serve_and_wait(host: Host, label: str, args: Sequence[str], health: str, **env: str) -> None:
    proc = host.serve(label, *args, **env)
    wait_http(
        health, f"{label} on {host.name}", lambda: proc.poll() is None, lambda: host.log(label)
    )


def _start_pool(n: int, pool: Pool) -> None:
    """The pool manager's commands on its host, then each worker's on its own."""
    host, wallet = pool.host, f"devnet:{pool.owner}"
    assert host is not None
    host.ok("account", "deposit", str(10**7), "-w", wallet)
    pool.id = int(host.json("pool", "deploy", f"pool-{n}", "-w", wallet)["workerpool"])
    host.ok("pool", "publish", str(pool.id), "--price", "100", "--category", "XS", "-w", wallet)
    port = host.port(8700)
    pool.url = f"http://{host.address}:{port}"
    serve = ["pool", "serve", str(pool.id), "--host", host.address, "--port", str(port)]
    serve += ["--advertise", pool.url, "-w", wallet]
    _serve_and_wait(host, "scheduler", serve, f"{pool.url}/healthz", **_service_env())
    for index, worker_host in zip(pool.workers, pool.worker_hosts, strict=True):
        # its second: the scheduler is found on-chain, the stake deposited on the way
        run = ["--network", NETWORK, "worker", "run", "--pool", str(pool.id)]
        run += ["--deposit", "100000", "-w", f"devnet:{index}"]
        worker_host.serve(f"worker-{index}", *run, **_service_env())
    _wait_workers(pool)


def _wait_workers(pool: Pool) -> None:
    """Until every worker registered with its own pool's scheduler."""
    want = {devnet_account(i).address.lower() for i in pool.workers}
    deadline = time.monotonic() + START_TIMEOUT
    online: set[str] = set()
    while not want <= online:
        logs = [h.log(f"worker-{i}") for i, h in zip(pool.workers, pool.worker_hosts, strict=True)]
        assert time.monotonic() < deadline, f"pool {pool.id}: {online} of {want}: {logs}"
        with contextlib.suppress(httpx.HTTPError, ValueError):
            listed = httpx.get(f"{pool.url}/v1/workers", timeout=3).json()
            online = {str(w["address"]).lower() for w in listed if w.get("online")}
        time.sleep(0.5)


def run_network(p: Parties, volume: int = 3) -> dict[int, str]:
    """Deploy, start every service on its host, join every party by network name, run a
    bag of `volume` tasks on each pool; the requester's output per pool id."""
    operator = p.operator
    record = deploy(operator.home, NETWORK, p.chain_url, prefix=operator.prefix)
    hub = str(record["hub"])
    token = ChainClient(connect(p.chain_url), Deployment.from_json(record), devnet_account(0))
    wallets = [f"devnet:{i}" for i in REQUESTERS[: len(p.pools)]]
    for index in {*REQUESTERS, 2, *(i for pool in p.pools for i in (pool.owner, *pool.workers))}:
        token.mint(devnet_account(index).address, TOKENS)

    mport, sport = p.market.port(8000), p.storage.port(8100)
    market_url = f"http://{p.market.address}:{mport}"
    storage_url = f"http://{p.storage.address}:{sport}"
    services = {"market_url": market_url, "storage_url": storage_url}

    def service(host: Host, kind: str, port: int, health: str) -> Callable[[], None]:
        def start() -> None:  # joins by hub, listens on its host's own address
            join(host.home, NETWORK, p.chain_url, hub, prefix=host.prefix)
            args = [kind, "serve", "--host", host.address, "--port", str(port)]
            _serve_and_wait(host, kind, args, health)

        return start

    def party(host: Host, *then: Sequence[str], use: bool = True) -> Callable[[], None]:
        def act() -> None:  # one command to know the network, 'network use', then its own
            join(host.home, NETWORK, p.chain_url, hub, prefix=host.prefix, use=use, **services)
            for args in then:
                host.ok(*args)

        return act

    deposit = ("account", "deposit")
    workers = [h for pool in p.pools for h in pool.worker_hosts]
    pool_hosts = [pool.host for pool in p.pools if pool.host is not None]
    _parallel(
        service(p.market, "market", mport, f"{market_url}/v1/info"),
        service(p.storage, "storage", sport, f"{storage_url}/healthz"),
        party(p.developer, ("app", "init", "primes-src", "--name", "primes")),
        party(p.requester, *((*deposit, str(10**6), "-w", w) for w in wallets)),
        *(party(host) for host in pool_hosts),
        *(party(h, use=False) for h in workers),  # a worker's first command of two
    )
    dev = p.developer
    app = int(dev.json("app", "deploy", "primes-src", "-w", "devnet:2")["app"])
    _parallel(
        lambda: dev.ok("app", "publish", str(app), "--price", "5", "-w", "devnet:2"),
        *(lambda n=n, pool=pool: _start_pool(n, pool) for n, pool in enumerate(p.pools)),
    )

    outputs: dict[int, str] = {}

    def bag(pool: Pool, wallet: str) -> None:
        run = p.requester.cli(
            "run", str(app), "--volume", str(volume), "--category", "XS", "--trust", "1",
            "--workerpool", str(pool.id), "--timeout", "420", "-w", wallet, timeout=540,
        )  # fmt: skip
        scheduler = pool.host.log("scheduler") if pool.host else ""
        assert run.returncode == 0, run.stdout + run.stderr + scheduler
        outputs[pool.id] = run.stdout

    _parallel(
        *(lambda pool=pool, w=w: bag(pool, w) for pool, w in zip(p.pools, wallets, strict=True))
    )
    return outputs
