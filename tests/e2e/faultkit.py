"""Fault injection for the end-to-end tests: a storage server in its own process (to
freeze with SIGSTOP or kill), recovery timings printed for the report, and the balance
check every fault test ends with."""

from __future__ import annotations

import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx

from .conftest import APP_PRICE, POOL_PRICE, WORKERS_BASE, Pool, Proc, free_port, wait_for

SHARE3 = WORKERS_BASE * 2 // 6  # three fresh workers of equal weight share the pool price


@dataclass
class StorageProc:
    """``python -m comptoir.stack storage`` on a fixed port, so a restart keeps its URL."""

    pool: Pool
    root: Path
    port: int = 0
    proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> StorageProc:
        self.port = self.port or free_port()
        args = ["-m", "comptoir.stack", "storage", "--root", str(self.root)]
        proc = Proc("storage", [*args, "--port", str(self.port)], self.pool._env(), self.log)
        self.pool.procs.append(proc.start())
        self.proc = proc
        wait_for(self._up, 30, "the storage process to answer", self.pool)
        return self

    @property
    def log(self) -> Path:
        return self.pool.tmp / "storage.log"

    def _up(self) -> bool:
        assert self.proc is not None
        if not self.proc.alive:
            raise AssertionError(f"storage exited:\n{self.proc.tail()}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def _signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None and self.proc.popen is not None
        os.killpg(self.proc.popen.pid, sig)

    def freeze(self) -> None:
        """SIGSTOP: connections are accepted by the kernel and never answered."""
        self._signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()


def report(fault: str, outcome: str, recovery_s: float) -> None:
    """One line per fault for the closing note (``pytest -s`` shows it; set
    COMPTOIR_FAULT_REPORT to a file to collect them as JSON lines)."""
    line = {"fault": fault, "outcome": outcome, "recovery_s": round(recovery_s, 1)}
    print(f"FAULT-RECOVERY {json.dumps(line)}")
    target = os.environ.get("COMPTOIR_FAULT_REPORT")
    if target:
        with open(target, "a") as f:
            f.write(json.dumps(line) + "\n")


def wait_cached(pool: Pool, roles: tuple[str, ...], checksum: str, timeout: float = 60) -> None:
    """Until every worker in `roles` holds the app in its cache (its downloads are done)."""
    wait_for(
        lambda: all((pool.tmp / r / "cache" / "blobs" / checksum).exists() for r in roles),
        timeout,
        "the workers to cache the app",
        pool,
    )


def replica_statuses(pool: Pool, deal: object, index: int = 0) -> list[str]:
    view = pool.task(deal, index)  # type: ignore[arg-type]
    return [] if view is None else sorted(r["status"] for r in view["replicas"])


def assert_all_counted(pool: Pool, deal: object, replicas: int = 3) -> None:
    """No replica was dropped: each revealed, or is a committed member the finalize
    counted by its seal (a late one once the others revealed and the wait passed)."""
    statuses = replica_statuses(pool, deal)
    assert len(statuses) == replicas and set(statuses) <= {"revealed", "committed"}, statuses
    assert "revealed" in statuses


def assert_paid_as_protocol_says(
    pool: Pool, before: dict[str, int], winners: tuple[str, ...], tasks: int = 1
) -> None:
    """Every balance moved exactly as a finalized trust-5 task of three agreeing fresh
    workers says, nothing else moved, and the escrow holds everything."""
    after = pool.balances()
    expected = dict(before)
    expected["requester"] -= tasks * (APP_PRICE + POOL_PRICE)
    expected["app_dev"] += tasks * APP_PRICE
    expected["scheduler"] += tasks * (POOL_PRICE - len(winners) * SHARE3)
    for w in winners:
        expected[w] += tasks * SHARE3
    assert after == expected
    pool.escrow_holds_everything()
