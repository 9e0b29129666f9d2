"""Devnet lifecycle on its own anvil: up, status, down, state kept across a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from comptoir import devnet as dn
from comptoir.chain.client import ChainClient
from comptoir.chain.deploy import DEVNET_CATEGORIES
from comptoir.config import load_settings
from comptoir.exceptions import DevnetError


def test_up_down_up_keeps_the_chain(tmp_path: Path) -> None:
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path)})
    net = dn.up(settings, port=0)
    try:
        st = dn.status(settings)
        assert st.running and st.deployed and st.pid == net.pid
        assert st.rpc_url == net.rpc_url and st.chain_id == 31337
        assert (tmp_path / "devnet" / "deployment.json").exists()
        client = net.client(2)
        assert client.token_balance() == dn.TEST_TOKENS
        assert [c.name for c in client.categories()] == [n for n, _ in DEVNET_CATEGORIES]
        app = client.register_app("kept", "oci://kept", b"\x09" * 32)
        client.deposit(1234)
        block = client.block_number()
        # a second 'up' reuses the running devnet
        assert dn.up(settings, port=0).pid == net.pid
    finally:
        assert dn.down(settings)

    stopped = dn.status(settings)
    assert not stopped.running and stopped.state_file is not None  # dumped on SIGTERM
    assert dn.down(settings) is False  # nothing left to stop

    again = dn.up(settings, port=0)
    try:
        assert again.pid != net.pid
        assert again.deployment == net.deployment  # not redeployed
        client = again.client(2)
        assert client.asset(app).name == "kept"
        assert client.balance() == 1234
        assert client.block_number() >= block
        # the settings-based lookup finds the devnet and its deployment
        found = ChainClient.from_settings(settings)
        assert found.deployment == net.deployment
    finally:
        dn.down(settings)


def test_lost_state_means_a_fresh_deployment(tmp_path: Path) -> None:
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path)})
    first = dn.up(settings, port=0)
    first.client(1).register_app("gone", "oci://gone", b"\x01" * 32)
    dn.down(settings)
    (tmp_path / "devnet" / "state.json").unlink()
    net = dn.up(settings, port=0)
    try:
        assert dn.status(settings).deployed
        assert net.client(1).asset_count() == 0  # a new chain, provisioned again
        assert net.client(1).token_balance() == dn.TEST_TOKENS
    finally:
        dn.down(settings)


def test_port_in_use_and_missing_anvil_are_clear_errors(tmp_path: Path, devnet: dn.Devnet) -> None:
    busy = int(devnet.rpc_url.rsplit(":", 1)[1])
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path)})
    with pytest.raises(DevnetError, match=f"Port {busy} is already in use"):
        dn.up(settings, port=busy)
    missing = load_settings(
        {"COMPTOIR_HOME": str(tmp_path), "COMPTOIR_ANVIL": "/nonexistent/anvil"}
    )
    with pytest.raises(DevnetError, match="make setup"):
        dn.up(missing, port=0)
    assert not dn.status(settings).running
