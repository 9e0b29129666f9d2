"""Each party's service started alone on its host: the listen address is a setting, a
wildcard is refused where it would be advertised, and an undeployed network is one sentence."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from comptoir import stack
from comptoir.chain.client import ChainClient
from comptoir.config import load_settings

from .support import cli, failure, ok

pytestmark = pytest.mark.devnet


@pytest.mark.parametrize("service", ["market", "storage"])
def test_serving_an_undeployed_network_is_one_sentence(
    service: str, bare_anvil: Callable[..., str], tmp_path: Path
) -> None:
    home = tmp_path / service
    ok(cli(home, "network", "add", "empty", "--rpc-url", bare_anvil()))
    refused = cli(home, "--network", "empty", service, "serve", "--port", "0")
    assert "not deployed on network 'empty'" in failure(refused)


def test_a_wildcard_stack_address_is_refused(tmp_path: Path) -> None:
    refused = cli(tmp_path, "devnet", "status", COMPTOIR_DEVNET_HOST="0.0.0.0")
    assert "wildcard" in failure(refused) and "COMPTOIR_DEVNET_HOST" in failure(refused)


def test_the_stack_listens_and_advertises_where_told(tmp_path: Path) -> None:
    if not os.environ.get("COMPTOIR_ANVIL"):
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    env = {"COMPTOIR_HOME": str(tmp_path), "COMPTOIR_DEVNET_PORT": "0"}
    settings = load_settings({**env, "COMPTOIR_DEVNET_HOST": "127.0.0.2"})
    with stack.running(settings, workers=1) as running:
        urls = [running.urls["storage"], running.urls["market"], *running.schedulers.values()]
        assert all(u.startswith("http://127.0.0.2:") for u in urls), urls
        assert httpx.get(f"{running.urls['storage']}/healthz", timeout=5).status_code == 200
        # the scheduler answers on that address, and not on 127.0.0.1
        pool_url = running.schedulers[running.workerpool]
        assert httpx.get(f"{pool_url}/healthz", timeout=5).status_code == 200
        with pytest.raises(httpx.ConnectError):
            httpx.get(pool_url.replace("127.0.0.2", "127.0.0.1") + "/healthz", timeout=5)
        chain = ChainClient.from_settings(settings)
        assert chain.workerpool_endpoint(running.workerpool) == pool_url


def test_key_registrations_cannot_make_storage_scan_the_chain_per_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`storage serve` asks the chain who owns a dataset before accepting its key; any
    stranger's signed registration gets that far, so the registered datasets are scanned
    at most every OWNER_SCAN_EVERY_S, whatever the number of requests."""
    import types

    from comptoir.sdk import chainscan

    scans: list[int] = []
    now = [0.0]

    def registered_assets(client: object, kind: int) -> list[object]:
        scans.append(kind)
        return [
            types.SimpleNamespace(checksum=b"\x11" * 32, asset=1),
            types.SimpleNamespace(checksum=b"\x11" * 32, asset=2),  # newer, same data
        ]

    monkeypatch.setattr(chainscan, "registered_assets", registered_assets)
    client: Any = types.SimpleNamespace(owner_of=lambda asset: f"owner-{asset}")
    resolve = stack.dataset_owner_resolver(client, clock=lambda: now[0])
    assert resolve("0x" + "11" * 32) == "owner-2"
    for _ in range(500):
        assert resolve("0x" + "99" * 32) is None  # unknown checksums, as a stranger sends
    assert len(scans) == 1
    now[0] += stack.OWNER_SCAN_EVERY_S
    assert resolve("0x" + "99" * 32) is None and len(scans) == 2
