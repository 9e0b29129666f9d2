"""Chain-suite helpers on top of the shared devnet fixtures (comptoir.testing.fixtures)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from comptoir.chain.client import ChainClient
from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import AppOrder, DatasetOrder, Deal, RequestOrder, WorkerpoolOrder

APP_PRICE = 7
POOL_PRICE = 100
WORKER_STAKE_RATIO = 25  # worker stake = 25
SCHEDULER_REWARD_RATIO = 10  # workers share 90 per task
DEPOSIT = 10_000


@dataclass
class Market:
    clients: dict[str, ChainClient]
    app: int
    pool: int

    def __getitem__(self, role: str) -> ChainClient:
        return self.clients[role]

    def orders(
        self,
        volume: int = 1,
        trust: int = 1,
        app_price: int = APP_PRICE,
        pool_price: int = POOL_PRICE,
        category: int = TEST_CATEGORY_ID,
    ) -> tuple[AppOrder, WorkerpoolOrder, RequestOrder]:
        requester = self["requester"].address
        return (
            AppOrder(app=self.app, app_price=app_price, volume=volume),
            WorkerpoolOrder(
                workerpool=self.pool,
                workerpool_price=pool_price,
                volume=volume,
                category=category,
                trust=trust,
            ),
            RequestOrder(
                app=self.app,
                app_max_price=app_price,
                dataset=0,
                dataset_max_price=0,
                workerpool=self.pool,
                workerpool_max_price=pool_price,
                requester=requester,
                volume=volume,
                category=category,
                trust=trust,
            ),
        )

    def deal(self, volume: int = 1, trust: int = 1, sender: str = "stranger", **kw: int) -> Deal:
        """Sign the three orders by their owners and match them from `sender`."""
        app_order, pool_order, request = self.orders(volume, trust, **kw)
        return self[sender].match_orders(
            app_order,
            self["app_dev"].sign_order(app_order),
            DatasetOrder.none(),
            b"",
            pool_order,
            self["scheduler"].sign_order(pool_order),
            request,
            self["requester"].sign_order(request),
        )

    def balances(self) -> dict[str, int]:
        return {role: c.balance() for role, c in self.clients.items()}


WORKER_LOCK_S = 30 * 86_400  # past every deadline a test here reaches


@pytest.fixture
def market(clients: dict[str, ChainClient]) -> Market:
    """An app and a workerpool registered; requester, scheduler and workers deposited."""
    app = clients["app_dev"].register_app("echo", "oci://echo", b"\x11" * 32)
    pool = clients["scheduler"].register_workerpool(
        "pool", WORKER_STAKE_RATIO, SCHEDULER_REWARD_RATIO
    )
    for role in ("requester", "scheduler", "w1", "w2", "w3", "w4"):
        clients[role].deposit(DEPOSIT)
    for role in ("w1", "w2", "w3", "w4"):  # as worker agents do, so their results count
        clients[role].lock(clients[role].timestamp() + WORKER_LOCK_S)
    return Market(clients, app, pool)
