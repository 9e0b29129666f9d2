"""A worker that takes the on-chain path (Contributions contract) with the scheduler's
authorization: the scheduler notices and settles the task there."""

from __future__ import annotations

from .apps import ECHO
from .conftest import APP_PRICE, POOL_PRICE, WORKERS_BASE, Pool, wait_for


def test_an_onchain_contribution_is_finalized_by_the_scheduler(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    pool.start_scheduler()  # no worker process: nobody takes the fast path
    before = pool.balances()
    deal = pool.deal(app)
    worker = pool.accounts["w1"].address
    # what an assignment carries: the scheduler's signed authorization for this worker
    authorization = pool["scheduler"].authorize(worker, deal.task_id(0))
    digest = b"\x77" * 32
    pool["w1"].contribute(deal, 0, digest, authorization)
    pool["w1"].reveal(deal, 0, digest)
    pool.wait_settled(deal, 30)
    wait_for(lambda: pool.task_status(deal) == "finalized", 15, "the scheduler's record", pool)

    after = pool.balances()
    assert after["w1"] == before["w1"] + WORKERS_BASE  # stake back plus the whole reward
    assert after["app_dev"] == before["app_dev"] + APP_PRICE
    assert after["requester"] == before["requester"] - (APP_PRICE + POOL_PRICE)
    assert after["scheduler"] == before["scheduler"] + POOL_PRICE - WORKERS_BASE
    pool.escrow_holds_everything()
