"""In-process EVM (titanoboa) fixtures: the real contracts, deployed fresh per test."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boa
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.chain.sources import search_paths, source_path

boa.interpret.set_search_paths(search_paths())

SCORE_STAKE_FLOOR = 10  # the default deals stake 20: their replicated wins score
CATEGORY_TIME_REF = 100  # seconds; contribution deadline 700 s, final 1000 s


def load(name: str, *args: Any) -> Any:
    return boa.load(str(source_path(name)), *args)


@dataclass
class Actor:
    account: LocalAccount

    @property
    def address(self) -> str:
        return str(self.account.address)


@dataclass
class Protocol:
    token: Any
    registry: Any
    hub: Any
    contributions: Any
    owner: str

    def fund(self, actor: Actor, amount: int) -> None:
        with boa.env.prank(self.owner):
            self.token.mint(actor.address, amount)
        with boa.env.prank(actor.address):
            self.token.approve(self.hub.address, amount)
            self.hub.deposit(amount)


@pytest.fixture(scope="session")
def _deployment() -> Any:
    owner = boa.env.generate_address("owner")
    with boa.env.prank(owner):
        token = load("ComptoirToken")
        registry = load("Registry")
        hub = load("Hub", token.address, registry.address, SCORE_STAKE_FLOOR)
        contributions = load("Contributions", hub.address)
        hub.set_onchain_path(contributions.address)
        registry.create_category("TEST", CATEGORY_TIME_REF)
    return Protocol(token, registry, hub, contributions, owner)


@pytest.fixture
def protocol(_deployment: Protocol) -> Iterator[Protocol]:
    # each test starts from the same deployed state and leaves no trace
    with boa.env.anchor():
        yield _deployment


def _actor(seed: str) -> Actor:
    account = Account.from_key(bytes.fromhex(boa.env.generate_address(seed)[2:].rjust(64, "0")))
    return Actor(account)


@pytest.fixture
def actors() -> dict[str, Actor]:
    names = [
        "requester",
        "app_dev",
        "dataset_owner",
        "scheduler",
        "w1",
        "w2",
        "w3",
        "w4",
        "stranger",
    ]
    return {name: _actor(name) for name in names}
