"""A scheduler whose database cannot be written says so: /healthz answers 503 and every
endpoint one sentence, never a traceback (SQLite's own failures, no mock)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import event

from comptoir.scheduler import create_scheduler_app, state
from comptoir.scheduler.settings import SchedulerSettings

from .conftest import DEPLOYMENT


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = SchedulerSettings(
        rpc_url="http://127.0.0.1:1",
        deployment=DEPLOYMENT,
        private_key=Account.create().key.hex(),
        workerpool=7,
        db_url=str(tmp_path / "scheduler.db"),
    )
    app = create_scheduler_app(settings, run_loops=False)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sched") as client:
        yield client, app
    app.state.db.close()


def _on_connect(app: Any, pragma: str) -> None:
    """Every new connection runs `pragma`; existing ones are dropped."""
    engine = app.state.db.engine

    def run(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute(pragma)

    event.listen(engine, "connect", run)
    engine.dispose()


def _one_sentence(resp: httpx.Response) -> None:
    assert resp.status_code == 503
    assert resp.json() == {"detail": state.DATABASE_DOWN}
    assert "Traceback" not in resp.text


async def test_a_read_only_database_is_unhealthy(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, app = api
    assert (await client.get("/healthz")).status_code == 200
    _on_connect(app, "PRAGMA query_only = ON")  # SQLite refuses every write now
    _one_sentence(await client.get("/healthz"))
    address = Account.create().address
    _one_sentence(await client.get("/v1/workers/challenge", params={"address": address}))
    assert (await client.get("/v1/workers")).status_code == 200  # reads still work


async def test_a_full_database_is_unhealthy(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, app = api
    pages = app.state.db.tx(lambda c: c.exec_driver_sql("PRAGMA page_count").scalar())
    _on_connect(app, f"PRAGMA max_page_count = {int(pages) + 1}")  # SQLITE_FULL past it
    address = Account.create().address
    params = {"address": address}
    codes = set()
    for _ in range(200):  # challenges fill the last free page
        codes.add((await client.get("/v1/workers/challenge", params=params)).status_code)
        if 503 in codes:
            break
    assert codes == {200, 503}
    _one_sentence(await client.get("/v1/workers/challenge", params=params))
    _one_sentence(await client.get("/healthz"))
