"""Reverts and connection failures become one clear sentence; nothing is broadcast."""

from __future__ import annotations

import re
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from comptoir.chain.client import ChainClient, connect
from comptoir.chain.errors import MESSAGES, explain
from comptoir.chain.sources import CONTRACTS_DIR
from comptoir.chain.types import DatasetOrder
from comptoir.devnet import Devnet
from comptoir.exceptions import ChainUnreachable, OrderError, TransactionRejected

from .conftest import APP_PRICE, POOL_PRICE, Market


def _nonce(client: ChainClient) -> int:
    return int(client.w3.eth.get_transaction_count(client.address))


def test_too_little_balance_says_to_deposit(clients: dict[str, ChainClient]) -> None:
    app = clients["app_dev"].register_app("a", "oci://a", b"\x01" * 32)
    pool = clients["scheduler"].register_workerpool("p", 25, 10)
    clients["scheduler"].deposit(1_000)
    clients["requester"].deposit(APP_PRICE + POOL_PRICE - 1)  # one unit short
    market = Market(clients, app, pool)
    nonce = _nonce(clients["stranger"])
    with pytest.raises(TransactionRejected) as info:
        market.deal()
    message = str(info.value)
    assert "deposit more with 'comptoir account deposit'" in message
    assert f"({APP_PRICE + POOL_PRICE - 1} token units)" in message
    assert info.value.reason == "poco: requester balance too low"
    assert _nonce(clients["stranger"]) == nonce  # nothing was sent


def test_contract_revert_is_explained_before_sending(market: Market) -> None:
    # the client has no pre-check for the scheduler's stake: the eth_call simulation catches it
    market["scheduler"].withdraw(market["scheduler"].balance())
    nonce = _nonce(market["stranger"])
    with pytest.raises(TransactionRejected) as info:
        market.deal()
    assert info.value.reason == "poco: scheduler stake too low"
    assert str(info.value) == MESSAGES["poco: scheduler stake too low"]
    assert _nonce(market["stranger"]) == nonce


def test_wrong_caller_and_unknown_order_type(market: Market) -> None:
    deal = market.deal()
    with pytest.raises(TransactionRejected) as info:
        market["stranger"].finalize_tasks(deal, [])
    assert info.value.reason == "poco: caller is not the scheduler"
    assert "use its account" in str(info.value)
    with pytest.raises(OrderError, match="cannot be presigned"):
        market["app_dev"].presign_order(DatasetOrder.none())


def test_withdraw_and_deposit_prechecks(clients: dict[str, ChainClient]) -> None:
    requester = clients["requester"]
    with pytest.raises(TransactionRejected, match="free balance is 0"):
        requester.withdraw(1)
    with pytest.raises(TransactionRejected, match="fewer than the"):
        requester.deposit(requester.token_balance() + 1)
    requester.deposit(500)  # approves the hub first
    assert requester.balance() == 500
    assert requester.allowance() == 0  # the approval was exactly consumed
    requester.withdraw(200)
    assert requester.balance() == 300


def test_unknown_reason_falls_back_to_the_raw_string() -> None:
    assert explain("vault: sealed") == "The transaction was rejected: vault: sealed."
    assert explain(None) == "The transaction was reverted without a reason."


def test_every_contract_revert_string_has_a_message() -> None:
    reasons = set()
    for path in CONTRACTS_DIR.rglob("*.vy"):
        reasons |= set(
            re.findall(
                r'"((?:poco|orders|escrow|registry|categories|contributions): [^"]+)"',
                path.read_text(),
            )
        )
    assert reasons, "no revert strings found"
    assert sorted(reasons - set(MESSAGES)) == []


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: nothing listens there


def test_unreachable_rpc_raises_chain_unreachable(devnet: Devnet) -> None:
    url = f"http://127.0.0.1:{_dead_port()}"
    with pytest.raises(ChainUnreachable) as info:
        connect(url)
    assert url in str(info.value) and "comptoir devnet up" in str(info.value)
    # a client whose node goes away mid-session fails the same way
    offline = ChainClient(connect(url, check=False), devnet.deployment, devnet.accounts[1])
    with pytest.raises(ChainUnreachable):
        offline.balance()
    with pytest.raises(ChainUnreachable):
        offline.deposit(1)


def test_many_transactions_from_threads_share_one_nonce_sequence(
    clients: dict[str, ChainClient],
) -> None:
    dev = clients["app_dev"]
    start = dev.asset_count()
    nonce = _nonce(dev)
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(
            pool.map(lambda i: dev.register_app(f"app{i}", "oci://x", b"\x02" * 32), range(16))
        )
    assert sorted(ids) == list(range(start + 1, start + 17))
    assert _nonce(dev) == nonce + 16
