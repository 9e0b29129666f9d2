"""A replica whose dispatch answer never reached its worker (the scheduler was killed
before sending it, the connection dropped) is taken back when the worker's heartbeat does
not list it, instead of waiting out its deadline; one the worker lists, one too recent to
have arrived, and those of a worker that does not say are left alone."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select

from comptoir.scheduler import state
from comptoir.scheduler.db import assignments

from .test_api import api, auth  # noqa: F401  (api: fixture)
from .test_commit_next import Client, add_bag, one_slot_worker


async def beat(client: httpx.AsyncClient, token: str, **body: Any) -> httpx.Response:
    return await client.post(
        "/v1/workers/heartbeat", json={"cached": [], **body}, headers=auth(token)
    )


def status_of(app: Any, aid: int) -> str:
    def read(c: Any) -> str:
        found = c.execute(select(assignments.c.status).where(assignments.c.id == aid))
        return str(found.scalar_one())

    return app.state.db.tx(read)


async def pulled(client: httpx.AsyncClient, app: Any) -> tuple[str, dict[str, Any]]:
    """A new one-slot worker's token and the replica it pulled."""
    _worker, token = await one_slot_worker(client, app)
    return token, (await client.post("/v1/work/next", headers=auth(token))).json()


async def test_a_replica_missing_from_the_heartbeat_is_taken_back_and_sent_again(
    api: Client,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client, app = api
    add_bag(app, volume=1)
    token, lost = await pulled(client, app)  # its answer never arrived
    # a heartbeat sent before the answer could have arrived takes nothing back
    assert (await beat(client, token, running=[])).status_code == 200
    assert status_of(app, lost["id"]) == "running"
    monkeypatch.setattr(state, "UNLISTED_GRACE_S", 0.0)  # it was handed out long ago
    before = app.state.scheduler.work_generation
    assert (await beat(client, token, running=[])).status_code == 200
    assert status_of(app, lost["id"]) == "released"
    assert app.state.scheduler.work_generation > before  # held pulls look again
    # its slot is free and the replica is dispatched again (to it, the same row)
    again = await client.post("/v1/work/next", headers=auth(token))
    assert again.status_code == 200 and again.json()["id"] == lost["id"]
    assert status_of(app, lost["id"]) == "running"


async def test_a_listed_replica_or_a_silent_worker_keeps_its_replicas(
    api: Client,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(state, "UNLISTED_GRACE_S", 0.0)
    client, app = api
    add_bag(app, volume=2)
    token, mine = await pulled(client, app)
    _other_token, theirs = await pulled(client, app)
    assert (await beat(client, token, running=[mine["id"]])).status_code == 200
    assert (await beat(client, token)).status_code == 200  # says nothing: nothing assumed
    # a worker's heartbeat only ever concerns its own replicas
    assert (await beat(client, token, running=[theirs["id"]])).status_code == 200
    assert status_of(app, theirs["id"]) == "running"
    assert status_of(app, mine["id"]) == "released"  # not listed in the last one


async def test_a_heartbeat_listing_nonsense_is_refused(api: Client) -> None:  # noqa: F811
    client, app = api
    token = (await one_slot_worker(client, app))[1]
    for running in ([-1], ["x"], [2**60], list(range(10_001)), {"a": 1}):
        refused = await beat(client, token, running=running)
        assert refused.status_code == 422, (str(running)[:40], refused.text)
    stranger = await client.post("/v1/workers/heartbeat", json={"running": []})
    assert stranger.status_code == 401
