"""Market API fixtures: the real app over a stand-in chain (InMemoryChainView)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, make_url, text

from comptoir.market import InMemoryChainView, MarketSettings, create_market_app
from comptoir.market.store import database_url

from .support import ACTORS, APP, CHAIN_ID, DATASET, HUB, POOL, POOL2

POSTGRES_ENV = "COMPTOIR_TEST_POSTGRES_URL"


@pytest.fixture
def memchain() -> InMemoryChainView:
    view = InMemoryChainView()
    view.register(APP, ACTORS.app_owner.address, "app")
    view.register(DATASET, ACTORS.dataset_owner.address, "dataset")
    view.register(POOL, ACTORS.pool_owner.address, "workerpool")
    view.register(POOL2, ACTORS.pool_owner.address, "workerpool")
    return view


# Every API test runs on SQLite, and on PostgreSQL too when CI provides one.
BACKENDS = ["sqlite"] + (["postgresql"] if os.environ.get(POSTGRES_ENV) else [])


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "market.db")
        return
    # one schema per test: isolation without dropping tables, safe under pytest-xdist
    url = database_url(os.environ[POSTGRES_ENV])
    schema = f"market_test_{uuid.uuid4().hex[:16]}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield scoped.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def settings(database: str, memchain: InMemoryChainView) -> MarketSettings:
    return MarketSettings(
        chain_id=CHAIN_ID,
        hub=HUB,
        database=database,
        chain=memchain,
        sync_interval=None,
    )


@pytest.fixture
async def client(settings: MarketSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_market_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://market") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.market.store.close()
