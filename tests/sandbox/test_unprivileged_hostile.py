"""A non-root worker (an ordinary user made for the test, no per-job uid, no cgroups)
against hostile outputs and packages: the walls that must hold without root do, the
worker says which isolation level it has and refuses a stronger requirement, and the
host is checked afterwards (no leftovers, no process of that user, nothing privileged)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from comptoir.testing.hostile import (
    DEEP,
    FLOOD,
    LONG_PATH,
    RACE,
    SPARSE,
    as_user,
    oci_image,
    privileged_members,
    tar_bytes,
    unprivileged_user,
)

USER = "comptoir-sbx"

SCRIPT = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    from comptoir.apps import build_bundle, prepare_app
    from comptoir.exceptions import ConfigError
    from comptoir.sandbox import BwrapExecutor, SandboxJob, SandboxLimits
    from comptoir.testing.hostile import privileged_files

    base = Path(sys.argv[1])
    apps = json.loads(Path(sys.argv[2]).read_text())
    ex = BwrapExecutor(work_root=base / "work")
    report = {"isolation": ex.isolation().level}
    try:
        ex.require_isolation("full")
        report["refusal"] = None
    except ConfigError as exc:
        report["refusal"] = str(exc)
    limits = SandboxLimits(wall_time_s=30, memory_bytes=256 << 20, output_bytes=8 << 20,
                           max_output_files=1000, max_processes=32)
    for name, (code, args, runs) in apps.items():
        src = base / "src" / name
        src.mkdir(parents=True)
        (src / "comptoir.json").write_text('{"name": "t", "command": ["python3", "m.py"]}')
        (src / "m.py").write_text(code)
        app = prepare_app("bundle", build_bundle(src), base / "cache")
        for i in range(runs):
            out = base / "out" / f"{name}{i}"
            r = ex.run_sync(SandboxJob(app=app, output_dir=out, args=args, limits=limits))
            copied = {p.relative_to(out).as_posix(): p.read_text(errors="replace")
                      for p in out.rglob("*") if p.is_file()}
            report[f"{name}{i}"] = [r.outcome.value, r.message, copied]
    image = Path(sys.argv[3]).read_bytes()
    app = prepare_app("oci", image, base / "cache-oci")
    report["oci_bad"] = privileged_files(app.root, forbid_root_owner=False)
    r = ex.run_sync(SandboxJob(app=app, output_dir=base / "out" / "oci", limits=limits))
    report["oci"] = [r.outcome.value, r.message, (base / "out" / "oci" / "r").read_text()]
    report["work_left"] = sorted(p.name for p in (base / "work").iterdir()
                                 if not p.name.endswith(".lock"))
    print(json.dumps(report))
""")


@pytest.fixture(scope="module")
def sandbox_user() -> Iterator[pwd.struct_passwd]:
    with unprivileged_user(USER) as user:
        yield user


def test_non_root_worker_against_hostile_outputs_and_packages(
    sandbox_user: pwd.struct_passwd, shell_image_layer: bytes
) -> None:
    uid, gid = sandbox_user.pw_uid, sandbox_user.pw_gid
    base = Path(tempfile.mkdtemp(prefix="comptoir-nonroot-"))
    try:
        os.chown(base, uid, gid)
        keys = base / "keys"  # the worker's own secrets: 0600, its user's
        keys.mkdir()
        (keys / "keystore.json").write_text("worker private key")
        (keys / "f").write_text("worker private key")
        for p in (keys, keys / "keystore.json", keys / "f"):
            os.chown(p, uid, gid)
            os.chmod(p, 0o700 if p.is_dir() else 0o600)
        apps = {
            "sparse": (SPARSE, "", 1),
            "deep": (DEEP, "", 1),
            "long": (LONG_PATH, "", 1),
            "flood": (FLOOD, "", 1),
            "race": (RACE, f"{keys / 'keystore.json'}:{keys}", 10),
        }
        (base / "apps.json").write_text(json.dumps(apps))
        payload = b"#!/bin/sh\necho ran > /comptoir/out/r\n"
        image = oci_image(
            [shell_image_layer, tar_bytes(privileged_members(payload), gz=True)],
            entrypoint=["/bin/sh", "/priv/suid-root"],
        )
        (base / "image.tar").write_bytes(image)
        src_root = Path(__file__).resolve().parents[2] / "src"
        proc = subprocess.run(
            as_user(
                sandbox_user,
                sys.executable,
                "-c",
                SCRIPT,
                str(base),
                str(base / "apps.json"),
                str(base / "image.tar"),
            ),
            capture_output=True,
            text=True,
            timeout=300,
            env={"PATH": os.environ["PATH"], "PYTHONPATH": str(src_root), "HOME": str(base)},
        )
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        assert report["isolation"] == "reduced"
        refusal = report["refusal"]
        assert refusal is not None and "'reduced'" in refusal and "run as root" in refusal
        for name in ("sparse0", "deep0", "long0", "flood0"):
            assert report[name][0] == "output_limit", (name, report[name])
        for i in range(10):
            outcome, message, copied = report[f"race{i}"]
            assert outcome == "success", message
            assert list(copied.values()) == ["mine"], copied  # never the worker's keystore
        assert report["oci_bad"] == []
        assert report["oci"][0] == "success" and report["oci"][2] == "ran\n", report["oci"]
        assert report["work_left"] == [], report["work_left"]  # deep trees cleaned too
        left = [
            (p.pid, p.info["status"], p.info["cmdline"])
            for p in psutil.process_iter(["uids", "status", "cmdline"])
            if p.info["uids"].real == uid and p.info["status"] != psutil.STATUS_ZOMBIE
        ]
        assert left == []  # no process of the job outlived it (zombies hold nothing)
    finally:
        shutil.rmtree(base, ignore_errors=True)
