"""A second, independent EVM implementation (hardhat's node, from npm): the protocol is
deployed, joined by hub, and driven through the CLI by configuration alone."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comptoir.chain.client import ChainClient, connect
from comptoir.chain.deploy import Deployment
from comptoir.sdk import devnet_account

from .hosts import Parties, Pool, loopback_host, run_network
from .support import cli, deploy, join, ok

pytestmark = pytest.mark.devnet
CHAIN_ID = 31338


@pytest.fixture
def hardhat_node(tmp_path: Path) -> Iterator[str]:
    tools = os.environ.get("COMPTOIR_HARDHAT")  # the folder holding node_modules/hardhat
    if not tools or not (Path(tools) / "node_modules/.bin/hardhat").exists():
        pytest.skip("COMPTOIR_HARDHAT is not set to a hardhat install (make test sets it)")
    project = tmp_path / "hardhat"
    project.mkdir()
    (project / "node_modules").symlink_to(Path(tools) / "node_modules")
    config = {"networks": {"hardhat": {"chainId": CHAIN_ID, "hardfork": "cancun"}}}
    (project / "hardhat.config.js").write_text(f"module.exports = {json.dumps(config)};\n")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = (tmp_path / "hardhat.log").open("wb")
    proc = subprocess.Popen(
        ["node_modules/.bin/hardhat", "node", "--hostname", "127.0.0.1", "--port", str(port)],
        cwd=project,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
                if httpx.post(url, json=body, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"hardhat node did not start: {(tmp_path / 'hardhat.log').read_text()}")
            time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_deploy_join_and_use_on_hardhat(hardhat_node: str, tmp_path: Path) -> None:
    owner, other = tmp_path / "owner", tmp_path / "other"
    record = deploy(owner, "hh", hardhat_node)
    assert record["chain_id"] == CHAIN_ID
    join(other, "hh", hardhat_node, str(record["hub"]))
    deployment = Deployment.from_json(record)
    token_owner = ChainClient(connect(hardhat_node), deployment, devnet_account(0))
    token_owner.mint(devnet_account(1).address, 10_000)
    ok(cli(other, "account", "deposit", "4000", "-w", "devnet:1"))
    pool = ok(cli(other, "pool", "deploy", "hh-pool", "-w", "devnet:4", "--json"))
    pool_id = json.loads(pool)["workerpool"]
    url = "http://pool.test:8700"
    ok(cli(other, "pool", "advertise", str(pool_id), url, "-w", "devnet:4"))
    # the owner's home reads what the other home wrote, through hardhat
    show = cli(owner, "--network", "hh", "account", "show", "-w", "devnet:1", "--json")
    assert json.loads(show.stdout)["free"] == 4000
    assert token_owner.workerpool_endpoint(pool_id) == url


def test_a_full_deal_on_hardhat(hardhat_node: str, tmp_path: Path) -> None:
    """The multi-host flow on hardhat's node, each party its own home on this machine's
    loopback: market, storage, an app, a pool with a worker, a verified task."""
    hosts = [loopback_host(tmp_path, n) for n in ("operator", "market", "storage", "dev", "req")]
    pool = Pool(owner=4, workers=[5])
    pool.host, pool.worker_hosts = loopback_host(tmp_path, "pool"), [loopback_host(tmp_path, "w")]
    operator, market, storage, developer, requester = hosts
    parties = Parties(hardhat_node, operator, market, storage, developer, requester, [pool])
    try:
        outputs = run_network(parties, volume=1)
    finally:
        for host in [*hosts, pool.host, *pool.worker_hosts]:
            host.stop()
    assert "1/1 task(s) verified against the chain" in outputs[pool.id], outputs
