"""Apps that attack the worker through their outputs: sparse files, deep and long paths,
directory floods, symlinks swapped in while the worker reads. Each ends in a defined
outcome of the app (never a sandbox error), and the host is checked afterwards."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from comptoir.sandbox import BwrapExecutor, Outcome, SandboxJob, SandboxLimits
from comptoir.testing.hostile import DEEP, FLOOD, LONG_PATH, RACE, SPARSE, tree_bytes

from .conftest import MakeApp

LIMITS = SandboxLimits(
    wall_time_s=30,
    memory_bytes=256 << 20,
    output_bytes=8 << 20,
    max_output_files=1000,
    max_processes=32,
    tmp_bytes=16 << 20,
)


@pytest.fixture
def executor() -> Iterator[BwrapExecutor]:
    """An executor with job directories of its own: these tests check that no job
    directory is left, which jobs of tests running in parallel would otherwise break."""
    root = Path(tempfile.mkdtemp(prefix="comptoir-sbx-test-"))
    os.chmod(root, 0o711)  # the per-job uid traverses it, as bwrap needs
    yield BwrapExecutor(work_root=root)
    shutil.rmtree(root, ignore_errors=True)


def _run(executor: BwrapExecutor, app, out: Path, args: str = ""):  # type: ignore[no-untyped-def]
    return executor.run_sync(SandboxJob(app=app, output_dir=out, args=args, limits=LIMITS))


def _job_dirs(executor: BwrapExecutor) -> list[str]:
    return [p.name for p in executor.jobs_root.iterdir() if not p.name.endswith(".lock")]


@pytest.mark.parametrize(
    "code,reason",
    [
        (SPARSE, "more than"),
        (DEEP, "deeper than 64 levels"),
        (LONG_PATH, "longer than 1024 bytes"),
    ],
    ids=["sparse", "deep", "long-path"],
)
def test_app_made_trees_end_as_output_limit(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path, code: str, reason: str
) -> None:
    r = _run(executor, make_app(code), tmp_path / "out")
    assert r.outcome is Outcome.OUTPUT_LIMIT, (r.message, r.stderr)
    assert reason in r.message
    assert list((tmp_path / "out").iterdir()) == []  # nothing copied
    assert _job_dirs(executor) == []  # the job directory is gone, however deep


def test_directory_flood_is_an_output_limit(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    r = _run(executor, make_app(FLOOD), tmp_path / "out")
    assert r.outcome is Outcome.OUTPUT_LIMIT, (r.message, r.stderr)


def test_sparse_output_below_the_limit_succeeds_at_its_apparent_size(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    r = _run(executor, make_app(SPARSE.replace("1 << 30", "1 << 20")), tmp_path / "out")
    assert r.outcome is Outcome.SUCCESS, (r.message, r.stderr)
    assert r.output_bytes == 1 << 20
    assert (tmp_path / "out" / "sparse").stat().st_size == 1 << 20


def test_outputs_are_read_only_after_every_process_is_gone(
    executor: BwrapExecutor, make_app: MakeApp, tmp_path: Path
) -> None:
    secret_dir = tmp_path / "keys"
    secret_dir.mkdir()
    (secret_dir / "keystore.json").write_text("worker private key")
    (secret_dir / "f").write_text("worker private key")
    app = make_app(RACE)
    for i in range(5):
        out = tmp_path / f"out{i}"
        r = _run(executor, app, out, args=f"{secret_dir / 'keystore.json'}:{secret_dir}")
        assert r.outcome is Outcome.SUCCESS, (r.message, r.stderr)
        files = [p for p in out.rglob("*") if p.is_file()]
        copied = {p.relative_to(out).as_posix(): p.read_text() for p in files}
        # the swapper died wherever it was; links were neither followed nor copied
        assert list(copied.values()) == ["mine"], copied
        assert set(copied) <= {"d/f", "real/f"}, copied
        assert not any(p.is_symlink() for p in out.rglob("*"))
    left = [p for p in psutil.process_iter(["cmdline"]) if "comptoir-test-swapper" in str(p.info)]
    assert left == []
    assert _job_dirs(executor) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the full level needs a root worker")
def test_root_worker_reports_full_isolation(executor: BwrapExecutor) -> None:
    if not executor.enforcement["memory"].startswith("cgroup"):
        pytest.skip("this host gives the worker no memory cgroup")
    iso = executor.isolation()
    assert iso.level == "full" and iso.missing == ()
    assert executor.require_isolation("full") == iso


def test_deep_leftover_trees_are_cleaned_without_recursion(tmp_path: Path) -> None:
    from comptoir.apps.fstree import remove_tree

    fd = os.open(tmp_path, os.O_RDONLY)
    os.mkdir("top", dir_fd=fd)
    cur = os.open("top", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    for _ in range(3000):  # deeper than Python's recursion limit and than PATH_MAX
        os.mkdir("d" * 20, dir_fd=cur)
        nxt = os.open("d" * 20, os.O_RDONLY, dir_fd=cur)
        os.close(cur)
        cur = nxt
    os.chmod(f"/proc/self/fd/{cur}", 0o500)  # and read-only at the bottom
    os.close(cur)
    remove_tree(tmp_path / "top")
    assert not (tmp_path / "top").exists()
    assert tree_bytes(tmp_path) == 0
