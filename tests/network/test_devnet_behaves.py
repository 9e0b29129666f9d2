"""The devnet behaves like a chain: idempotent up, stable ports reusable at once, a clock
that follows wall time while idle."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from comptoir import devnet
from comptoir.config import load_settings

from .support import cli

pytestmark = pytest.mark.devnet


def _time_wait_port() -> int:
    """A port whose only trace is a server-side socket in TIME_WAIT (the server closed)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = int(listener.getsockname()[1])
    client = socket.create_connection(("127.0.0.1", port))
    conn, _ = listener.accept()
    conn.close()  # the side that closes first keeps TIME_WAIT
    time.sleep(0.1)
    client.close()
    listener.close()
    return port


def test_a_port_in_time_wait_is_free_and_a_listened_one_is_not() -> None:
    port = _time_wait_port()
    plain = socket.socket()
    try:
        with pytest.raises(OSError):
            plain.bind(("127.0.0.1", port))  # what the old check did: refused
    finally:
        plain.close()
    assert devnet._port_free(port)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert not devnet._port_free(int(busy.getsockname()[1]))


def test_up_is_idempotent_and_a_restart_keeps_the_port(tmp_path: Path) -> None:
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path), "COMPTOIR_DEVNET_BLOCK_TIME": "0"})
    first = devnet.up(settings, port=0)
    try:
        first.w3.eth.get_block("latest")  # a keep-alive connection the node will close
        again = devnet.up(settings, port=0)
        assert (again.pid, again.rpc_url) == (first.pid, first.rpc_url)
        devnet.down(settings)
        restarted = devnet.up(settings, port=0)  # at once: the old sockets are in TIME_WAIT
        assert restarted.rpc_url == first.rpc_url and restarted.pid != first.pid
        assert restarted.deployment == first.deployment  # the chain state came back too
    finally:
        devnet.down(settings)


@pytest.mark.parametrize("block_time", [1, 0])
def test_the_clock_follows_wall_time_while_idle(tmp_path: Path, block_time: int) -> None:
    env = {"COMPTOIR_HOME": str(tmp_path), "COMPTOIR_DEVNET_BLOCK_TIME": str(block_time)}
    settings = load_settings(env)
    net = devnet.up(settings, port=0)
    try:
        before = net.w3.eth.get_block("latest")
        time.sleep(3.5)
        after = net.w3.eth.get_block("latest")
        if block_time:
            assert after["number"] > before["number"]
            assert after["timestamp"] >= before["timestamp"] + 2
        else:  # mining only on transactions: the chain's clock stands still
            assert after["number"] == before["number"]
        # transactions are still mined at once, not at the next interval
        started = time.monotonic()
        client = net.client(1)
        client.approve(1)
        assert time.monotonic() - started < max(block_time, 1) * 10
    finally:
        devnet.down(settings)


def test_devnet_up_on_a_running_stack_restarts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {"COMPTOIR_DEVNET_PORT": "0"}
    try:
        first = cli(home, "devnet", "up", "--workers", "1", timeout=300, **env)
        assert first.returncode == 0, first.stdout + first.stderr
        stack_file = home / "devnet" / "stack.json"
        before = json.loads(stack_file.read_text())
        second = cli(home, "devnet", "up", "--workers", "1", timeout=300, **env)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "nothing was restarted" in second.stdout
        after = json.loads(stack_file.read_text())
        assert [s["pid"] for s in after["services"]] == [s["pid"] for s in before["services"]]
        assert after["urls"] == before["urls"]
        # another worker count is a real change: the stack is restarted for it
        third = cli(home, "devnet", "up", "--workers", "2", timeout=300, **env)
        assert third.returncode == 0, third.stdout + third.stderr
        assert "nothing was restarted" not in third.stdout
    finally:
        cli(home, "devnet", "down", timeout=120)
