"""The wheel as a user gets it: built, installed into a fresh virtualenv outside the source
tree (no compiler, no S3 or PostgreSQL driver), then a local stack and a verified run."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from comptoir.chain.sources import ARTIFACTS_DIR

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPTOIR_", "VIRTUAL_ENV"))}
    base.update({"NO_COLOR": "1", "COLUMNS": "200", **env})
    return subprocess.run(
        cmd, cwd=cwd, capture_output=True, text=True, env=base, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dist = tmp_path_factory.mktemp("dist")
    proc = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        cwd=dist,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = dist.glob("comptoir-*.whl")
    return built


def test_wheel_ships_the_compiled_contracts_and_optional_drivers(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    shipped = {p.name for p in ARTIFACTS_DIR.glob("*.json")}
    assert {f"comptoir/contracts/artifacts/{n}" for n in shipped} <= names
    assert "comptoir/contracts/Hub.vy" in names
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    core = [r for r in requires if "extra ==" not in r]
    for optional in ("vyper", "snekmate", "boto3", "psycopg", "titanoboa"):
        assert not any(optional in r for r in core), f"{optional} is a core dependency"
    assert any("boto3" in r and 'extra == "s3"' in r for r in requires)
    assert any("psycopg" in r and 'extra == "postgres"' in r for r in requires)
    assert not any("==" in r for r in core), "core dependencies are ranges; pins are in the lock"


@pytest.mark.devnet
def test_installed_wheel_runs_the_stack_and_a_verified_run(wheel: Path, tmp_path: Path) -> None:
    anvil = os.environ.get("COMPTOIR_ANVIL")
    if not anvil:
        pytest.skip("COMPTOIR_ANVIL is not set (make test sets it)")
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", str(venv)], tmp_path, 120).returncode == 0
    pip = _run(
        [str(venv / "bin/pip"), "install", "-q", "-c", str(ROOT / "requirements.lock"), str(wheel)],
        tmp_path,
        600,
    )
    assert pip.returncode == 0, pip.stdout[-2000:] + pip.stderr[-2000:]
    python = str(venv / "bin/python")
    where = _run([python, "-c", "import comptoir; print(comptoir.__file__)"], tmp_path, 60)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    no_compiler = _run([python, "-c", "import vyper"], tmp_path, 60)
    assert no_compiler.returncode != 0, "vyper must not come with a plain install"

    comptoir = [str(venv / "bin/comptoir"), "--home", str(tmp_path / "home")]
    version = _run([*comptoir, "--version"], tmp_path, 60)
    assert version.returncode == 0 and version.stdout.startswith("comptoir 0."), version.stdout

    env = {"COMPTOIR_ANVIL": anvil, "COMPTOIR_DEVNET_PORT": "0"}
    try:
        up = _run([*comptoir, "devnet", "up", "--workers", "1"], tmp_path, 300, **env)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        deposit = _run(
            [*comptoir, "account", "deposit", "1000", "--wallet", "devnet:1"], tmp_path, 120, **env
        )
        assert deposit.returncode == 0, deposit.stdout + deposit.stderr
        request = ["--volume", "2", "--trust", "1", "--category", "TEST", "--timeout", "240"]
        run = _run(
            [*comptoir, "run", "primes", *request, "--wallet", "devnet:1"],
            tmp_path,
            300,
            **env,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "2/2 task(s) verified against the chain" in run.stdout, run.stdout
        assert '"primes": 1229' in run.stdout  # below 10000, task 0's bound
    finally:
        _run([*comptoir, "devnet", "down"], tmp_path, 120, **env)
