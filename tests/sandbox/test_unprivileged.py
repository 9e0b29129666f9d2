"""The executor as an ordinary user (a volunteer's laptop): no per-job uid, no host
mounts, no cgroups. Runs a real worker-side script as ``nobody`` through setpriv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

NOBODY = 65534

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from comptoir.apps import build_bundle, prepare_app
    from comptoir.sandbox import BwrapExecutor, SandboxJob, SandboxLimits

    base = Path(sys.argv[1])
    apps = {
        "hello": "open('/comptoir/out/r', 'w').write('hi')",
        "output": "f = open('/comptoir/out/big', 'wb')\\nwhile True: f.write(b'x' * 65536)",
        "forkbomb": (
            "import os, time\\nwhile True:\\n  try: os.fork()\\n"
            "  except OSError: time.sleep(0.01)"
        ),
        "memory": "b = b'x' * (1 << 30)",
        "secret": "import os\\nprint(os.path.exists(%r))",
        "userns": "import ctypes\\nprint(ctypes.CDLL(None).unshare(0x10000000))",
    }
    ex = BwrapExecutor(work_root=base / "work")
    limits = SandboxLimits(wall_time_s=15, memory_bytes=256 << 20, output_bytes=4 << 20,
                           max_processes=16)
    report = {}
    for name, code in apps.items():
        src = base / "src" / name
        src.mkdir(parents=True)
        (src / "comptoir.json").write_text('{"name": "t", "command": ["python3", "m.py"]}')
        (src / "m.py").write_text(code % str(base / "secret.txt") if name == "secret" else code)
        app = prepare_app("bundle", build_bundle(src), base / "cache")
        r = ex.run_sync(SandboxJob(app=app, output_dir=base / "out" / name, limits=limits))
        report[name] = [r.outcome.value, r.stdout.decode(), r.enforcement, r.message]
    print(json.dumps(report))
""")


@pytest.fixture
def world_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="comptoir-unpriv-"))
    os.chown(path, NOBODY, NOBODY)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"),
    reason="needs root to become another user (the suite runs as root here)",
)
def test_executor_as_an_unprivileged_user(world_dir: Path) -> None:
    (world_dir / "secret.txt").write_text("host secret")
    os.chown(world_dir / "secret.txt", NOBODY, NOBODY)
    src_root = Path(__file__).resolve().parents[2] / "src"
    proc = subprocess.run(
        [
            "setpriv",
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            sys.executable,
            "-c",
            SCRIPT,
            str(world_dir),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(src_root), "HOME": str(world_dir)},
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["hello"][0] == "success", report
    assert report["output"][0] == "output_limit"
    assert report["forkbomb"][0] == "process_limit"
    assert report["memory"][0] == "memory_limit"
    assert report["secret"][:2] == ["success", "False\n"]
    assert report["userns"][:2] == ["success", "-1\n"]  # no nested user namespace
    assert report["hello"][2]["output"] == "polling + RLIMIT_FSIZE"
    assert report["hello"][2]["memory"] == "RLIMIT_AS"
