"""`comptoir devnet ...` as a user runs it: a subprocess, real anvil, no traceback ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

COMPTOIR = [sys.executable, "-m", "comptoir.cli"]


def run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    base.update({"COMPTOIR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **env})
    if "COMPTOIR_ANVIL" in os.environ and "COMPTOIR_ANVIL" not in env:
        base["COMPTOIR_ANVIL"] = os.environ["COMPTOIR_ANVIL"]
    return subprocess.run([*COMPTOIR, *args], capture_output=True, text=True, env=base, timeout=60)


def assert_clean_failure(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stderr.strip()


def test_status_when_nothing_runs(tmp_path: Path) -> None:
    proc = run(tmp_path, "devnet", "status")
    assert proc.returncode == 0, proc.stderr
    assert "not running" in proc.stdout


def test_up_status_down_through_the_cli(tmp_path: Path) -> None:
    up = run(tmp_path, "devnet", "up", "--port", "0")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "Devnet ready." in up.stdout
        data = json.loads(run(tmp_path, "devnet", "status", "--json").stdout)
        assert data["running"] and data["deployed"] and data["chain_id"] == 31337
        assert data["deployment"]["hub"] in up.stdout and data["rpc_url"] in up.stdout
    finally:
        down = run(tmp_path, "devnet", "down")
    assert down.returncode == 0 and "Devnet stopped" in down.stdout
    assert "No devnet is running." in run(tmp_path, "devnet", "down").stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("devnet", "up", "--port", "0"), {"COMPTOIR_ANVIL": "/nonexistent/anvil"}, "make setup"),
        (("devnet", "status"), {"COMPTOIR_DEVNET_PORT": "eighty"}, "must be an integer"),
        (("devnet", "status"), {"COMPTOIR_RPC_URL": "ftp://x"}, "http(s) URL"),
    ],
)
def test_errors_are_one_red_sentence(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    message = assert_clean_failure(run(tmp_path, *args, **env))
    assert expected in message
    assert len(message.splitlines()) <= 2  # one sentence (rich may wrap a long one)


def test_unknown_subcommand_is_a_usage_error(tmp_path: Path) -> None:
    message = assert_clean_failure(run(tmp_path, "devnet", "sideways"), code=2)
    assert "No such command" in message
