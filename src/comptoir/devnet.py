"""A local devnet: anvil started, provisioned and stopped by Comptoir.

Files under ``<home>/devnet/``:

- ``anvil.pid`` and ``devnet.json`` (pid, port, RPC URL, chain id) while it runs;
- ``anvil.log``: anvil's output;
- ``state.json``: the chain state. anvil loads it at start and dumps it when it stops
  on SIGTERM (checked by the tests), plus every ``STATE_INTERVAL`` seconds as a guard
  against a hard kill; so ``down`` then ``up`` gives back the same chain;
- ``deployment.json``: the protocol deployment on that chain.

``up`` is idempotent: it reuses a running devnet, and deploys the protocol only when no
deployment is recorded for the chain or its code is gone (e.g. the state was deleted).
Ports are stable: asked for any port (0), a restart gets the previous one back (``port``),
and a port whose old connections sit in TIME_WAIT is not refused. The clock follows wall
time: besides mining each transaction at once, anvil mines an empty block every
``COMPTOIR_DEVNET_BLOCK_TIME`` seconds, so deadlines pass on-chain while the devnet idles.
Accounts come from anvil's well-known test mnemonic; the first ten get test tokens.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from comptoir.chain.client import ChainClient, connect, forget_nonces
from comptoir.chain.deploy import DEVNET_CATEGORIES, Deployment, deploy_protocol
from comptoir.config import Settings
from comptoir.exceptions import ChainUnreachable, DevnetError, NotDeployed

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
N_ACCOUNTS = 10
TEST_TOKENS = 1_000_000 * 10**18  # per funded account
STATE_INTERVAL = 30  # seconds between periodic state dumps
START_TIMEOUT = 30.0

Account.enable_unaudited_hdwallet_features()


def devnet_accounts(n: int = N_ACCOUNTS, mnemonic: str = ANVIL_MNEMONIC) -> list[LocalAccount]:
    """The devnet's deterministic accounts (anvil's derivation path m/44'/60'/0'/0/i)."""
    return [Account.from_mnemonic(mnemonic, account_path=f"m/44'/60'/0'/0/{i}") for i in range(n)]


@dataclass
class Devnet:
    """A running, provisioned devnet."""

    settings: Settings
    rpc_url: str
    chain_id: int
    pid: int
    deployment: Deployment
    accounts: list[LocalAccount] = field(default_factory=devnet_accounts)
    _w3: Web3 | None = None

    @property
    def w3(self) -> Web3:
        if self._w3 is None:
            self._w3 = connect(self.rpc_url, self.settings.rpc_timeout)
        return self._w3

    def client(self, account: LocalAccount | int | None = None) -> ChainClient:
        if isinstance(account, int):
            account = self.accounts[account]
        return ChainClient(self.w3, self.deployment, account, self.settings.tx_timeout)


@dataclass(frozen=True)
class DevnetStatus:
    running: bool
    home: Path
    pid: int | None = None
    rpc_url: str | None = None
    chain_id: int | None = None
    block: int | None = None
    deployment: Deployment | None = None
    deployed: bool = False  # the recorded contracts have code on the running chain
    log_file: Path | None = None
    state_file: Path | None = None


# ---------------------------------------------------------------- files


def _paths(settings: Settings) -> dict[str, Path]:
    d = settings.devnet_dir
    return {
        "dir": d,
        "pid": d / "anvil.pid",
        "info": d / "devnet.json",
        "log": d / "anvil.log",
        "state": d / "state.json",
        "deployment": d / "deployment.json",
        "port": d / "port",  # the last port: a restart asking for any port gets it back
    }


