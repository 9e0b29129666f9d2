"""eth_getLogs against a provider that caps ranges (a real JSON-RPC proxy in front of anvil),
the on-disk cache of final logs, and a reorg below the cached point."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from web3 import Web3

from comptoir import devnet
from comptoir.chain import logscan
from comptoir.chain.client import ChainClient, connect
from comptoir.chain.deploy import deploy_protocol
from comptoir.exceptions import ChainError
from comptoir.sdk import devnet_account
from comptoir.testing.servers import serve_app

pytestmark = pytest.mark.devnet


@dataclass
class CappedProvider:
    """Forwards JSON-RPC to a node; refuses eth_getLogs over more than `cap` blocks the way
    hosted providers do, and records the ranges it served."""

    upstream: str
    cap: int
    served: list[tuple[int, int]] = field(default_factory=list)
    broken: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()
        client = httpx.Client(timeout=30)

        @app.post("/")
        async def rpc(request: Request) -> Any:
            body = await request.json()
            if body.get("method") == "eth_getLogs":
                f = body["params"][0]
                a, b = int(f["fromBlock"], 16), int(f["toBlock"], 16)
                if self.broken:
                    return {
                        "jsonrpc": "2.0",
                        "id": body["id"],
                        "error": {"code": -32000, "message": "backend down"},
                    }
                if b - a + 1 > self.cap:
                    error = {
                        "code": -32602,
                        "message": f"eth_getLogs block range too large, max {self.cap}",
                    }
                    return {"jsonrpc": "2.0", "id": body["id"], "error": error}
                self.served.append((a, b))
            return client.post(self.upstream, json=body).json()

        return app


@pytest.fixture
def chain_with_logs(bare_anvil: Callable[..., str]) -> tuple[str, ChainClient]:
    url = bare_anvil()
    w3 = connect(url)
    deployment = deploy_protocol(w3, devnet_account(0))
    client = ChainClient(w3, deployment, devnet_account(0))
    for i in range(12):  # one Transfer log per block
        client.mint(devnet_account(1 + i % 3).address, 1 + i)
    return url, client


@pytest.fixture
def capped(chain_with_logs: tuple[str, ChainClient]) -> Iterator[tuple[CappedProvider, Web3]]:
    provider = CappedProvider(chain_with_logs[0], cap=4)
    with serve_app(provider.app()) as url:
        yield provider, connect(url)


def _token(client: ChainClient) -> str:
    return client.deployment.token


def test_ranges_shrink_to_what_the_provider_serves(
    chain_with_logs: tuple[str, ChainClient], capped: tuple[CappedProvider, Web3]
) -> None:
    _, client = chain_with_logs
    provider, w3 = capped
    head = int(w3.eth.block_number)
    params = {"address": [_token(client)]}
    direct = logscan.get_logs(client.w3, params, 0, head, max_range=10_000)
    through = logscan.get_logs(w3, params, 0, head, max_range=10_000)
    assert [dict(x)["transactionHash"] for x in through] == [
        dict(x)["transactionHash"] for x in direct
    ]
    assert len(direct) >= 12
    assert provider.served and all(b - a + 1 <= 4 for a, b in provider.served)
    covered = sorted(provider.served)
    assert covered[0][0] == 0 and covered[-1][1] == head  # every block asked exactly once
    assert all(n[0] == p[1] + 1 for p, n in itertools.pairwise(covered))

    provider.broken = True
    with pytest.raises(ChainError, match="log_range"):
        logscan.get_logs(w3, params, 0, head, max_range=2)


def test_cache_serves_final_logs_and_reads_only_new_blocks(
    chain_with_logs: tuple[str, ChainClient], capped: tuple[CappedProvider, Web3], tmp_path: Path
) -> None:
    _, client = chain_with_logs
    provider, w3 = capped
    policy = logscan.ScanPolicy(max_range=4, confirmations=2, cache_dir=tmp_path)
    head = int(w3.eth.block_number)
    first = logscan.scan(w3, _token(client), [], 0, head, policy)
    assert len(first) == len(logscan.get_logs(client.w3, {"address": [_token(client)]}, 0, head))
    (cache_file,) = tmp_path.glob("*.json")
    provider.served.clear()
    client.mint(devnet_account(1).address, 99)  # one more block, one more log
    second = logscan.scan(w3, _token(client), [], 0, int(w3.eth.block_number), policy)
    assert len(second) == len(first) + 1
    # only blocks after the cached final point (head - 2) were asked for again
    assert min(a for a, _ in provider.served) == head - 2 + 1
    assert cache_file.exists()


def test_a_reorg_below_the_cache_is_detected(
    chain_with_logs: tuple[str, ChainClient], tmp_path: Path
) -> None:
    _, client = chain_with_logs
    w3 = client.w3
    policy = logscan.ScanPolicy(max_range=100, confirmations=0, cache_dir=tmp_path)
    snap = devnet.snapshot(w3)
    client.mint(devnet_account(5).address, 7)
    client.mint(devnet_account(5).address, 8)
    before = logscan.scan(w3, _token(client), [], 0, int(w3.eth.block_number), policy)
    devnet.revert(w3, snap)  # the last two blocks are gone; others take their numbers
    client.mint(devnet_account(6).address, 9)
    client.mint(devnet_account(6).address, 10)
    after = logscan.scan(w3, _token(client), [], 0, int(w3.eth.block_number), policy)
    fresh = logscan.get_logs(w3, {"address": [_token(client)]}, 0, int(w3.eth.block_number))
    assert [x["transactionHash"] for x in after] == [x["transactionHash"] for x in fresh]
    assert {x["transactionHash"] for x in before} != {x["transactionHash"] for x in after}
