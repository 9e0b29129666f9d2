"""The hub's trust rules: scores wiped by a wrong result, earned only with stake at risk,
balances locked behind unsettled work; and the trust simulator's score updates checked
against the hub."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import boa
import pytest
from helpers import POOL_PRICE, WORKER_STAKE_RATIO, digest_of, finalize, setup_market
from test_tasks import _contribute

from comptoir.scheduler import consensus
from conftest import SCORE_STAKE_FLOOR

GOOD, BAD = digest_of("good"), digest_of("bad")
WORKERS = ("w1", "w2", "w3", "w4")
CHEAP_POOL_PRICE = 40  # worker stake 40 * 20 % = 8, below the floor of 10


def _load_simulator():
    path = Path(__file__).resolve().parents[2] / "bench" / "trust.py"
    spec = importlib.util.spec_from_file_location("bench_trust", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_trust"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def market(protocol, actors):
    return setup_market(protocol, actors)


def score(market, name: str) -> int:
    return int(market.hub.score(market.actors[name].address))


def cheap_deal(market, trust: int = 1):
    app, dataset, pool, request = market.orders(trust=trust)
    return market.match(app, dataset, pool.replace(workerpool_price=CHEAP_POOL_PRICE), request)


def test_the_floor_is_what_the_hub_was_deployed_with(market):
    assert market.hub.score_stake_floor() == SCORE_STAKE_FLOOR
    assert POOL_PRICE * WORKER_STAKE_RATIO // 100 >= SCORE_STAKE_FLOOR
    assert CHEAP_POOL_PRICE * WORKER_STAKE_RATIO // 100 < SCORE_STAKE_FLOOR


def test_replicated_wins_score_only_with_a_stake_above_the_floor(market):
    deal = cheap_deal(market)
    assert deal.worker_stake < SCORE_STAKE_FLOOR
    finalize(market, deal, {0: (GOOD, ["w1", "w2"], [])})
    assert (score(market, "w1"), score(market, "w2")) == (0, 0)  # nothing at risk, no score
    finalize(market, market.deal(), {0: (GOOD, ["w1", "w2"], [])})
    assert (score(market, "w1"), score(market, "w2")) == (1, 1)


def test_a_cheap_deal_still_wipes_a_liars_score(market):
    for _ in range(3):
        finalize(market, market.deal(), {0: (GOOD, ["w1", "w2", "w3"], [])})
    assert score(market, "w3") == 3
    finalize(market, cheap_deal(market, trust=2), {0: (GOOD, ["w1", "w2"], [("w3", BAD)])})
    assert score(market, "w3") == 0
    assert score(market, "w1") == 3  # the cheap win scores nothing


def test_the_onchain_path_wipes_a_liars_score_too(market, protocol):
    for i in range(15):
        workers = ["w1", "w2", "w3"] if i < 3 else ["w1", "w2"]
        finalize(market, market.deal(), {0: (GOOD, workers, [])})
    # weights 4, 4 and 2: at trust 3 only the two honest ones together reach consensus
    deal = market.deal(trust=3)
    _contribute(market, "w3", deal, 0, BAD)
    _contribute(market, "w1", deal, 0, GOOD)
    _contribute(market, "w2", deal, 0, GOOD)
    for worker in ("w1", "w2"):
        with boa.env.prank(market.actors[worker].address):
            protocol.contributions.reveal(deal.as_tuple(), 0, GOOD)
    with boa.env.prank(market.actors["scheduler"].address):
        protocol.contributions.finalize(deal.as_tuple(), 0, b"")
    assert (score(market, "w1"), score(market, "w2"), score(market, "w3")) == (16, 16, 0)


# ---------------------------------------------------------------- lock


def _lock(market, who: str, until: int) -> None:
    with boa.env.prank(market.actors[who].address):
        market.hub.lock(until)


def _now() -> int:
    return int(boa.env.evm.patch.timestamp)


def test_a_locked_balance_cannot_be_withdrawn_until_the_lock_ends(market):
    _lock(market, "w1", _now() + 500)
    with boa.env.prank(market.actors["w1"].address), boa.reverts("escrow: balance locked"):
        market.hub.withdraw(1)
    boa.env.time_travel(seconds=500)
    with boa.env.prank(market.actors["w1"].address):
        market.hub.withdraw(1)


def test_a_lock_never_shortens_and_is_bounded(market):
    _lock(market, "w1", _now() + 900)
    _lock(market, "w1", _now() + 100)
    assert market.hub.locked_until(market.actors["w1"].address) == _now() + 900
    with boa.env.prank(market.actors["w1"].address), boa.reverts("escrow: lock too long"):
        market.hub.lock(_now() + 365 * 86400 + 1)


def test_a_locked_requester_cannot_pay_for_a_deal(market):
    _lock(market, "requester", _now() + 100)
    with boa.reverts("escrow: balance locked"):
        market.deal()
    boa.env.time_travel(seconds=100)
    market.deal()


def test_a_locked_liar_still_loses_its_stake_and_can_contribute_onchain(market, protocol):
    liar = market.actors["w3"].address
    _lock(market, "w3", _now() + 2000)
    before = market.hub.balance_of(liar)
    deal = market.deal(trust=2)
    finalize(market, deal, {0: (GOOD, ["w1", "w2"], [("w3", BAD)])})
    assert market.hub.balance_of(liar) == before - deal.worker_stake
    # holding a stake for the on-chain path is not spending: the lock allows it
    other = market.deal(trust=2)
    _contribute(market, "w3", other, 0, GOOD)
    assert market.hub.balance_of(liar) == before - 2 * deal.worker_stake


# ---------------------------------------------------------------- simulator vs hub


def test_score_after_covers_every_case_the_hub_distinguishes():
    # lone win, replicated win, win on a deal below the floor, loss
    assert consensus.score_after(5, True, False, 20, 10) == 5
    assert consensus.score_after(5, True, True, 20, 10) == 6
    assert consensus.score_after(5, True, True, 8, 10) == 5
    assert consensus.score_after(5, False, True, 20, 10) == 0
    assert _load_simulator().legacy_score_after(9, False, True) == 6  # the rule it replaced


@pytest.mark.parametrize("seed", [1, 2])
def test_a_random_history_scores_the_same_in_the_simulator_and_on_chain(market, seed):
    trust_bench = _load_simulator()
    sim = trust_bench.Simulation(trust_bench.COMPTOIR, 4, 0.0, 0.0, "naive", 2, seed=seed)
    rng = random.Random(seed)
    for _ in range(14):
        k = rng.randint(1, 4)
        chosen = rng.sample(range(4), k)
        liars = [w for w in chosen if rng.random() < 0.3] if k > 2 else []
        if len(liars) == k:
            liars.pop()  # a task needs a winner
        winners = [w for w in chosen if w not in liars]
        cheap = rng.random() < 0.25
        deal = cheap_deal(market) if cheap else market.deal()
        finalize(
            market,
            deal,
            {0: (GOOD, [WORKERS[w] for w in winners], [(WORKERS[w], BAD) for w in liars])},
        )
        answers = {w: (trust_bench.WRONG if w in liars else trust_bench.RIGHT) for w in chosen}
        if cheap:
            # the simulator's workload always stakes the floor; a cheap deal scores no win
            for w in winners:
                sim.score[w] = consensus.score_after(
                    sim.score[w], True, k > 1, deal.worker_stake, SCORE_STAKE_FLOOR
                )
            for w in liars:
                sim.score[w] = 0
        else:
            sim._settle(answers, trust_bench.RIGHT)
        assert [score(market, WORKERS[w]) for w in range(4)] == sim.score