def _read_info(settings: Settings) -> dict[str, Any] | None:
    try:
        return dict(json.loads(_paths(settings)["info"].read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _alive(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and "anvil" in " ".join(proc.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _port_free(port: int) -> bool:
    """Whether anvil could listen on `port` now. SO_REUSEADDR, as anvil's own listener sets
    it: sockets of a previous run lingering in TIME_WAIT do not make the port busy."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _remembered_port(settings: Settings) -> int | None:
    try:
        return int(_paths(settings)["port"].read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def anvil_binary(settings: Settings) -> Path:
    path = settings.anvil
    if not path.is_absolute():
        path = (Path(__file__).resolve().parents[2] / path).resolve()
    if not (path.exists() and os.access(path, os.X_OK)):
        raise DevnetError(
            f"anvil is not installed at {path}; run 'make setup' or set COMPTOIR_ANVIL."
        )
    return path


# ---------------------------------------------------------------- lifecycle


def _start_anvil(settings: Settings, port: int, chain_id: int) -> tuple[int, str]:
    paths = _paths(settings)
    paths["dir"].mkdir(parents=True, exist_ok=True)
    if port != 0 and not _port_free(port):
        raise DevnetError(
            f"Port {port} is already in use; stop what listens there or set COMPTOIR_DEVNET_PORT."
        )
    cmd = [
        str(anvil_binary(settings)),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        ANVIL_MNEMONIC,
        "--accounts",
        str(N_ACCOUNTS),
        "--state",
        str(paths["state"]),
        "--state-interval",
        str(STATE_INTERVAL),
    ]
    if settings.devnet_block_time > 0:
        # transactions still mine at once; empty blocks keep the clock on wall time when idle
        cmd += ["--block-time", str(settings.devnet_block_time), "--mixed-mining"]
    log_start = paths["log"].stat().st_size if paths["log"].exists() else 0
    with open(paths["log"], "ab") as log:
        # own session: the devnet outlives the CLI command that started it
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    paths["pid"].write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + START_TIMEOUT
    actual_port = port
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DevnetError(f"anvil exited at start: {_log_tail(paths['log'], log_start)}")
        text = paths["log"].read_bytes()[log_start:].decode(errors="replace")
        match = re.search(r"Listening on 127\.0\.0\.1:(\d+)", text)
        if match:
            actual_port = int(match.group(1))
            url = f"http://127.0.0.1:{actual_port}"
            try:
                connect(url, timeout=2.0)
                return proc.pid, url
            except ChainUnreachable:
                pass
        time.sleep(0.05)
    _terminate(proc.pid, 5.0)
    raise DevnetError(f"anvil did not answer within {START_TIMEOUT:.0f} s; see {paths['log']}.")


def _log_tail(path: Path, start: int) -> str:
    lines = path.read_bytes()[start:].decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no output"


def _terminate(pid: int, timeout: float) -> None:
    try:
        proc = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    # SIGTERM makes anvil dump its state before exiting
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except psutil.TimeoutExpired:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
            proc.wait(5)


def provision(settings: Settings, w3: Web3, accounts: list[LocalAccount]) -> Deployment:
    """Deploy and fund unless the recorded deployment is still on this chain."""
    path = _paths(settings)["deployment"]
    chain_id = int(w3.eth.chain_id)
    if path.exists():
        try:
            deployment = Deployment.load(path)
            deployment.verify(w3)
            return deployment
        except NotDeployed:
            pass  # chain reset or another chain: deploy afresh
    deployer = accounts[0]
    deployment = deploy_protocol(w3, deployer, DEVNET_CATEGORIES, settings.tx_timeout)
    client = ChainClient(w3, deployment, deployer, settings.tx_timeout)
    for account in accounts:
        client.mint(account.address, TEST_TOKENS)
    assert deployment.chain_id == chain_id
    deployment.save(path)
    return deployment


def up(settings: Settings, port: int | None = None, chain_id: int | None = None) -> Devnet:
    """Start (or reuse) the devnet, deploy if needed, fund the test accounts."""
    paths = _paths(settings)
    accounts = devnet_accounts()
    info = _read_info(settings)
    if info and _alive(int(info["pid"])):
        pid, url = int(info["pid"]), str(info["rpc_url"])
        try:
            w3 = connect(url, settings.rpc_timeout)
        except ChainUnreachable:
            raise DevnetError(
                f"A devnet process (pid {pid}) is recorded but does not answer at {url}; "
                "run 'comptoir devnet down' then 'comptoir devnet up'."
            ) from None
    else:
        wanted = settings.devnet_port if port is None else port
        chain = settings.devnet_chain_id if chain_id is None else chain_id
        previous = _remembered_port(settings) if wanted == 0 else None
        if previous is not None and _port_free(previous):
            try:
                pid, url = _start_anvil(settings, previous, chain)
            except DevnetError:  # taken in the meantime: any port will do
                pid, url = _start_anvil(settings, 0, chain)
        else:
            pid, url = _start_anvil(settings, wanted, chain)
        # a new node on a known URL may hold another chain: nonces cached for it are void
        forget_nonces()
        w3 = connect(url, settings.rpc_timeout)
    actual_chain = int(w3.eth.chain_id)
    info = {
        "pid": pid,
        "rpc_url": url,
        "chain_id": actual_chain,
        "port": int(url.rsplit(":", 1)[1]),
    }
    paths["info"].write_text(json.dumps(info, indent=2) + "\n")
    paths["port"].write_text(f"{info['port']}\n")
    try:
        deployment = provision(settings, w3, accounts)
    except Exception:
        down(settings)
        raise
    return Devnet(settings, url, actual_chain, pid, deployment, accounts, w3)


def down(settings: Settings, timeout: float = 15.0) -> bool:
    """Stop the devnet, keeping its state; False when none was running."""
    paths = _paths(settings)
    info = _read_info(settings)
    pid: int | None = None
    if info:
        pid = int(info["pid"])
    elif paths["pid"].exists():
        with contextlib.suppress(ValueError):
            pid = int(paths["pid"].read_text().strip())
    was_running = pid is not None and _alive(pid)
    if was_running and pid is not None:
        _terminate(pid, timeout)
    for key in ("pid", "info"):
        paths[key].unlink(missing_ok=True)
    return was_running


def status(settings: Settings) -> DevnetStatus:
    paths = _paths(settings)
    info = _read_info(settings)
    deployment: Deployment | None = None
    if paths["deployment"].exists():
        with contextlib.suppress(Exception):
            deployment = Deployment.load(paths["deployment"])
    common: dict[str, Any] = {
        "home": settings.home,
        "deployment": deployment,
        "log_file": paths["log"] if paths["log"].exists() else None,
        "state_file": paths["state"] if paths["state"].exists() else None,
    }
    if not info or not _alive(int(info["pid"])):
        return DevnetStatus(running=False, **common)
    url = str(info["rpc_url"])
    try:
        w3 = connect(url, timeout=5.0)
        block = int(w3.eth.block_number)
        chain_id = int(w3.eth.chain_id)
    except ChainUnreachable:
        return DevnetStatus(running=False, pid=int(info["pid"]), rpc_url=url, **common)
    deployed = False
    if deployment is not None:
        try:
            deployment.verify(w3)
            deployed = True
        except NotDeployed:
            deployed = False
    return DevnetStatus(
        True,
        settings.home,
        int(info["pid"]),
        url,
        chain_id,
        block,
        deployment,
        deployed,
        common["log_file"],
        common["state_file"],
    )


def running_rpc_url(settings: Settings) -> str | None:
    """The URL of the devnet recorded under this home, if one runs."""
    info = _read_info(settings)
    if info and _alive(int(info["pid"])):
        return str(info["rpc_url"])
    return None


# ---------------------------------------------------------------- test-chain helpers


def increase_time(w3: Web3, seconds: int) -> int:
    """Move the chain clock forward and mine a block; returns the new timestamp (anvil only)."""
    w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
    return int(w3.eth.get_block("latest")["timestamp"])


def snapshot(w3: Web3) -> str:
    return str(w3.provider.make_request("evm_snapshot", [])["result"])  # type: ignore[arg-type]


def revert(w3: Web3, snapshot_id: str) -> None:
    result = w3.provider.make_request("evm_revert", [snapshot_id])  # type: ignore[arg-type]
    if not result.get("result"):
        raise DevnetError(f"Could not revert the devnet to snapshot {snapshot_id}.")
    forget_nonces()  # account nonces went backwards with the chain
