"""Batched hub views (one JSON-RPC batch for many calls) agree with the single calls."""

from __future__ import annotations

from comptoir.chain import client as chain_client
from comptoir.chain.client import TaskOutcome, WorkerStanding

from .conftest import DEPOSIT, Market


def test_worker_standings_match_single_calls(market: Market) -> None:
    workers = [market[w].address for w in ("w1", "w2", "w3", "w4")]
    stranger = market["stranger"]
    until = market["w2"].locked_until() + 3600  # longer than the fixture's lock
    market["w2"].lock(until)
    read = stranger.worker_standings([*workers, stranger.address])
    assert read == {
        a: WorkerStanding(stranger.score(a), stranger.balance(a), stranger.locked_until(a))
        for a in read
    }
    assert read[workers[0]].balance == DEPOSIT and read[workers[0]].score == 0
    assert read[stranger.address].locked_until == 0 < read[workers[0]].locked_until
    assert read[workers[1]].locked_until == until
    assert read[stranger.address].balance == stranger.balance()


def test_settled_indices_names_exactly_the_settled_tasks(market: Market, monkeypatch) -> None:
    deal = market.deal(volume=5, trust=1)
    digest = b"\x01" * 32
    outcomes = [
        TaskOutcome(i, digest, [market["w1"].sign_contribution(deal, i, digest)]) for i in (1, 3)
    ]
    market["scheduler"].finalize_tasks(deal, outcomes)
    # small batches: the chunking path must give the same answer as one batch
    monkeypatch.setattr(chain_client, "VIEW_BATCH", 2)
    assert market["stranger"].settled_indices(deal.deal_id, range(5)) == {1, 3}
    assert market["stranger"].settled_indices(deal.deal_id, [0, 2, 4]) == set()
