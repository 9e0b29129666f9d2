"""Driving `comptoir` as a user does: a subprocess with a clean environment, text read back,
never a traceback. Shared by the CLI test modules."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

COMPTOIR = [sys.executable, "-m", "comptoir.cli"]
PASSWORD = "a long enough password"


def cli_env(home: Path, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    base.update({"COMPTOIR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "200", **env})
    if "COMPTOIR_ANVIL" in os.environ:
        base["COMPTOIR_ANVIL"] = os.environ["COMPTOIR_ANVIL"]
    return base


def comptoir(
    home: Path, *args: str, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMPTOIR, *args],
        capture_output=True,
        text=True,
        env=cli_env(home, **env),
        timeout=timeout,
        cwd=home,
    )


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return proc.stdout


def one_sentence(proc: subprocess.CompletedProcess[str]) -> str:
    """A failure: exit 1, no traceback, one short message on stderr (rich may wrap it; an
    unknown name adds a 'Did you mean' question)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) <= 4, proc.stderr
    message = " ".join(proc.stderr.split())
    assert message.endswith((".", "?")) and len(message) < 320, message
    return message


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def background(
    home: Path, *args: str, log: Path | None = None, **env: str
) -> subprocess.Popen[str]:
    """A long-running command (its own session, so a test can signal it alone)."""
    out = open(log or home / f"{args[0]}-{args[1]}.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen(
        [*COMPTOIR, *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=cli_env(home, **env),
        cwd=home,
        start_new_session=True,
        text=True,
    )


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def wait_online(scheduler: str, *procs: subprocess.Popen[str], timeout: float = 90) -> None:
    """Until a worker is online at `scheduler` (the started processes must stay up)."""
    import contextlib
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a service exited"
        with contextlib.suppress(httpx.HTTPError, ValueError):
            if any(w["online"] for w in httpx.get(f"{scheduler}/v1/workers").json()):
                return
        time.sleep(0.5)
    raise AssertionError("the worker never registered")


def wait_answering(scheduler: str, serve: subprocess.Popen[str], timeout: float = 90) -> None:
    """Until the scheduler started as `serve` answers its status endpoint."""
    import contextlib
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.poll() is None, "the scheduler exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{scheduler}/v1/status", timeout=5).status_code == 200:
                return
        time.sleep(0.5)
    raise AssertionError("the scheduler never answered")
