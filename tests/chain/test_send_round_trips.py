"""A transaction's pre-checks travel in one JSON-RPC batch; the chain id is asked once.

Each request to the node costs web3 and the node about as much as a whole batch, so the
number of round trips a transaction takes is what its latency is made of on a loaded
machine. The pre-checks themselves (simulation, estimate) still refuse what would revert.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from eth_account import Account

from comptoir.chain.client import ChainClient, TaskOutcome
from comptoir.devnet import increase_time
from comptoir.exceptions import TransactionRejected

from .conftest import Market


@contextmanager
def round_trips(client: ChainClient) -> Iterator[list[list[str]]]:
    """The JSON-RPC methods of every HTTP request the client's node connection makes
    inside the block (one list per request: a batch names several)."""
    session: Any = client.w3.provider._request_session_manager  # type: ignore[attr-defined]
    seen: list[list[str]] = []
    post = session.make_post_request

    def counted(endpoint: Any, data: bytes | str, **kw: Any) -> Any:
        body = json.loads(data)
        seen.append([r["method"] for r in body] if isinstance(body, list) else [body["method"]])
        return post(endpoint, data, **kw)

    session.make_post_request = counted
    try:
        yield seen
    finally:
        del session.make_post_request


def _approve_data(client: ChainClient, amount: int) -> bytes:
    return bytes.fromhex(
        client.token.encode_abi("approve", args=[client.deployment.hub, amount])[2:]
    )


def test_a_transaction_sends_its_prechecks_in_one_batch(clients: dict[str, ChainClient]) -> None:
    dev = clients["app_dev"]
    dev.allowance()  # the first view of this thread may ask the chain id once
    nonce = dev.w3.eth.get_transaction_count(dev.address)
    with round_trips(dev) as seen:
        receipt = dev.tx.send(dev.token.address, _approve_data(dev, 12345))
    assert receipt["status"] == 1
    assert sorted(seen[0]) == sorted(
        [
            "eth_call",
            "eth_getBlockByNumber",
            "eth_maxPriorityFeePerGas",
            "eth_getTransactionCount",
            "eth_estimateGas",
        ]
    )
    assert seen[1] == ["eth_sendRawTransaction"]
    # read at once: one request on a node that mines on arrival (the devnet's mixed
    # mining); a node in interval mode (as a test before may leave it) is polled
    assert seen[2:] and all(r == ["eth_getTransactionReceipt"] for r in seen[2:])
    assert dev.allowance() == 12345
    assert dev.w3.eth.get_transaction_count(dev.address) == nonce + 1
    # a second transaction reuses the next nonce the first one left
    dev.tx.send(dev.token.address, _approve_data(dev, 7))
    assert dev.allowance() == 7
    assert dev.w3.eth.get_transaction_count(dev.address) == nonce + 2


def test_views_do_not_ask_the_chain_id_each_time(clients: dict[str, ChainClient]) -> None:
    dev = clients["app_dev"]
    dev.allowance()
    with round_trips(dev) as seen:
        for _ in range(3):
            dev.allowance()
            dev.balance()
    assert seen == [["eth_call"]] * 6


def test_a_batched_simulation_still_refuses_a_revert_before_sending(market: Market) -> None:
    stranger = market["stranger"]
    market["scheduler"].withdraw(market["scheduler"].balance())
    nonce = stranger.w3.eth.get_transaction_count(stranger.address)
    with round_trips(stranger) as seen, pytest.raises(TransactionRejected) as info:
        market.deal()
    assert info.value.reason == "poco: scheduler stake too low"
    assert ["eth_sendRawTransaction"] not in seen
    assert stranger.w3.eth.get_transaction_count(stranger.address) == nonce


def test_an_account_without_ether_is_told_to_fund_it(clients: dict[str, ChainClient]) -> None:
    broke = clients["app_dev"].with_account(Account.create())
    assert broke.eth_balance() == 0
    with pytest.raises(TransactionRejected, match="has not enough ether to pay for gas"):
        broke.tx.send(broke.token.address, _approve_data(broke, 1))


def test_finalize_past_the_final_deadline_is_refused_before_sending(market: Market) -> None:
    deal = market.deal()
    digest = b"\x05" * 32
    outcome = TaskOutcome(0, digest, [market["w1"].sign_contribution(deal, 0, digest)])
    scheduler = market["scheduler"]
    increase_time(scheduler.w3, deal.final_deadline - scheduler.timestamp())
    nonce = scheduler.w3.eth.get_transaction_count(scheduler.address)
    with round_trips(scheduler) as seen, pytest.raises(TransactionRejected) as info:
        scheduler.finalize_tasks(deal, [outcome])
    assert info.value.reason == "poco: final deadline passed"
    assert len(seen) == 1  # the deadline came with the simulation's batch
    assert scheduler.w3.eth.get_transaction_count(scheduler.address) == nonce
    assert not scheduler.is_settled(deal.deal_id, 0)
