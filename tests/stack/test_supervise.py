"""The services' supervisor with real processes: a service that dies is started again
with back-off, a configuration error is not retried, a stop stops everything, and a child
never outlives its supervisor."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from comptoir.supervise import MAX_BACKOFF, SupervisorState, backoff

# dies by SIGKILL the first two times, then stays up
FLAKY = textwrap.dedent(
    """
    import os, signal, sys, time
    counter = sys.argv[1]
    n = int(open(counter).read()) if os.path.exists(counter) else 0
    open(counter, "w").write(str(n + 1))
    if n < 2:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(600)
    """
)


def _start(tmp: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    state = tmp / "state.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comptoir.supervise",
            "--name",
            "svc",
            "--state",
            str(state),
            "--",
            *args,
        ],
        start_new_session=True,
    )
    return proc, state


def _until(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(50) == MAX_BACKOFF


def test_a_dying_service_is_restarted_then_stopped_with_its_supervisor(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    proc, state_file = _start(tmp_path, "-c", FLAKY, str(counter))
    try:

        def settled() -> bool:
            st = SupervisorState.load(state_file)
            return st is not None and st.state == "running" and st.restarts == 2

        _until(settled)
        state = SupervisorState.load(state_file)
        assert state is not None and state.last_exit == -signal.SIGKILL
        _until(lambda: counter.read_text() == "3")  # the third start, which stays up
        child = psutil.Process(state.child_pid)
        assert child.is_running() and child.ppid() == proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # what the stack's stop does
    assert proc.wait(15) == 0
    stopped = SupervisorState.load(state_file)
    assert stopped is not None and stopped.state == "stopped"
    assert not psutil.pid_exists(child.pid) or child.status() == psutil.STATUS_ZOMBIE


def test_a_configuration_error_is_not_retried(tmp_path: Path) -> None:
    proc, state_file = _start(tmp_path, "-c", "import sys; sys.exit(2)")
    assert proc.wait(30) == 2
    state = SupervisorState.load(state_file)
    assert state is not None and (state.state, state.restarts) == ("failed", 0)


def test_the_child_does_not_outlive_a_killed_supervisor(tmp_path: Path) -> None:
    proc, state_file = _start(tmp_path, "-c", "import time; time.sleep(600)")
    try:

        def has_child() -> bool:
            st = SupervisorState.load(state_file)
            return st is not None and st.child_pid is not None

        _until(has_child)
        state = SupervisorState.load(state_file)
        assert state is not None and state.child_pid is not None
        child = psutil.Process(state.child_pid)
        proc.kill()  # the supervisor alone, not its group
        proc.wait(10)
        _until(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, 15)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
