"""Scheduler state tests on an in-memory SQLite database (no chain needed)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.chain import eip712
from comptoir.chain import events as ev
from comptoir.chain.client import AssetInfo, SignedContribution, sign_contribution
from comptoir.chain.deploy import Deployment
from comptoir.chain.types import ZERO_ADDRESS, Deal
from comptoir.scheduler import state, trustpolicy
from comptoir.scheduler.db import Database
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.testing.servers import BACKENDS, POSTGRES_ENV, postgres_schema

CHAIN_ID = 31337
HUB = "0x" + "11" * 20
DEPLOYMENT = Deployment(
    CHAIN_ID, "0x" + "01" * 20, "0x" + "02" * 20, HUB, "0x" + "03" * 20, "0x" + "04" * 20, 1
)
NOW = 1_000_000
FINAL_DEADLINE = NOW + 10_000  # of every deal made here
LOCKED = FINAL_DEADLINE + 3600  # a worker's stake lock that covers every deal here


def deal_info(
    scheduler: str,
    volume: int = 1,
    trust: int = 1,
    tag: int = 0,
    app_checksum: bytes = b"\xaa" * 32,
    dataset_checksum: bytes | None = None,
) -> tuple[Deal, state.DealInfo]:
    """A deal as the watcher would record it from its DealCreated event."""
    deal = Deal(
        request_hash=os.urandom(32),
        first_task=0,
        volume=volume,
        requester=str(Account.create().address),
        app_owner=ZERO_ADDRESS,
        app_price=1,
        dataset_owner=ZERO_ADDRESS,
        dataset_price=0,
        scheduler=scheduler,
        workerpool_price=100,
        scheduler_stake=30,
        worker_stake=10,
        scheduler_reward_ratio=10,
        trust=trust,
        contribution_deadline=NOW + 7000,
        final_deadline=FINAL_DEADLINE,
        callback=ZERO_ADDRESS,
    )
    created = ev.DealCreated(
        deal_id=deal.deal_id,
        workerpool=1,
        requester=deal.requester,
        deal=deal,
        app=1,
        dataset=2 if dataset_checksum else 0,
        category=0,
        tag=tag.to_bytes(32, "big"),
        beneficiary=ZERO_ADDRESS,
        params="",
        app_order_hash=b"\x00" * 32,
        dataset_order_hash=b"\x00" * 32,
        workerpool_order_hash=b"\x00" * 32,
        block_number=10,
    )
    app = AssetInfo(1, 1, ZERO_ADDRESS, "app", "loc", app_checksum, 2, b"\x00" * 32)
    dataset = (
        AssetInfo(2, 2, ZERO_ADDRESS, "ds", "loc", dataset_checksum, 0, b"\x00" * 32)
        if dataset_checksum
        else None
    )
    info = state.DealInfo(created, 100, app, dataset)
    return deal, info


@dataclass
class Pool:
    db: Database
    settings: SchedulerSettings
    scheduler: LocalAccount
    workers: dict[str, LocalAccount] = field(default_factory=dict)
    _deals: int = 0

    def tx(self, fn: Any) -> Any:
        return self.db.tx(fn)

    def add_worker(
        self,
        name: str,
        score: int = 0,
        gpu: bool = False,
        balance: int | None = 1000,
        slots: int | None = None,
        locked_until: int = LOCKED,
    ) -> str:
        account = Account.create()
        self.workers[name] = account
        self.tx(
            lambda c: state.register_worker(
                c,
                account.address,
                gpu,
                2,
                1 << 30,
                score,
                time.time(),
                balance,
                slots=slots,
                locked_until=locked_until,
            )
        )
        return str(account.address)

    def addr(self, name: str) -> str:
        return str(self.workers[name].address)

    def add_deal(
        self,
        volume: int = 1,
        trust: int = 1,
        tag: int = 0,
        app_checksum: bytes = b"\xaa" * 32,
        dataset_checksum: bytes | None = None,
    ) -> Deal:
        self._deals += 1
        deal, info = deal_info(
            str(self.scheduler.address), volume, trust, tag, app_checksum, dataset_checksum
        )
        # distinct creation times so "older deal first" is well defined
        self.tx(lambda c: state.add_deal(c, info, time.time() + self._deals))
        return deal

    def next(self, name: str) -> dict[str, Any] | None:
        def auth(worker: str, task: bytes) -> bytes:
            return eip712.sign_authorization(
                self.scheduler, worker, task, CHAIN_ID, "0x" + "03" * 20
            )

        return self.tx(
            lambda c: state.next_work(c, self.settings, self.addr(name), NOW, time.time(), auth)
        )

    def contribution(self, name: str, deal: Deal, index: int, digest: bytes) -> SignedContribution:
        return sign_contribution(self.workers[name], deal.task_id(index), digest, CHAIN_ID, HUB)

    def commit(self, name: str, aid: int, deal: Deal, index: int, digest: bytes) -> None:
        c = self.contribution(name, deal, index, digest)
        self.tx(lambda conn: state.commit(conn, aid, self.addr(name), c, time.time()))

    def task(self, deal: Deal, index: int = 0) -> dict[str, Any]:
        return self.tx(lambda c: state.task_view(c, "0x" + deal.task_id(index).hex()))


@pytest.fixture
def shared_postgres() -> Iterator[str]:
    """A PostgreSQL schema of its own (skipped without a server)."""
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs PostgreSQL ({POSTGRES_ENV}; make test sets it)")
    with postgres_schema("sched_race") as url:
        yield url


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest) -> Iterator[str]:
    """SQLite in memory; PostgreSQL too when COMPTOIR_TEST_POSTGRES_URL is set."""
    if request.param == "sqlite":
        yield ":memory:"
        return
    with postgres_schema("sched_test") as url:
        yield url


@pytest.fixture
def pool(database: str) -> Iterator[Pool]:
    db = Database(database)
    settings = SchedulerSettings(
        rpc_url="http://127.0.0.1:1",
        deployment=DEPLOYMENT,
        private_key="0x" + "01" * 32,
        workerpool=1,
        db_url=":memory:",
        max_attempts=2,
    )
    # the hub's credibility rule alone; test_trust_policy.py covers the pool's own policy
    db.tx(lambda c: trustpolicy.store(c, lone_score=0, audit_rate=0.0))
    yield Pool(db, settings, Account.create())
    db.close()
