"""Calldata the client sends: its own encoding (selector + eth_abi) is byte for byte what
web3's encode_abi makes, and a value only web3 normalizes still goes through web3."""

from __future__ import annotations

import os

from eth_account import Account
from web3 import Web3

from comptoir.chain.build import artifact
from comptoir.chain.client import _abi, _calldata
from comptoir.chain.types import ZERO_ADDRESS, Deal

HUB = Web3().eth.contract(Web3.to_checksum_address("0x" + "11" * 20), abi=artifact("Hub").abi)


def a_deal() -> Deal:
    return Deal(
        request_hash=os.urandom(32),
        first_task=0,
        volume=32,
        requester=str(Account.create().address),
        app_owner=ZERO_ADDRESS,
        app_price=1,
        dataset_owner=ZERO_ADDRESS,
        dataset_price=0,
        scheduler=str(Account.create().address),
        workerpool_price=100,
        scheduler_stake=30,
        worker_stake=10,
        scheduler_reward_ratio=10,
        trust=4,
        contribution_deadline=10**9,
        final_deadline=2 * 10**9,
        callback=ZERO_ADDRESS,
    )


def test_a_full_finalize_batch_encodes_as_web3_encodes_it() -> None:
    workers = [str(Account.create().address) for _ in range(64)]
    args = (
        _abi(a_deal()),
        [(i, os.urandom(32), 2, i % 2) for i in range(32)],
        [(w, os.urandom(32), os.urandom(32)) for w in workers],
        [(w, os.urandom(32), os.urandom(32), os.urandom(32), os.urandom(32)) for w in workers[:16]],
        b"\x01\x02",
    )
    ours = _calldata(HUB, "finalize", args)
    assert isinstance(ours, bytes)
    assert "0x" + ours.hex() == HUB.encode_abi("finalize", args=list(args))


def test_a_value_eth_abi_refuses_goes_through_web3() -> None:
    # a bytes32 given as hex text: web3 normalizes it, eth_abi alone would not take it
    args = ("0x" + "ab" * 32,)
    assert _calldata(HUB, "deal_exists", args) == HUB.encode_abi("deal_exists", args=list(args))
