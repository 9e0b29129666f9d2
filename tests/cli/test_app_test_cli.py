"""`comptoir app test DIR`: an app run here, in the workers' sandbox, with its outputs."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ._cli import comptoir, ok, one_sentence


def test_app_test_runs_in_the_sandbox_and_shows_outputs(tmp_path: Path) -> None:
    ok(comptoir(tmp_path, "app", "init", "good"))
    (tmp_path / "data.txt").write_text("some rows\n")
    out = ok(comptoir(tmp_path, "app", "test", "good", "--args", "100", "--dataset", "data.txt"))
    assert "success" in out and "25 primes below 100" in out  # the app's stdout tail
    report = json.loads(
        ok(comptoir(tmp_path, "app", "test", "good", "--args", "100", "--output", "o", "--json"))
    )
    result = (tmp_path / "o" / "result.json").read_bytes()
    # the digest a worker would commit to: the determinism file's sha256
    assert report["digest"] == hashlib.sha256(result).hexdigest()
    assert report["files"] == ["result.json"] and json.loads(result)["primes"] == 25
    built = json.loads(ok(comptoir(tmp_path, "app", "build", "good", "--json")))
    assert report["checksum"] == built["checksum"]


def test_a_failing_app_shows_its_stderr_and_exits_4(tmp_path: Path) -> None:
    ok(comptoir(tmp_path, "app", "init", "bad"))
    (tmp_path / "bad" / "main.py").write_text(
        "import sys\nprint('working')\nprint('boom: bad input', file=sys.stderr)\nsys.exit(3)\n"
    )
    proc = comptoir(tmp_path, "app", "test", "bad")
    assert proc.returncode == 4 and "Traceback" not in proc.stdout + proc.stderr
    assert "app_failed" in proc.stdout and "boom: bad input" in proc.stdout
    assert "working" in proc.stdout
    missing = comptoir(tmp_path, "app", "test", "nowhere")
    assert "does not exist" in one_sentence(missing)
