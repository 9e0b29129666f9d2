"""Market API fixtures: the real app over a stand-in chain (InMemoryChainView)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app
from comptoir.testing.servers import BACKENDS, postgres_schema

from .support import ACTORS, ADMIN_TOKEN, APP, CHAIN_ID, DATASET, HUB, POOL, POOL2


@pytest.fixture
def memchain() -> InMemoryChainView:
    view = InMemoryChainView()
    view.register(APP, ACTORS.app_owner.address, "app")
    view.register(DATASET, ACTORS.dataset_owner.address, "dataset")
    view.register(POOL, ACTORS.pool_owner.address, "workerpool")
    view.register(POOL2, ACTORS.pool_owner.address, "workerpool")
    # what listing a request or a workerpool order needs deposited on the hub
    view.deposit(ACTORS.requester.address, 10**6)
    view.deposit(ACTORS.pool_owner.address, 10**6)
    return view


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "market.db")
        return
    with postgres_schema("market_test") as url:
        yield url


@pytest.fixture
def settings(database: str, memchain: InMemoryChainView) -> MarketSettings:
    return MarketSettings(
        chain_id=CHAIN_ID,
        hub=HUB,
        database=database,
        chain=memchain,
        sync_interval=None,
        admin_token=ADMIN_TOKEN,
    )


@pytest.fixture
async def client(settings: MarketSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_market_app(settings)
    transport = httpx.ASGITransport(app=app)
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://market", headers=admin) as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.market.store.close()
