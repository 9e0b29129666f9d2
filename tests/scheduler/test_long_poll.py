"""work/next as a long poll, and slots advertised at registration, over the HTTP API."""

from __future__ import annotations

import asyncio

import httpx
from eth_account import Account

from comptoir.scheduler.api import WORK_WAIT_S
from comptoir.storage.keys import sign_text

from .conftest import LOCKED
from .test_api import add_deal, api, auth, register, stake_locked  # noqa: F401  (api: fixture)


async def _held(app: object) -> None:
    """Until a work/next request waits for new work (bounded: 500 looks)."""
    event = app.state.scheduler.new_work  # type: ignore[attr-defined]
    for _ in range(500):
        if event._waiters:  # the request checked the database, found nothing and waits
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the request was never held")


async def test_a_held_request_gets_the_work_that_appears_meanwhile(
    api: tuple[httpx.AsyncClient, object],  # noqa: F811
) -> None:
    client, app = api
    worker = Account.create()
    token = await register(client, worker)
    stake_locked(app, worker.address, LOCKED)  # as the chain would say: work may go to it
    request = asyncio.create_task(
        client.post("/v1/work/next", params={"wait": WORK_WAIT_S}, headers=auth(token))
    )
    await _held(app)
    deal = add_deal(app)
    app.state.scheduler.work_appeared()  # type: ignore[attr-defined]  (the watcher's pulse)
    got = await request
    assert got.status_code == 200, got.text
    assert got.json()["task_id"] == "0x" + deal.task_id(0).hex()


async def test_without_wait_an_empty_answer_comes_at_once(
    api: tuple[httpx.AsyncClient, object],  # noqa: F811
) -> None:
    client, app = api
    token = await register(client, Account.create())
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204
    assert not app.state.scheduler.new_work._waiters  # type: ignore[attr-defined]
    too_long = await client.post(
        "/v1/work/next", params={"wait": WORK_WAIT_S + 1}, headers=auth(token)
    )
    assert too_long.status_code == 422


async def test_registration_advertises_the_wait_and_records_the_slots(
    api: tuple[httpx.AsyncClient, object],  # noqa: F811
) -> None:
    client, _ = api
    worker = Account.create()

    async def register_with(slots: int) -> httpx.Response:
        ch = (await client.get("/v1/workers/challenge", params={"address": worker.address})).json()
        return await client.post(
            "/v1/workers/register",
            json={
                "address": worker.address,
                "nonce": ch["nonce"],
                "signature": sign_text(worker.key, ch["message"]),
                "capabilities": {"cpus": 4, "memory": 1 << 30, "slots": slots},
            },
        )

    assert (await register_with(0)).status_code == 422
    answer = await register_with(3)
    assert answer.status_code == 200 and answer.json()["work_wait_s"] == WORK_WAIT_S
    listed = (await client.get("/v1/workers")).json()
    assert [(w["address"], w["slots"]) for w in listed] == [(worker.address, 3)]


async def test_a_worker_at_its_slots_gets_nothing_more(
    api: tuple[httpx.AsyncClient, object],  # noqa: F811
) -> None:
    client, app = api
    worker = Account.create()
    token = await register(client, worker)  # no slots said: one
    stake_locked(app, worker.address, LOCKED)
    add_deal(app)
    add_deal(app)
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 200
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204


async def test_one_worker_cannot_hold_many_long_polls(
    api: tuple[httpx.AsyncClient, object],  # noqa: F811
) -> None:
    """A hostile worker opening many waits at once pins at most MAX_HELD_PER_WORKER of
    them: the others answer at once, as without `wait`."""
    from comptoir.scheduler import api as scheduler_api

    cap = getattr(scheduler_api, "MAX_HELD_PER_WORKER", 2)
    client, app = api
    token = await register(client, Account.create())
    polls = [
        asyncio.create_task(
            client.post("/v1/work/next", params={"wait": WORK_WAIT_S}, headers=auth(token))
        )
        for _ in range(cap + 6)
    ]
    await _held(app)
    await asyncio.sleep(0.3)
    done = [p for p in polls if p.done()]
    assert len(done) >= 6
    assert all(p.result().status_code == 204 for p in done)
    waiters = app.state.scheduler.new_work._waiters  # type: ignore[attr-defined]
    assert len(waiters) <= cap
    for p in polls:
        assert (await p).status_code == 204
