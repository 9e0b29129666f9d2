"""`make gas` keeps working: the script runs every scenario on anvil and writes its JSON.

Figures are not asserted (they are measurements, reported by the script); only that the
benchmark produces all five of them as positive integers, and that a bag costs less per
task than a single task (the protocol's batching at work).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
KEYS = ["match", "task_1w_v1", "task_3w_v1", "task_1w_bag100", "task_3w_bag100"]


def test_gas_benchmark_writes_all_figures(tmp_path: Path) -> None:
    out = tmp_path / "gas.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gas.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert list(figures) == KEYS
    assert all(isinstance(figures[k], int) and figures[k] > 0 for k in KEYS)
    assert figures["task_1w_bag100"] < figures["task_1w_v1"]
    assert figures["task_3w_bag100"] < figures["task_3w_v1"]
    assert "matchOrders" in done.stdout and "iExec" in done.stdout
