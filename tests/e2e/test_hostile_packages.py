"""Hostile packages and outputs through the real stack (anvil, storage, scheduler and
worker processes): each ends in the failure record the contract names, agreed by the
replicas and paid as the protocol says; the worker keeps serving; and its host is checked
afterwards (no privileged file in its cache, its disk back, no process of a job left).

Run on a root worker (per-job uids, cgroups) and on a worker running as an ordinary
user made for the test (isolation "reduced", which it must be allowed explicitly)."""

from __future__ import annotations

import io
import os
import pwd
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from comptoir.chain.build import build_dir
from comptoir.chain.client import APP_TYPE_BUNDLE, APP_TYPE_OCI
from comptoir.chain.types import Deal
from comptoir.storage import StorageClient
from comptoir.testing.hostile import (
    RACE,
    as_user,
    entry,
    gzip_bomb,
    oci_image,
    privileged_files,
    privileged_members,
    shell_layer,
    tar_bytes,
    tree_bytes,
    unprivileged_user,
)

from .apps import ECHO
from .conftest import APP_PRICE, POOL_PRICE, WORKERS_BASE, Pool, Proc, wait_for

SANDBOX_UIDS = range(1_500_000_000, 1_500_000_000 + 4096)  # the executor's per-job uids
USER = "comptoir-e2e-worker"

# Index 0: a sparse file far over the output limit; 1: 1 200 nested directories;
# 2: a path that fits in the sandbox but not under the worker's longer job path.
HOSTILE_OUTPUTS = """
import os
index = int(os.environ["COMPTOIR_TASK_INDEX"])
os.chdir("/comptoir/out")
if index == 0:
    with open("sparse", "wb") as f:
        f.truncate(1 << 30)
elif index == 1:
    for _ in range(1200):
        os.mkdir("d")
        os.chdir("d")
    open("leaf", "w").write("x")
elif index == 2:
    for _ in range(19):
        os.mkdir("n" * 200)
        os.chdir("n" * 200)
    open("leaf", "w").write("x")
"""


def _bomb() -> bytes:
    """A 250 KiB bundle that declares a 256 MiB file."""
    manifest = entry("comptoir.json", data=b'{"name": "bomb", "command": ["true"]}')
    return gzip_bomb("big", 256 << 20, prefix=[manifest])


def _register(pool: Pool, package: bytes, app_type: int) -> int:
    digest = pool.storage.upload(package)
    return pool["app_dev"].register_app(
        "hostile", pool.storage.blob_url(digest), bytes.fromhex(digest), app_type
    )


def _status(pool: Pool, deal: Deal, index: int = 0) -> str | None:
    view = pool.task(deal, index)
    assert view is not None and view["status"] == "finalized", view
    return None if view["failure"] is None else str(view["failure"]["status"])


