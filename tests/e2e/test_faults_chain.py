"""The chain node down mid-run: anvil stopped (SIGTERM: it dumps its state) or killed
(kill -9, after its periodic dump) while the replicas start, then restarted from that
state on the same port. Work that needs the chain waits
and retries with back-off; the task is finalized, not claimed.

This module runs its own anvil (it is stopped and restarted), so it overrides the
``chain`` and ``storage`` fixtures the ``pool`` fixture builds on."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pytest

from comptoir import devnet as devnet_mod
from comptoir.config import load_settings

from .apps import ECHO
from .conftest import Pool, Storage, free_port, storage_server, wait_for
from .faultkit import assert_all_counted, assert_paid_as_protocol_says, report

ROLES = ("w1", "w2", "w3")


@pytest.fixture
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[devnet_mod.Devnet]:
    """An anvil of this test's own, on a fixed port so a restart keeps its URL."""
    home = tmp_path_factory.mktemp("own-chain")
    settings = load_settings({"COMPTOIR_HOME": str(home)})
    net = devnet_mod.up(settings, port=free_port())
    try:
        yield net
    finally:
        devnet_mod.down(settings)


@pytest.fixture
def storage(
    chain: devnet_mod.Devnet, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Storage]:
    with storage_server(chain, tmp_path_factory.mktemp("own-storage")) as served:
        yield served


def _restart(net: devnet_mod.Devnet, monkeypatch: pytest.MonkeyPatch) -> None:
    """anvil again on its port, from the state it dumped (the old sockets may still be in
    TIME_WAIT, which anvil's own bind tolerates; the devnet's pre-check does not)."""
    monkeypatch.setattr(devnet_mod, "_port_free", lambda port: True)
    port = int(net.rpc_url.rsplit(":", 1)[1])
    devnet_mod.up(net.settings, port=port)


def _kill_after_a_state_dump(net: devnet_mod.Devnet, since: float) -> None:
    """kill -9 once anvil's periodic dump holds the deal: a hard crash loses only what
    came after that dump (here nothing: no transaction since)."""
    state = net.settings.devnet_dir / "state.json"
    wait_for(
        lambda: state.exists() and state.stat().st_mtime > since,
        devnet_mod.STATE_INTERVAL + 30,
        "anvil's periodic state dump",
    )
    os.kill(net.pid, signal.SIGKILL)
    devnet_mod.down(net.settings)  # clears the records of the dead process


@pytest.mark.parametrize("how", ["SIGTERM", "kill -9"])
def test_a_chain_outage_mid_run_delays_the_task_but_finalizes_it(
    pool: Pool, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()
    # the workers joined earlier, and locked their stakes while the chain was up: the
    # scheduler keeps what it read of them through the outage (a lock only grows)
    for w in ROLES:
        pool.start_worker(w)
    pool.wait_workers(ROLES)
    wait_for(
        lambda: all("worker.stake_locked" in pool.workers[w].tail(400) for w in ROLES),
        30,
        "every worker to lock its stake",
        pool,
    )
    for w in ROLES:
        pool.workers[w].stop()
    before = pool.balances()
    deal = pool.deal(app, trust=5, params="sleep=2")
    matched_at = time.time()
    wait_for(lambda: pool.task(deal) is not None, 30, "the scheduler to see the deal", pool)
    if how == "SIGTERM":
        assert devnet_mod.down(pool.devnet.settings)  # anvil dumps its state, exits
    else:
        _kill_after_a_state_dump(pool.devnet, matched_at)
    down_at = time.monotonic()
    for w in ROLES:  # they get the replicas, and cannot check them against the chain
        pool.start_worker(w)
    wait_for(
        lambda: all("assignment.retry" in pool.workers[w].tail(400) for w in ROLES),
        60,
        "every worker to wait for the chain",
        pool,
    )
    time.sleep(max(0.0, 15 - (time.monotonic() - down_at)))  # ~15 s without a chain
    started = time.monotonic()
    _restart(pool.devnet, monkeypatch)
    pool.wait_settled(deal, 120)
    report(f"chain node {how} mid-run (~15 s)", "finalized", time.monotonic() - started)

    assert_all_counted(pool, deal)
    logs = "\n".join(pool.workers[w].tail(400) for w in ROLES)
    assert "assignment.failed" not in logs  # waited, never reported the outage as failure
    assert (pool.task(deal) or {})["failures"] == 0
    assert_paid_as_protocol_says(pool, before, ROLES)
