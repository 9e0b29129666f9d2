"""A scheduler whose database cannot be written says so: /healthz answers 503 and every
endpoint one sentence, never a traceback (SQLite's own failures, no mock). The key
service whose chain is down answers 503 too: retry, not refused."""

from __future__ import annotations

import hashlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from sqlalchemy import event

from comptoir.chain import eip712
from comptoir.chain.client import ChainClient, connect
from comptoir.exceptions import StorageUnavailable
from comptoir.scheduler import create_scheduler_app, state
from comptoir.scheduler.keypolicy import chain_deal_check
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.storage import encrypt_dataset
from comptoir.storage.keys import (
    KeyServiceClient,
    KeyVault,
    NonceBook,
    SignedNoncePolicy,
    create_key_service_app,
    sign_text,
)
from comptoir.testing.servers import serve_app

from .conftest import CHAIN_ID, DEPLOYMENT, deal_info


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
    app.state.db.reconnect()


async def _register(client: httpx.AsyncClient, worker: Any) -> httpx.Response:
    """A signed registration: asking for a challenge writes nothing, registering does."""
    asked = await client.get("/v1/workers/challenge", params={"address": worker.address})
    if asked.status_code != 200:  # the pool's secret is drawn on first use: a write
        return asked
    ch = asked.json()
    body = {
        "address": worker.address,
        "nonce": ch["nonce"],
        "signature": sign_text(worker.key, ch["message"]),
    }
    return await client.post("/v1/workers/register", json=body)


def _one_sentence(resp: httpx.Response) -> None:
    assert resp.status_code == 503
    assert resp.json() == {"detail": state.DATABASE_DOWN}
    assert "Traceback" not in resp.text


async def test_a_read_only_database_is_unhealthy(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, app = api
    assert (await client.get("/healthz")).status_code == 200
    _on_connect(app, "PRAGMA query_only = ON")  # SQLite refuses every write now
    _one_sentence(await client.get("/healthz"))
    _one_sentence(await _register(client, Account.create()))
    assert (await client.get("/v1/workers")).status_code == 200  # reads still work


async def test_a_full_database_is_unhealthy(api: tuple[httpx.AsyncClient, Any]) -> None:
    client, app = api
    pages = app.state.db.tx(lambda c: c.exec_driver_sql("PRAGMA page_count").scalar())
    _on_connect(app, f"PRAGMA max_page_count = {int(pages) + 1}")  # SQLITE_FULL past it
    codes = set()
    for _ in range(200):  # registrations fill the last free page
        codes.add((await _register(client, Account.create())).status_code)
        if 503 in codes:
            break
    assert codes == {200, 503}
    _one_sentence(await _register(client, Account.create()))
    _one_sentence(await client.get("/healthz"))


def test_a_key_release_the_chain_cannot_check_is_retryable(tmp_path: Path) -> None:
    """The chain-backed key policy with its node down: 503 and StorageUnavailable (the
    worker waits and asks again), not a refusal that fails the replica."""
    scheduler, owner, worker = Account.create(), Account.create(), Account.create()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = connect(f"http://127.0.0.1:{sock.getsockname()[1]}", 2.0, check=False)
    nonces = NonceBook()
    policy = SignedNoncePolicy(nonces, chain_deal_check(ChainClient(dead, DEPLOYMENT)))
    app = create_key_service_app(KeyVault(tmp_path / "keys.db"), policy, nonces=nonces)
    blob, key = encrypt_dataset(b"data")
    checksum = hashlib.sha256(blob).hexdigest()
    deal, _ = deal_info(str(scheduler.address))
    auth = eip712.sign_authorization(
        scheduler, worker.address, deal.task_id(0), CHAIN_ID, DEPLOYMENT.contributions
    )
    evidence = {"deal": deal.to_json(), "index": 0, "block": 10, "authorization": auth.hex()}
    with serve_app(app) as url:
        client = KeyServiceClient(url)
        client.register_key(checksum, key, owner.key)
        with pytest.raises(StorageUnavailable, match="503"):
            client.request_key(checksum, worker.key, evidence)
        client.close()
