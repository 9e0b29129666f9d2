"""Who a requester may seal to, checked against a real anvil: `ChainClient.contract_owner`
(what a worker and the SDK read to check a callback owner's key: owner() at the latest
block or at the deal's, nothing for an address without it) and the SDK's pre-checks of
the app owner's key (`comptoir.sdk.recipients`)."""

from __future__ import annotations

import pytest
from eth_account.signers.local import LocalAccount

from comptoir import devnet as devnet_mod
from comptoir.apps import sealed
from comptoir.chain.client import ChainClient, Transactor
from comptoir.chain.deploy import deploy_contract
from comptoir.exceptions import ConfigError
from comptoir.sdk import recipients
from comptoir.sdk.market import ListedOrder

from .conftest import Market


def test_the_owner_of_a_callback_contract_is_read_at_a_block(
    chain: devnet_mod.Devnet, accounts: dict[str, LocalAccount], clients: dict[str, ChainClient]
) -> None:
    owner = accounts["requester"]
    before = clients["stranger"].block_number()
    receiver, block = deploy_contract(
        Transactor(chain.w3, owner), "CallbackReceiver", chain.deployment.hub, 0
    )
    reader = clients["stranger"]
    assert reader.contract_owner(receiver) == owner.address
    assert reader.contract_owner(receiver, block) == owner.address
    assert reader.contract_owner(receiver, before) is None  # no code yet at that block
    # a contract whose owner() is someone else's, and addresses without owner()
    wallet, _ = deploy_contract(
        Transactor(chain.w3, owner), "ERC1271Wallet", accounts["app_dev"].address
    )
    assert reader.contract_owner(wallet) == accounts["app_dev"].address
    assert reader.contract_owner(accounts["w1"].address) is None  # an EOA answers nothing
    assert reader.contract_owner(chain.deployment.hub) is None  # a contract without it


def _listed(market: Market, signer: ChainClient | None) -> ListedOrder:
    """The app order as the market lists it, signed by `signer` (None: an ERC-1271-style
    signature, from which no key recovers)."""
    order = market.orders()[0]  # a fresh salt each time
    signature = signer.sign_order(order) if signer else b"\x01" * 97
    owner = market["app_dev"].address
    return ListedOrder("0x", "app", order, signature, owner, "open", 1, 7, 1, 0.0)


def test_the_app_owners_key_comes_from_its_order_signature(market: Market) -> None:
    dev, requester = market["app_dev"], market["requester"].address
    order = _listed(market, dev)
    notes: list[str] = []
    found = recipients.app_owner(
        market["requester"], order, requester, "logs", None, explicit=False, note=notes.append
    )
    assert found is not None and found.address == dev.address and not notes
    assert found.reads == sealed.SCOPES["logs"]
    assert (
        recipients.app_owner(
            market["requester"], order, requester, "none", None, explicit=False, note=notes.append
        )
        is None
    )
    # the requester owns the app: nobody else to seal to
    assert (
        recipients.app_owner(dev, order, dev.address, "all", None, explicit=True, note=notes.append)
        is None
    )


def test_an_owner_signing_through_a_contract_needs_its_key_given(market: Market) -> None:
    """An ERC-1271 signature recovers no key: skipped with a note by default, refused in one
    sentence when the requester asked to share; a given key must be the owner's."""
    requester, dev = market["requester"], market["app_dev"]
    order = _listed(market, None)
    notes: list[str] = []
    assert (
        recipients.app_owner(
            requester, order, requester.address, "logs", None, explicit=False, note=notes.append
        )
        is None
    )
    assert notes and "signs through a contract" in notes[0] and "--app-owner-key" in notes[0]
    with pytest.raises(ConfigError, match="--app-owner-key"):
        recipients.app_owner(
            requester, order, requester.address, "logs", None, explicit=True, note=notes.append
        )
    dev_key = sealed.public_key_of(bytes(dev.account.key))  # type: ignore[union-attr]
    given = recipients.app_owner(
        requester, order, requester.address, "all", "0x" + dev_key.hex(), explicit=True,
        note=notes.append,
    )  # fmt: skip
    assert given is not None and given.address == dev.address
    stranger = sealed.public_key_of(b"\x55" * 32).hex()
    with pytest.raises(ConfigError, match=f"is owned by {dev.address}"):
        recipients.app_owner(
            requester, order, requester.address, "logs", stranger, explicit=True,
            note=notes.append,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="none, logs or all"):
        recipients.app_owner(
            requester, order, requester.address, "debug", None, explicit=True, note=notes.append
        )
