"""Discovery through the chain: other homes (other hosts, as far as configuration goes) join
a pool and fetch its results knowing only the network's name and the pool's id."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from comptoir import stack
from comptoir.sdk import devnet_account
from comptoir.testing.servers import serve_handler

from .support import COMPTOIR, cli, failure, join

pytestmark = pytest.mark.devnet
REQUEST = ("primes", "--category", "TEST", "--trust", "1", "--wallet", "devnet:1")


def _join(home: Path, pool: stack.Stack) -> None:
    """The commands a party runs to know the network (values given by its operator)."""
    hub = json.loads((pool.settings.devnet_dir / "deployment.json").read_text())["hub"]
    urls = {"market_url": pool.urls["market"], "storage_url": pool.urls["storage"]}
    join(home, "lab", pool.rpc_url, hub, **urls)


def test_the_pool_endpoint_is_on_chain(pool_host: stack.Stack) -> None:
    from comptoir.chain.client import ChainClient

    chain = ChainClient.from_settings(pool_host.settings)
    assert (
        chain.workerpool_endpoint(pool_host.workerpool)
        == pool_host.schedulers[pool_host.workerpool]
    )
    assert chain.workerpool_endpoint(pool_host.app) is None  # an app is not a pool


def test_a_requester_elsewhere_gets_verified_results(
    pool_host: stack.Stack, tmp_path: Path
) -> None:
    requester = tmp_path / "requester"
    _join(requester, pool_host)
    assert not (requester / "devnet").exists()  # nothing of the pool's host is here
    assert cli(requester, "account", "deposit", "5000", "--wallet", "devnet:1").returncode == 0
    run = cli(requester, "run", *REQUEST, "--volume", "2", "--timeout", "240", timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2/2 task(s) verified against the chain" in run.stdout


@contextlib.contextmanager
def _status_only(workerpool: int) -> Iterator[str]:
    """A scheduler that says it is alive for `workerpool` and serves nothing else (503): it
    passes the SDK's liveness probe, so a deal is matched, but no result can be fetched."""

    class StatusOnly(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            alive = self.path == "/v1/status"
            body = json.dumps({"workerpool": workerpool} if alive else {"detail": "down"})
            self.send_response(200 if alive else 503)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    with serve_handler(StatusOnly) as url:
        yield url


def test_unavailable_results_make_run_fail(pool_host: stack.Stack, tmp_path: Path) -> None:
    requester = tmp_path / "requester"
    _join(requester, pool_host)
    pool, real = pool_host.workerpool, pool_host.schedulers[pool_host.workerpool]
    with _status_only(pool) as hollow:
        # only the pool's owner may move its endpoint
        moved = ("pool", "advertise", str(pool), hollow)
        assert "owned by" in failure(cli(requester, *moved, "-w", "devnet:9"))
        # the owner points it at a scheduler that answers only its status: the deal is
        # matched and settled, its results cannot be fetched
        answer = cli(requester, *moved, "-w", "devnet:4")
        assert answer.returncode == 0, answer.stdout + answer.stderr
        try:
            deposit = cli(requester, "account", "deposit", "5000", "--wallet", "devnet:1")
            assert deposit.returncode == 0
            run = cli(requester, "run", *REQUEST, "--volume", "1", "--timeout", "240", timeout=300)
            assert run.returncode == 5, run.stdout + run.stderr  # unavailable (docs/cli.md)
            assert "could not be fetched" in run.stderr and "comptoir result get" in run.stderr
        finally:
            back = cli(requester, "pool", "advertise", str(pool), real, "-w", "devnet:4")
            assert back.returncode == 0, back.stdout + back.stderr


def test_a_worker_elsewhere_joins_with_the_pool_id(pool_host: stack.Stack, tmp_path: Path) -> None:
    worker_home = tmp_path / "worker"
    _join(worker_home, pool_host)
    assert cli(worker_home, "account", "deposit", "100000", "--wallet", "devnet:9").returncode == 0
    not_a_pool = cli(worker_home, "worker", "run", "--pool", str(pool_host.app), "-w", "devnet:9")
    assert "not a workerpool" in failure(not_a_pool)

    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    env.update({"COMPTOIR_HOME": str(worker_home), "NO_COLOR": "1"})
    for key in ("COMPTOIR_WORKER_POLL", "COMPTOIR_WORKER_HEARTBEAT"):
        env[key] = stack.FAST_ENV[key]
    command = [*COMPTOIR, "worker", "run", "--pool", str(pool_host.workerpool), "-w", "devnet:9"]
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    address = devnet_account(9).address.lower()
    url = pool_host.schedulers[pool_host.workerpool]
    try:
        deadline = time.monotonic() + 120
        joined = False
        while time.monotonic() < deadline and proc.poll() is None and not joined:
            workers = httpx.get(f"{url}/v1/workers", timeout=5).json()
            joined = any(str(w.get("address", "")).lower() == address for w in workers)
            time.sleep(0.5)
        assert joined, (tmp_path / "worker.log").read_text()[-3000:]
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()
