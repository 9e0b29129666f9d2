"""Builders shared by the contract tests: assets, signed orders, deals, contributions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import boa

from comptoir.chain import eip712
from comptoir.chain.types import (
    AppOrder,
    DatasetOrder,
    Deal,
    RequestOrder,
    WorkerpoolOrder,
    result_hash,
    result_seal,
)

APP_PRICE = 10
DATASET_PRICE = 7
POOL_PRICE = 100
WORKER_STAKE_RATIO = 20  # worker stake = 20 per contribution
SCHEDULER_REWARD_RATIO = 10  # scheduler keeps 10 of each task's 100
BUNDLE = 2


def chain_id() -> int:
    return int(boa.env.evm.patch.chain_id)


def digest_of(text: str) -> bytes:
    from eth_utils import keccak

    return keccak(text=text)


@dataclass
class Market:
    """Registered assets and default orders for one scenario."""

    protocol: Any
    actors: dict[str, Any]
    app: int = 0
    dataset: int = 0
    workerpool: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hub(self) -> Any:
        return self.protocol.hub

    def sign(self, order: Any, who: str) -> bytes:
        return eip712.sign_order(order, self.actors[who].account, chain_id(), self.hub.address)

    def orders(
        self, volume: int = 1, trust: int = 1, with_dataset: bool = False, **request_changes: Any
    ) -> tuple[AppOrder, DatasetOrder, WorkerpoolOrder, RequestOrder]:
        app_order = AppOrder(app=self.app, app_price=APP_PRICE, volume=1000)
        dataset_order = (
            DatasetOrder(dataset=self.dataset, dataset_price=DATASET_PRICE, volume=1000)
            if with_dataset
            else DatasetOrder.none()
        )
        pool_order = WorkerpoolOrder(
            workerpool=self.workerpool, workerpool_price=POOL_PRICE, volume=1000, trust=100
        )
        request = RequestOrder(
            app=self.app,
            app_max_price=APP_PRICE,
            dataset=self.dataset if with_dataset else 0,
            dataset_max_price=DATASET_PRICE if with_dataset else 0,
            workerpool=0,
            workerpool_max_price=POOL_PRICE,
            requester=self.actors["requester"].address,
            volume=volume,
            trust=trust,
            params='{"args": "42"}',
        )
        return app_order, dataset_order, pool_order, request.replace(**request_changes)

    def match(
        self,
        app_order: AppOrder,
        dataset_order: DatasetOrder,
        pool_order: WorkerpoolOrder,
        request: RequestOrder,
        sender: str = "stranger",
        sigs: dict[str, bytes] | None = None,
    ) -> Deal:
        sigs = sigs or {}
        app_sig = sigs.get("app", self.sign(app_order, "app_dev"))
        dataset_sig = sigs.get(
            "dataset", self.sign(dataset_order, "dataset_owner") if dataset_order.dataset else b""
        )
        pool_sig = sigs.get("workerpool", self.sign(pool_order, "scheduler"))
        request_sig = sigs.get("request", self.sign(request, "requester"))
        with boa.env.prank(self.actors[sender].address):
            self.hub.match_orders(
                app_order.as_tuple(),
                app_sig,
                dataset_order.as_tuple(),
                dataset_sig,
                pool_order.as_tuple(),
                pool_sig,
                request.as_tuple(),
                request_sig,
            )
        event = [e for e in self.hub.get_logs() if type(e).__name__ == "DealCreated"][-1]
        return deal_from_event(event.deal)

    def deal(
        self, volume: int = 1, trust: int = 1, with_dataset: bool = False, **changes: Any
    ) -> Deal:
        return self.match(*self.orders(volume, trust, with_dataset, **changes))


def deal_from_event(raw: Any) -> Deal:
    values = [str(v) if type(v).__name__ == "Address" else v for v in raw]
    return Deal(*values)


def setup_market(protocol: Any, actors: dict[str, Any], fund: int = 10**9) -> Market:
    market = Market(protocol, actors)
    with boa.env.prank(actors["app_dev"].address):
        market.app = protocol.registry.register_app(
            "echo", BUNDLE, "cas://app", b"\x11" * 32, b"\x00" * 32
        )
    with boa.env.prank(actors["dataset_owner"].address):
        market.dataset = protocol.registry.register_dataset("data", "cas://data", b"\x22" * 32)
    with boa.env.prank(actors["scheduler"].address):
        market.workerpool = protocol.registry.register_workerpool(
            "pool", WORKER_STAKE_RATIO, SCHEDULER_REWARD_RATIO
        )
    for name in ("requester", "scheduler", "w1", "w2", "w3", "w4"):
        protocol.fund(actors[name], fund)
    return market


LOCK_AHEAD = 30 * 86_400  # workers' stakes stay locked past every deadline of a scenario


def lock_stake(hub: Any, address: str, ahead: int = LOCK_AHEAD) -> None:
    """Lock `address`'s free balance `ahead` seconds, as the worker agent does."""
    with boa.env.prank(address):
        hub.lock(boa.env.evm.patch.timestamp + ahead)


def winner_sig(
    market: Market, worker: str, deal: Deal, index: int, digest: bytes
) -> tuple[Any, ...]:
    account = market.actors[worker].account
    task = deal.task_id(index)
    r, vs = eip712.sign_contribution(
        account,
        task,
        result_hash(task, digest),
        result_seal(account.address, task, digest),
        chain_id(),
        market.hub.address,
    )
    return (account.address, r, vs)


def loser_sig(
    market: Market, worker: str, deal: Deal, index: int, digest: bytes
) -> tuple[Any, ...]:
    account = market.actors[worker].account
    task = deal.task_id(index)
    h, s = result_hash(task, digest), result_seal(account.address, task, digest)
    r, vs = eip712.sign_contribution(account, task, h, s, chain_id(), market.hub.address)
    return (account.address, h, s, r, vs)


def by_address(entries: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return sorted(entries, key=lambda e: int(e[0], 16))


def finalize(
    market: Market,
    deal: Deal,
    results: dict[int, tuple[bytes, list[str], list[tuple[str, bytes]]]],
    callback_data: bytes = b"",
    sender: str = "scheduler",
    lock: bool = True,
) -> None:
    """results: index -> (digest, winner names, [(loser name, loser digest)]). With
    `lock`, winners lock their stakes first, as worker agents do before they get work."""
    tasks, winners, losers = [], [], []
    for index in sorted(results):
        digest, wins, loses = results[index]
        if lock:
            for w in wins:
                if market.hub.locked_until(market.actors[w].address) < deal.final_deadline:
                    lock_stake(market.hub, market.actors[w].address)
        tasks.append((index, digest, len(wins), len(loses)))
        winners += by_address([winner_sig(market, w, deal, index, digest) for w in wins])
        losers += by_address([loser_sig(market, name, deal, index, d) for name, d in loses])
    with boa.env.prank(market.actors[sender].address):
        market.hub.finalize(deal.as_tuple(), tasks, winners, losers, callback_data)
