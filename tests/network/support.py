"""The CLI run as a user runs it: a subprocess with its own home, no traceback ever."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

COMPTOIR = [sys.executable, "-m", "comptoir.cli"]


def cli_env(home: Path, **env: str) -> dict[str, str]:
    """The environment of a party: its own home, nothing of the test's COMPTOIR_* settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    base.update({"COMPTOIR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "250", **env})
    if "COMPTOIR_ANVIL" in os.environ:
        base.setdefault("COMPTOIR_ANVIL", os.environ["COMPTOIR_ANVIL"])
    return base


def cli(
    home: Path, *args: str, timeout: float = 300, prefix: Sequence[str] = (), **env: str
) -> subprocess.CompletedProcess[str]:
    """`comptoir ARGS` in `home` (run under `prefix`, e.g. 'ip netns exec NS', when given)."""
    home.mkdir(parents=True, exist_ok=True)  # the working folder too: results land there
    return subprocess.run(
        [*prefix, *COMPTOIR, *args],
        capture_output=True,
        text=True,
        env=cli_env(home, **env),
        timeout=timeout,
        check=False,
        cwd=home,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The one clear sentence of a failed command (exit 1, no traceback)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return " ".join(proc.stderr.split())


def join(
    home: Path,
    name: str,
    rpc_url: str,
    hub: str,
    *,
    market_url: str | None = None,
    storage_url: str | None = None,
    prefix: Sequence[str] = (),
    use: bool = True,
) -> None:
    """What a party runs to know a network (its operator gives the values): add, then use
    (or not: later commands then name it with --network)."""
    args = ["network", "add", name, "--rpc-url", rpc_url, "--hub", hub]
    args += ["--market-url", market_url] if market_url else []
    args += ["--storage-url", storage_url] if storage_url else []
    ok(cli(home, *args, prefix=prefix))
    if use:
        ok(cli(home, "network", "use", name, prefix=prefix))


def deploy(home: Path, name: str, rpc_url: str, prefix: Sequence[str] = ()) -> dict[str, object]:
    """The operator's two commands: add the network by its RPC URL, deploy the protocol
    there (account 0); the deployment record."""
    ok(cli(home, "network", "add", name, "--rpc-url", rpc_url, prefix=prefix))
    deployed = ok(cli(home, "protocol", "deploy", "--network", name, "-w", "devnet:0", "--json"))
    return dict(json.loads(deployed))
