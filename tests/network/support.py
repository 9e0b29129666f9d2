"""The CLI run as a user runs it: a subprocess with its own home, no traceback ever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

COMPTOIR = [sys.executable, "-m", "comptoir.cli"]


def cli(
    home: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    base.update({"COMPTOIR_HOME": str(home), "NO_COLOR": "1", "COLUMNS": "250", **env})
    if "COMPTOIR_ANVIL" in os.environ:
        base.setdefault("COMPTOIR_ANVIL", os.environ["COMPTOIR_ANVIL"])
    home.mkdir(parents=True, exist_ok=True)  # the working folder too: results land there
    return subprocess.run(
        [*COMPTOIR, *args],
        capture_output=True,
        text=True,
        env=base,
        timeout=timeout,
        check=False,
        cwd=home,
    )


def failure(proc: subprocess.CompletedProcess[str]) -> str:
    """The one clear sentence of a failed command (exit 1, no traceback)."""
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return " ".join(proc.stderr.split())
