"""Full deal lifecycle through the Python layer on a real anvil: match, fast-path finalize."""

from __future__ import annotations

from comptoir.chain import events as ev
from comptoir.chain.client import TaskOutcome
from comptoir.chain.types import result_hash

from .conftest import APP_PRICE, POOL_PRICE, Market

STAKE = POOL_PRICE * 30 // 100  # scheduler stake per task
WORKER_STAKE = POOL_PRICE * 25 // 100
WORKERS_BASE = POOL_PRICE * 90 // 100


def _escrow_holds_everything(market: Market) -> None:
    """Section 2 invariant once no deal is open: tokens held == sum of free balances + held."""
    hub = market["deployer"].deployment.hub
    held = market["deployer"].token_balance(hub)
    assert held == sum(market.balances().values()) + market["deployer"].held_stakes()


def test_single_worker_deal_pays_everyone_exactly(market: Market) -> None:
    before = market.balances()
    deal = market.deal(volume=1, trust=1)

    assert deal.requester == market["requester"].address
    assert deal.scheduler == market["scheduler"].address
    assert (deal.app_price, deal.workerpool_price, deal.volume) == (APP_PRICE, POOL_PRICE, 1)
    assert (deal.scheduler_stake, deal.worker_stake) == (STAKE, WORKER_STAKE)
    assert market["stranger"].deal_exists(deal.deal_id)
    after_match = market.balances()
    assert after_match["requester"] == before["requester"] - (APP_PRICE + POOL_PRICE)
    assert after_match["scheduler"] == before["scheduler"] - STAKE

    digest = b"\xab" * 32
    contribution = market["w1"].sign_contribution(deal, 0, digest)
    finalized = market["scheduler"].finalize_tasks(deal, [TaskOutcome(0, digest, [contribution])])

    assert [(e.index, e.digest, e.deal_id) for e in finalized] == [(0, digest, deal.deal_id)]
    assert market["stranger"].is_settled(deal.deal_id, 0)
    after = market.balances()
    assert after["requester"] == before["requester"] - (APP_PRICE + POOL_PRICE)
    assert after["app_dev"] == before["app_dev"] + APP_PRICE
    assert after["w1"] == before["w1"] + WORKERS_BASE
    # scheduler: stake back + its 10% share, nothing left over with one worker
    assert after["scheduler"] == before["scheduler"] + POOL_PRICE - WORKERS_BASE
    assert market["stranger"].score(market["w1"].address) == 0  # not replicated: no score
    _escrow_holds_everything(market)


def test_replicated_deal_rewards_winners_and_punishes_the_loser(market: Market) -> None:
    w1, w2, w3 = (market[w].address for w in ("w1", "w2", "w3"))
    # warm-up: a bag of 3 tasks where all three agree gives each worker score 3
    warm = market.deal(volume=3, trust=2)
    outcomes = []
    for index in range(3):
        digest = bytes([index + 1]) * 32
        outcomes.append(
            TaskOutcome(
                index,
                digest,
                [market[w].sign_contribution(warm, index, digest) for w in ("w3", "w1", "w2")],
            )
        )
    market["scheduler"].finalize_tasks(warm, outcomes)
    assert [market["stranger"].score(w) for w in (w1, w2, w3)] == [3, 3, 3]

    before = market.balances()
    deal = market.deal(volume=1, trust=2)
    good, bad = b"\x01" * 32, b"\x02" * 32
    contributions = [
        market["w1"].sign_contribution(deal, 0, good),
        market["w2"].sign_contribution(deal, 0, good),
        market["w3"].sign_contribution(deal, 0, bad),
    ]
    market["scheduler"].finalize_tasks(deal, [TaskOutcome(0, good, contributions)])
    receipt = market["scheduler"].last_receipt
    penalized = ev.from_receipt(receipt, ev.WorkerPenalized)
    rewarded = ev.from_receipt(receipt, ev.WorkerRewarded)

    # weights: score 3 -> w = max(3 // 3, 3) - 1 = 2 for everyone
    reward = WORKERS_BASE + WORKER_STAKE  # the loser's stake joins the workers' reward
    share = reward * 2 // 4
    remainder = reward - 2 * share
    after = market.balances()
    assert after["requester"] == before["requester"] - (APP_PRICE + POOL_PRICE)
    assert after["app_dev"] == before["app_dev"] + APP_PRICE
    assert after["w1"] == before["w1"] + share
    assert after["w2"] == before["w2"] + share
    assert after["w3"] == before["w3"] - WORKER_STAKE
    assert after["scheduler"] == before["scheduler"] + (POOL_PRICE - WORKERS_BASE) + remainder
    assert remainder == 1
    assert [(e.worker, e.seized) for e in penalized] == [(w3, WORKER_STAKE)]
    assert sorted((e.worker, e.amount) for e in rewarded) == sorted([(w1, share), (w2, share)])
    # scores: winners +1 (replicated), the loser's wiped
    assert [market["stranger"].score(w) for w in (w1, w2, w3)] == [4, 4, 0]
    _escrow_holds_everything(market)


def test_deal_created_event_matches_the_deal_and_log_scan(market: Market) -> None:
    start = market["stranger"].block_number()
    deal = market.deal(volume=2)
    created = market["stranger"].deal_created()
    assert created.deal == deal and created.deal_id == deal.deal_id
    assert (created.app, created.workerpool, created.dataset) == (market.app, market.pool, 0)
    assert created.requester == market["requester"].address
    scanned = market["stranger"].events(start, kinds=[ev.DealCreated])
    assert [e.deal for e in scanned] == [deal]  # type: ignore[attr-defined]
    assert deal.task_id(1) == created.deal.task_id(1)
    assert result_hash(deal.task_id(0), b"\x00" * 32) != result_hash(deal.task_id(1), b"\x00" * 32)
