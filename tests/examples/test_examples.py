"""Every example runs as its README says, against a real local stack."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from comptoir import stack

pytestmark = pytest.mark.devnet

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(local_stack: stack.Stack, script: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    env["COMPTOIR_HOME"] = str(local_stack.settings.home)
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=local_stack.settings.home,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stdout


def test_requester_bag_of_tasks(local_stack: stack.Stack) -> None:
    out = run_example(local_stack, "requester_bag_of_tasks/run.py", "3", "2")
    assert out.count(": verified") == 3 and "3/3 verified" in out


def test_chess_callback_answers_on_chain(local_stack: stack.Stack) -> None:
    out = run_example(local_stack, "chess_callback/run.py")
    assert out.count(": verified") == 3
    assert "checkmate (ok)" in out and "stalemate (ok)" in out and "neither (ok)" in out


def test_chess_judge_rules() -> None:
    sys.path.insert(0, str(EXAMPLES / "chess_callback" / "app"))
    try:
        import main as chess  # the app's own module, run here outside the sandbox
    finally:
        sys.path.pop(0)
    cases = {
        "6rk/5Npp/8/8/8/8/8/6K1 b - - 0 1": chess.CHECKMATE,  # smothered mate
        "k7/8/1Q6/8/8/8/8/7K b - - 0 1": chess.STALEMATE,
        # an en passant square in the FEN
        "8/8/8/8/4pP2/8/8/4K1k1 b - f3 0 1": chess.NEITHER,
        "8/8/8/8/8/8/8/8 w - - 0 1": chess.INVALID,
        "not a position": chess.INVALID,
    }
    for fen, verdict in cases.items():
        assert chess.judge(fen) == verdict, fen
