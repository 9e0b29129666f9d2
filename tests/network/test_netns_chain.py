"""The chain on another host: anvil in a network namespace of its own, reached over a veth
pair at a private address the test creates; parties on this side know only its URL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from .hosts import Lan, wait_rpc
from .support import cli, deploy, failure, join, ok

pytestmark = pytest.mark.devnet


@pytest.fixture
def chain_host(lan: Lan) -> str:
    anvil = os.environ.get("COMPTOIR_ANVIL")
    if not anvil:
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    chain = lan.host("chain")
    chain.spawn("anvil", [anvil, "--host", chain.address, "--port", "8545"])
    url = f"http://{chain.address}:8545"
    wait_rpc(url)
    return url


def test_deploy_and_join_a_chain_on_another_host(chain_host: str, tmp_path: Path) -> None:
    operator, member = tmp_path / "operator", tmp_path / "member"
    assert not chain_host.startswith("http://127.")  # not loopback: across the veth pair
    record = deploy(operator, "far", chain_host)
    join(member, "far", chain_host, str(record["hub"]))
    added = ok(cli(member, "network", "list", "--json"))
    assert json.loads(added)["networks"]["far"]["deployment"] == record
    pool = cli(member, "pool", "deploy", "far-pool", "-w", "devnet:4", "--json")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    # the operator's home finds the member's pool through the chain alone: by its name
    advertise = ("pool", "advertise", "far-pool", "http://pool.test:8700")
    assert "owned by" in failure(cli(operator, "--network", "far", *advertise, "-w", "devnet:9"))
    moved = cli(operator, "--network", "far", *advertise, "-w", "devnet:4")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"Workerpool {json.loads(pool.stdout)['workerpool']} endpoint" in moved.stdout
