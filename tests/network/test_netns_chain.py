"""The chain on another host: anvil in a network namespace of its own, reached over a veth
pair at a private address the test creates; parties on this side know only its URL."""

from __future__ import annotations

import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .support import cli, failure

pytestmark = pytest.mark.devnet


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


@pytest.fixture
def chain_host(tmp_path: Path) -> Iterator[str]:
    anvil = os.environ.get("COMPTOIR_ANVIL")
    if not anvil:
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    tag = f"{os.getpid() % 10000}{random.randrange(100, 999)}"
    ns, host_if, peer_if = f"cmpt{tag}", f"ch{tag}", f"cp{tag}"
    subnet = f"10.{random.randrange(200, 250)}.{random.randrange(1, 250)}"
    try:
        _ip("netns", "add", ns)
    except (subprocess.CalledProcessError, FileNotFoundError):
        pytest.skip("network namespaces need root and iproute2")
    proc = None
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", peer_if)
        _ip("link", "set", peer_if, "netns", ns)
        _ip("addr", "add", f"{subnet}.1/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("netns", "exec", ns, "ip", "addr", "add", f"{subnet}.2/30", "dev", peer_if)
        _ip("netns", "exec", ns, "ip", "link", "set", peer_if, "up")
        _ip("netns", "exec", ns, "ip", "link", "set", "lo", "up")
        log = (tmp_path / "anvil.log").open("wb")
        cmd = ["ip", "netns", "exec", ns, anvil, "--host", f"{subnet}.2", "--port", "8545"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://{subnet}.2:8545"
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.post(url, json=body, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"anvil in {ns} did not answer: {(tmp_path / 'anvil.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def test_deploy_and_join_a_chain_on_another_host(chain_host: str, tmp_path: Path) -> None:
    operator, member = tmp_path / "operator", tmp_path / "member"
    assert not chain_host.startswith("http://127.")  # not loopback: across the veth pair
    assert cli(operator, "network", "add", "far", "--rpc-url", chain_host).returncode == 0
    deploy = cli(operator, "protocol", "deploy", "--network", "far", "-w", "devnet:0", "--json")
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    hub = json.loads(deploy.stdout)["hub"]
    join = cli(member, "network", "add", "far", "--rpc-url", chain_host, "--hub", hub, "--json")
    assert join.returncode == 0, join.stdout + join.stderr
    assert json.loads(join.stdout)["deployment"] == json.loads(deploy.stdout)
    pool = cli(member, "--network", "far", "pool", "deploy", "far-pool", "-w", "devnet:4", "--json")
    assert pool.returncode == 0, pool.stdout + pool.stderr
    # the operator's home finds the member's pool through the chain alone: by its name
    advertise = ("pool", "advertise", "far-pool", "http://pool.test:8700")
    assert "owned by" in failure(cli(operator, "--network", "far", *advertise, "-w", "devnet:9"))
    moved = cli(operator, "--network", "far", *advertise, "-w", "devnet:4")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert f"Workerpool {json.loads(pool.stdout)['workerpool']} endpoint" in moved.stdout