def _archive_members(pool: Pool, deal: Deal) -> dict[str, bytes]:
    view = pool.task(deal)
    assert view is not None and view["result_blob"], view
    with StorageClient(pool.storage.url) as client:
        blob = client.download(view["result_blob"])
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        return {
            m.name: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


def _host_is_clean(work_dirs: list[Path], *, root_worker: bool) -> None:
    for work in work_dirs:
        apps = work / "cache" / "apps"
        for unpacked in apps.iterdir() if apps.exists() else []:
            for sub in ("rootfs", "app"):
                if (unpacked / sub).exists():
                    bad = privileged_files(unpacked / sub, forbid_root_owner=root_worker)
                    assert bad == [], bad
        assert list((work / "jobs").iterdir()) == []  # every job directory is gone
        # the bombs were never expanded: the cache holds packages, not what they declare
        assert tree_bytes(work) < 64 << 20, tree_bytes(work)
    _no_process_left(lambda uid: uid in SANDBOX_UIDS)


def _no_process_left(owned: Callable[[int], bool]) -> None:
    """No live process of those uids, allowing a killed job's namespace to finish dying."""

    def live() -> list[tuple[int, str, object]]:
        return [
            (p.pid, p.info["status"], p.info["cmdline"])
            for p in psutil.process_iter(["uids", "status", "cmdline"])
            if p.info["uids"]
            and owned(p.info["uids"].real)
            and p.info["status"] != psutil.STATUS_ZOMBIE
        ]

    try:
        wait_for(lambda: not live(), 15, "the jobs' processes to be gone")
    except AssertionError:
        raise AssertionError(f"processes left: {live()}") from None


@pytest.fixture(scope="module")
def layer_sh(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return shell_layer(tmp_path_factory.mktemp("shell"))


def test_hostile_packages_and_outputs_on_root_workers(pool: Pool, layer_sh: bytes) -> None:
    bomb = _register(pool, _bomb(), APP_TYPE_BUNDLE)
    payload = b"#!/bin/sh\necho ran-as-meant > /comptoir/out/r\n"
    image = oci_image(
        [layer_sh, tar_bytes(privileged_members(payload), gz=True)],
        entrypoint=["/bin/sh", "/priv/suid-root"],
    )
    privileged = _register(pool, image, APP_TYPE_OCI)
    outputs = pool.register_app({"main.py": HOSTILE_OUTPUTS})
    echo = pool.register_app({"main.py": ECHO})
    category = pool["deployer"].create_category("E2E-HOSTILE", 20)
    pool.start_scheduler()
    for w in ("w1", "w2"):
        pool.start_worker(w)
    pool.wait_workers(("w1", "w2"))
    before = pool.balances()

    # trust 4 needs both fresh workers to agree: they agree on the refusal
    bomb_deal = pool.deal(bomb, trust=4, category=category)
    priv_deal = pool.deal(privileged, category=category)
    out_deal = pool.deal(outputs, volume=3, category=category)
    for deal in (bomb_deal, priv_deal, out_deal):
        pool.wait_settled(deal, 120)
    echo_deal = pool.deal(echo, category=category, params="after")  # still serving
    pool.wait_settled(echo_deal, 60)

    assert _status(pool, bomb_deal) == "PACKAGE_LIMIT"
    view = pool.task(bomb_deal)
    assert view is not None and len({r["result_hash"] for r in view["replicas"]}) == 1
    assert len(view["replicas"]) == 2
    assert _status(pool, priv_deal) is None  # ran as its author meant
    assert _archive_members(pool, priv_deal) == {"r": b"ran-as-meant\n"}
    for index in range(3):  # never sandbox_error, never retried nor abandoned
        assert _status(pool, out_deal, index) == "OUTPUT_LIMIT", index
    assert _status(pool, echo_deal) is None

    n = 1 + 1 + 3 + 1
    after = pool.balances()
    assert after["requester"] == before["requester"] - n * (APP_PRICE + POOL_PRICE)
    assert after["app_dev"] == before["app_dev"] + n * APP_PRICE
    # failures are paid like results: one replica each, two equal shares for the bomb
    earned = after["w1"] + after["w2"] - before["w1"] - before["w2"]
    assert earned == (n - 1) * WORKERS_BASE + 2 * (WORKERS_BASE // 2)
    pool.escrow_holds_everything()
    _host_is_clean([pool.tmp / "w1", pool.tmp / "w2"], root_worker=True)


# ---------------------------------------------------------------- a non-root worker


@pytest.fixture
def worker_user() -> Iterator[pwd.struct_passwd]:
    with unprivileged_user(USER) as user:
        yield user


def _start_as(pool: Pool, user: pwd.struct_passwd, home: Path, **env: str) -> Proc:
    base = pool._env()
    base.update(
        COMPTOIR_WORKER_KEY=pool.accounts["w3"].key.hex(),
        COMPTOIR_SCHEDULER_URL=pool.scheduler_url,
        COMPTOIR_WORKER_DIR=str(home / "work"),
        COMPTOIR_DEPLOYMENT=str(home / "deployment.json"),
        COMPTOIR_BUILD_DIR=str(home / "build"),
        COMPTOIR_WORKER_POLL="0.3",
        COMPTOIR_WORKER_HEARTBEAT="0.5",
        COMPTOIR_WORKER_MEMORY_LIMIT=str(256 << 20),
        COMPTOIR_WORKER_OUTPUT_LIMIT=str(8 << 20),
        COMPTOIR_WORKER_MAX_PROCESSES="32",
        COMPTOIR_WORKER_GPU="0",
        HOME=str(home),
    )
    base.update(env)
    argv = as_user(user, sys.executable, "-m", "comptoir.worker")
    proc = Proc("w3-unprivileged", argv, base, home / "worker.log")
    fh = open(proc.log, "ab")  # noqa: SIM115 - owned by the child until it exits
    proc.popen = subprocess.Popen(
        argv, env=base, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
    )
    fh.close()
    pool.procs.append(proc)
    return proc


def test_non_root_worker_states_its_isolation_and_holds(
    pool: Pool, worker_user: pwd.struct_passwd
) -> None:
    home = Path(tempfile.mkdtemp(prefix="comptoir-e2e-user-"))
    try:
        shutil.copy(pool.devnet.settings.devnet_dir / "deployment.json", home)
        # the contract artifacts, which the build cache keeps private to its writer
        shutil.copytree(build_dir(), home / "build" / "contracts")
        for p in (home, *home.rglob("*")):
            os.chown(p, worker_user.pw_uid, worker_user.pw_gid)
        bomb = _register(pool, _bomb(), APP_TYPE_BUNDLE)
        swapper = pool.register_app({"main.py": RACE})
        outputs = pool.register_app({"main.py": HOSTILE_OUTPUTS})
        category = pool["deployer"].create_category("E2E-NONROOT", 20)
        pool.start_scheduler()

        # below the default requirement ("full"), it refuses to start, in one sentence
        refused = _start_as(pool, worker_user, home)
        assert refused.popen is not None and refused.popen.wait(60) == 2, refused.log.read_bytes()
        log = refused.log.read_text()
        assert "can only isolate jobs at level 'reduced'" in log and "Traceback" not in log

        _start_as(pool, worker_user, home, COMPTOIR_WORKER_ISOLATION="reduced")
        pool.wait_workers(("w3",))
        work = home / "work"
        bomb_deal = pool.deal(bomb, category=category)
        swap_deal = pool.deal(swapper, category=category, params=f"{work}/journal.json:{work}")
        out_deal = pool.deal(outputs, volume=3, category=category)
        for deal in (bomb_deal, swap_deal, out_deal):
            pool.wait_settled(deal, 120)
        assert _status(pool, bomb_deal) == "PACKAGE_LIMIT"
        assert _status(pool, swap_deal) is None
        members = _archive_members(pool, swap_deal)
        assert list(members.values()) == [b"mine"], members  # no journal, no /etc/passwd
        for index in range(3):
            assert _status(pool, out_deal, index) == "OUTPUT_LIMIT", index
        started = (home / "worker.log").read_text()
        assert "isolation=reduced" in started and "required=reduced" in started  # said at start
        pool.stop_all()
        _host_is_clean([work], root_worker=False)
        _no_process_left(lambda uid: uid == worker_user.pw_uid)
        pool.escrow_holds_everything()
    finally:
        shutil.rmtree(home, ignore_errors=True)
