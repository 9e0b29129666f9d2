"""A chain that goes back (evm_revert, as a node restarted from older state would): the
settlement it forgot is no longer reported as settled, and a sender whose nonce cache
is ahead of the chain resyncs instead of leaving a gap every later transaction waits on."""

from __future__ import annotations

from comptoir.chain import events as ev
from comptoir.chain.client import TaskOutcome
from comptoir.devnet import snapshot
from comptoir.sdk import chainscan

from .conftest import Market


def _raw_revert(market: Market, snap: str) -> None:
    """evm_revert without the test helper's nonce reset: what a process that did not
    see the rollback lives through."""
    w3 = market["stranger"].w3
    assert w3.provider.make_request("evm_revert", [snap])["result"]  # type: ignore[arg-type]


def test_a_rolled_back_settlement_is_not_settled_and_is_sent_again(market: Market) -> None:
    deal = market.deal()
    digest = b"\xcd" * 32
    outcome = TaskOutcome(0, digest, [market["w1"].sign_contribution(deal, 0, digest)])
    snap = snapshot(market["stranger"].w3)
    (finalized,) = market["scheduler"].finalize_tasks(deal, [outcome])
    assert isinstance(finalized, ev.TaskFinalized)
    assert chainscan.still_settled(market["stranger"], finalized)

    _raw_revert(market, snap)
    assert not chainscan.still_settled(market["stranger"], finalized)
    assert not market["stranger"].is_settled(deal.deal_id, 0)
    # the scheduler's client still caches the nonce after its finalize: it must resync,
    # or this transaction would wait (tx timeout) on a nonce the chain never reaches
    (again,) = market["scheduler"].finalize_tasks(deal, [outcome])
    assert market["stranger"].is_settled(deal.deal_id, 0)
    assert chainscan.still_settled(market["stranger"], again)
    found = chainscan.settlements(market["stranger"], [deal.deal_id])
    assert [(e.index, e.digest) for e in found] == [(0, digest)]  # once, on this chain


def test_a_transaction_not_mined_yet_is_seen_in_flight(market: Market) -> None:
    """What keeps the scheduler from sending a second finalize beside a slow first one."""
    client = market["scheduler"]
    w3 = client.w3
    assert client.tx.in_flight() == 0
    # the devnet also mines a block every few seconds: stop that too, or it may mine ours
    w3.provider.make_request("evm_setIntervalMining", [0])  # type: ignore[arg-type]
    w3.provider.make_request("evm_setAutomine", [False])  # type: ignore[arg-type]
    try:
        tx = {
            "from": client.address,
            "to": client.address,
            "data": "0x",
            "value": 0,
            "gas": 21_000,
            "chainId": client.tx._chain_id(),
            **client.tx._fees(),
        }
        client.tx._sign_and_send(tx)
        assert client.tx.in_flight() == 1
        w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
        assert client.tx.in_flight() == 0
    finally:
        # anvil cannot go back to mixed mining (blocks on arrival and every few seconds):
        # mining on arrival is what the next tests on this chain need to stay fast (in
        # interval mode each of their transactions would wait for the next block)
        w3.provider.make_request("evm_setAutomine", [True])  # type: ignore[arg-type]
