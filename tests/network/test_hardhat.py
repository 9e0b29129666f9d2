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

from .support import cli

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
    assert cli(owner, "network", "add", "hh", "--rpc-url", hardhat_node).returncode == 0
    deploy = cli(owner, "protocol", "deploy", "--network", "hh", "-w", "devnet:0", "--json")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    record = json.loads(deploy.stdout)
    assert record["chain_id"] == CHAIN_ID

    join = cli(other, "network", "add", "hh", "--rpc-url", hardhat_node, "--hub", record["hub"])
    assert join.returncode == 0, join.stdout + join.stderr
    deployment = Deployment.from_json(record)
    token_owner = ChainClient(connect(hardhat_node), deployment, devnet_account(0))
    token_owner.mint(devnet_account(1).address, 10_000)
    deposit = cli(other, "--network", "hh", "account", "deposit", "4000", "-w", "devnet:1")
    assert deposit.returncode == 0, deposit.stdout + deposit.stderr
    pool = cli(other, "--network", "hh", "pool", "deploy", "hh-pool", "-w", "devnet:4", "--json")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    pool_id = json.loads(pool.stdout)["workerpool"]
    url = "http://pool.test:8700"
    advertise = ("pool", "advertise", str(pool_id), url, "-w", "devnet:4")
    advertised = cli(other, "--network", "hh", *advertise)
    assert advertised.returncode == 0, advertised.stdout + advertised.stderr
    # the owner's home reads what the other home wrote, through hardhat
    show = cli(owner, "--network", "hh", "account", "show", "-w", "devnet:1", "--json")
    assert json.loads(show.stdout)["free"] == 4000
    assert token_owner.workerpool_endpoint(pool_id) == url
