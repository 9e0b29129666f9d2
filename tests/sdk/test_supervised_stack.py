"""The local stack's services run supervised: one that dies is started again, answers,
and `comptoir devnet status` says it was restarted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from comptoir import stack
from comptoir.supervise import SupervisorState

pytestmark = pytest.mark.devnet


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_service_is_restarted_and_reported(local_stack: stack.Stack) -> None:
    market = local_stack.service("market")
    assert market is not None and market.state and market.url
    before = SupervisorState.load(market.state)
    assert before is not None and before.state == "running" and before.child_pid
    os.kill(before.child_pid, signal.SIGKILL)  # a crash, as a segfault would be

    deadline = time.monotonic() + 120
    while True:
        now = SupervisorState.load(market.state)
        restarted = now is not None and now.restarts == before.restarts + 1
        if restarted and now.state == "running" and _answers(f"{market.url}/v1/info"):
            break
        assert time.monotonic() < deadline, f"the market was not restarted: {now}"
        time.sleep(0.3)
    assert now.child_pid != before.child_pid and now.last_exit == -signal.SIGKILL

    states = {s.name: s for s in stack.status(local_stack.settings)}
    assert states["market"].running and states["market"].restarts == before.restarts + 1
    assert states["storage"].running and states["storage"].restarts == 0
    env = {**os.environ, "COMPTOIR_HOME": str(local_stack.settings.home)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from comptoir.cli import main; main()",
            "devnet",
            "status",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    services = {s["name"]: s for s in json.loads(out.stdout)["services"]}
    assert services["market"]["restarts"] == before.restarts + 1
    assert Path(services["market"]["log"]).exists()
