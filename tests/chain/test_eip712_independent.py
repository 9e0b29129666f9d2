"""Orders signed from a hand-written EIP-712 document (not comptoir.chain.eip712) match on-chain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from comptoir.exceptions import TransactionRejected

from .conftest import Market

ZERO32 = "0x" + "00" * 32
ZERO_ADDR = "0x" + "00" * 20
DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
# member lists copied from the Vyper typehash strings in modules/orders.vy
APP_ORDER_TYPE = [
    {"name": "app", "type": "uint256"},
    {"name": "app_price", "type": "uint256"},
    {"name": "volume", "type": "uint256"},
    {"name": "tag", "type": "bytes32"},
    {"name": "dataset_restrict", "type": "uint256"},
    {"name": "workerpool_restrict", "type": "uint256"},
    {"name": "requester_restrict", "type": "address"},
    {"name": "salt", "type": "bytes32"},
]
POOL_ORDER_TYPE = [
    {"name": "workerpool", "type": "uint256"},
    {"name": "workerpool_price", "type": "uint256"},
    {"name": "volume", "type": "uint256"},
    {"name": "tag", "type": "bytes32"},
    {"name": "category", "type": "uint256"},
    {"name": "trust", "type": "uint256"},
    {"name": "app_restrict", "type": "uint256"},
    {"name": "dataset_restrict", "type": "uint256"},
    {"name": "requester_restrict", "type": "address"},
    {"name": "salt", "type": "bytes32"},
]
REQUEST_ORDER_TYPE = [
    {"name": "app", "type": "uint256"},
    {"name": "app_max_price", "type": "uint256"},
    {"name": "dataset", "type": "uint256"},
    {"name": "dataset_max_price", "type": "uint256"},
    {"name": "workerpool", "type": "uint256"},
    {"name": "workerpool_max_price", "type": "uint256"},
    {"name": "requester", "type": "address"},
    {"name": "volume", "type": "uint256"},
    {"name": "tag", "type": "bytes32"},
    {"name": "category", "type": "uint256"},
    {"name": "trust", "type": "uint256"},
    {"name": "min_worker_stake", "type": "uint256"},
    {"name": "beneficiary", "type": "address"},
    {"name": "callback", "type": "address"},
    {"name": "params", "type": "string"},
    {"name": "salt", "type": "bytes32"},
]


def document(
    primary: str,
    members: list[dict[str, str]],
    message: dict[str, Any],
    chain_id: int,
    verifying_contract: str,
) -> dict[str, Any]:
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, primary: members},
        "primaryType": primary,
        "domain": {
            "name": "Comptoir",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": verifying_contract,
        },
        "message": message,
    }


def sign_file(path: Path, doc: dict[str, Any], account: LocalAccount) -> bytes:
    """Write the document as a wallet would receive it, read it back, sign it."""
    path.write_text(json.dumps(doc, indent=2))
    loaded = json.loads(path.read_text())
    return bytes(
        Account.sign_message(encode_typed_data(full_message=loaded), account.key).signature
    )


@pytest.fixture
def hand_signed(market: Market, tmp_path: Path) -> Any:
    def make(chain_id: int | None = None, app_contract: str | None = None) -> dict[str, Any]:
        hub = market["requester"].deployment.hub
        cid = market["requester"].chain_id
        requester = market["requester"].address
        salts = ["0x" + bytes([i]).hex() * 32 for i in (1, 2, 3)]
        app_msg = {
            "app": market.app,
            "app_price": 5,
            "volume": 1,
            "tag": ZERO32,
            "dataset_restrict": 0,
            "workerpool_restrict": 0,
            "requester_restrict": ZERO_ADDR,
            "salt": salts[0],
        }
        pool_msg = {
            "workerpool": market.pool,
            "workerpool_price": 40,
            "volume": 1,
            "tag": ZERO32,
            "category": TEST_CATEGORY_ID,
            "trust": 1,
            "app_restrict": 0,
            "dataset_restrict": 0,
            "requester_restrict": ZERO_ADDR,
            "salt": salts[1],
        }
        req_msg = {
            "app": market.app,
            "app_max_price": 5,
            "dataset": 0,
            "dataset_max_price": 0,
            "workerpool": market.pool,
            "workerpool_max_price": 40,
            "requester": requester,
            "volume": 1,
            "tag": ZERO32,
            "category": TEST_CATEGORY_ID,
            "trust": 1,
            "min_worker_stake": 4,
            "beneficiary": requester,
            "callback": ZERO_ADDR,
            "params": '{"args": "42"}',
            "salt": salts[2],
        }
        app_doc = document(
            "AppOrder",
            APP_ORDER_TYPE,
            app_msg,
            chain_id if chain_id is not None else cid,
            app_contract or hub,
        )
        return {
            "app": (
                AppOrder.from_json(app_msg),
                sign_file(tmp_path / "app.json", app_doc, market["app_dev"].account),
            ),
            "pool": (
                WorkerpoolOrder.from_json(pool_msg),
                sign_file(
                    tmp_path / "pool.json",
                    document("WorkerpoolOrder", POOL_ORDER_TYPE, pool_msg, cid, hub),
                    market["scheduler"].account,
                ),
            ),
            "request": (
                RequestOrder.from_json(req_msg),
                sign_file(
                    tmp_path / "request.json",
                    document("RequestOrder", REQUEST_ORDER_TYPE, req_msg, cid, hub),
                    market["requester"].account,
                ),
            ),
        }

    return make


def _match(market: Market, signed: dict[str, Any]) -> Any:
    (app, app_sig), (pool, pool_sig), (req, req_sig) = (
        signed["app"],
        signed["pool"],
        signed["request"],
    )
    return market["stranger"].match_orders(
        app, app_sig, DatasetOrder.none(), b"", pool, pool_sig, req, req_sig
    )


def test_hub_accepts_orders_signed_from_a_hand_written_document(
    market: Market, hand_signed: Any
) -> None:
    signed = hand_signed()
    deal = _match(market, signed)
    created = market["stranger"].deal_created()
    assert created.deal == deal
    assert (deal.app_price, deal.workerpool_price) == (5, 40)
    assert created.params == '{"args": "42"}'
    # the hub's order hashes (emitted) equal the hashes of the hand-written documents
    assert created.app_order_hash == market["stranger"].order_hash(signed["app"][0])
    assert created.workerpool_order_hash == market["stranger"].order_hash(signed["pool"][0])


def test_signature_for_another_chain_is_refused(market: Market, hand_signed: Any) -> None:
    signed = hand_signed(chain_id=market["requester"].chain_id + 1)
    with pytest.raises(TransactionRejected) as info:
        _match(market, signed)
    assert info.value.reason == "poco: invalid app order signature"
    assert "sign it again for this deployment" in str(info.value)


def test_signature_for_another_contract_is_refused(market: Market, hand_signed: Any) -> None:
    signed = hand_signed(app_contract=market["requester"].deployment.contributions)
    with pytest.raises(TransactionRejected) as info:
        _match(market, signed)
    assert info.value.reason == "poco: invalid app order signature"
