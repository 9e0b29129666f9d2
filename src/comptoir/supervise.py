"""A process supervisor for the stack's services: restart a service that dies, with
back-off, and record what happened where `devnet status` reads it.

``python -m comptoir.supervise --name market --state market.json -- -m comptoir.stack
market ...`` runs ``python -m comptoir.stack market ...`` as its child. When the child
dies (a signal, or an exit status other than 0 and 2) it is started again after 1 s,
then 2 s, 4 s... up to `MAX_BACKOFF`; a child that ran `STABLE_AFTER` seconds starts the
back-off over. Exit status 2 is a configuration error (the services' entry points say so
in one sentence): restarting cannot fix it, so the supervisor stops and exits 2. After
`MAX_RAPID_RESTARTS` deaths in a row without a stable run it gives up too. SIGTERM or
SIGINT stops the child (the stack signals the whole process group) and the supervisor.
The child gets SIGTERM if the supervisor itself dies (Linux parent-death signal).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from types import FrameType

MAX_BACKOFF = 30.0
STABLE_AFTER = 60.0
MAX_RAPID_RESTARTS = 8
CONFIG_ERROR = 2
_PR_SET_PDEATHSIG = 1


@dataclass
class SupervisorState:
    """What `<state file>` holds (JSON)."""

    name: str
    state: str  # starting, running, backoff, stopped, failed
    child_pid: int | None = None
    restarts: int = 0
    last_exit: int | None = None  # exit status, or minus the signal that killed it
    last_restart: float | None = None
    message: str = ""

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)) + "\n")
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: str | Path) -> SupervisorState | None:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor goes (no orphans)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def backoff(failures: int) -> float:
    """Seconds to wait before restart number `failures` (1, 2, 4, ... MAX_BACKOFF)."""
    return float(min(MAX_BACKOFF, 2 ** max(failures - 1, 0)))


def supervise(
    name: str,
    command: list[str],
    state_path: Path,
    sleep: Callable[[float], None] | None = None,
) -> int:
    """Runs `command` until told to stop; the exit status to end with."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def wait(seconds: float) -> None:  # a stop request cuts the back-off short
        deadline = time.monotonic() + seconds
        while not stopping and time.monotonic() < deadline:
            time.sleep(min(0.2, max(deadline - time.monotonic(), 0)))

    pause = sleep or wait

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    state = SupervisorState(name, "starting")
    failures = 0
    while not stopping:
        started = time.monotonic()
        child = subprocess.Popen(command, preexec_fn=_die_with_parent)
        state.state, state.child_pid = "running", child.pid
        state.save(state_path)
        code = child.wait()
        ran = time.monotonic() - started
        state.last_exit, state.child_pid = code, None
        if stopping:
            break
        if code == CONFIG_ERROR:
            state.state, state.message = "failed", "configuration error; see the log"
            state.save(state_path)
            return CONFIG_ERROR
        failures = 1 if ran >= STABLE_AFTER else failures + 1
        if failures > MAX_RAPID_RESTARTS:
            state.state = "failed"
            state.message = f"died {failures - 1} times in a row; see the log"
            state.save(state_path)
            return 1
        delay = backoff(failures)
        how = f"signal {-code}" if code < 0 else f"status {code}"
        state.state, state.message = "backoff", f"died with {how}; restarting in {delay:.0f} s"
        state.save(state_path)
        print(f"supervisor: {name} {state.message}", file=sys.stderr, flush=True)
        pause(delay)
        if stopping:
            break
        state.restarts += 1
        state.last_restart = time.time()
    state.state, state.message = "stopped", ""
    state.save(state_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comptoir-supervise", description=__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("--state", type=Path, required=True, help="JSON state file")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then python arguments")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if not args:
        parser.error("give the service's python arguments after --")
    return supervise(ns.name, [sys.executable, *args], ns.state)


if __name__ == "__main__":
    sys.exit(main())
