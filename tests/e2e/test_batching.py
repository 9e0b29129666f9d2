"""Finalize batching with a real scheduler and worker: a lone task settles at once even
with a long window, a bag's tasks wait for one another and settle together."""

from __future__ import annotations

from comptoir.chain.types import Deal

from .apps import ECHO
from .conftest import Pool

LONG_WINDOW = "600"  # far beyond the test's timeouts: only a batch that need not wait settles


def _finalize_txs(pool: Pool, deal: Deal) -> list[str]:
    txs = []
    for i in range(deal.volume):
        view = pool.task(deal, i)
        assert view is not None and view["status"] == "finalized", view
        txs.append(view["finalize_tx"])
    return txs


def test_a_lone_task_goes_at_once_and_a_bag_settles_in_one_batch(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler(COMPTOIR_SCHEDULER_FINALIZE_WINDOW=LONG_WINDOW)
    pool.start_worker("w1", COMPTOIR_WORKER_SLOTS="2")
    pool.wait_workers(("w1",))

    lone = pool.deal(app, volume=1, trust=1)
    pool.wait_settled(lone, timeout=60)  # nothing else of its deal could join: not held
    assert len(_finalize_txs(pool, lone)) == 1

    bag = pool.deal(app, volume=6, trust=1)
    pool.wait_settled(bag, timeout=90)
    txs = _finalize_txs(pool, bag)
    # every ready task waited while others of the bag were still running, then the last
    # one released them all: one transaction for the six
    assert len(set(txs)) == 1, txs
    assert txs[0] not in _finalize_txs(pool, lone)
    pool.escrow_holds_everything()
