"""A commitment can ask for the worker's next assignment (``POST …/commit?next=1``): the
slot it frees is taken again in the same request, as BOINC's scheduler RPC reports a
result and asks for work at once. The dispatch rules are those of ``work/next``."""

from __future__ import annotations

import time
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.scheduler import state, trustpolicy

from .conftest import LOCKED, deal_info
from .test_api import SCHEDULER, api, auth, register, stake_locked  # noqa: F401  (api: fixture)
from .test_verdict_poll import commitment

Client = tuple[httpx.AsyncClient, Any]


def add_bag(app: Any, volume: int, trust: int = 1) -> None:
    _deal, info = deal_info(SCHEDULER.address, volume=volume, trust=trust)
    app.state.db.tx(lambda c: state.add_deal(c, info, time.time()))


async def one_slot_worker(client: httpx.AsyncClient, app: Any) -> tuple[LocalAccount, str]:
    """A registered, staked worker that runs one replica at a time."""
    worker = Account.create()
    token = await register(client, worker, slots=1)
    stake_locked(app, worker.address, LOCKED)
    return worker, token


async def commit(
    client: httpx.AsyncClient,
    worker: LocalAccount,
    token: str,
    a: dict[str, Any],
    **params: Any,
) -> httpx.Response:
    return await client.post(
        f"/v1/assignments/{a['id']}/commit",
        json=commitment(worker, a["task_id"]),
        params=params,
        headers=auth(token),
    )


async def test_a_commitment_with_next_hands_out_the_freed_slot_again(api: Client) -> None:  # noqa: F811
    client, app = api
    add_bag(app, volume=3)
    app.state.db.tx(lambda c: trustpolicy.store(c, 0, 0.0))  # one result stands alone
    worker, token = await one_slot_worker(client, app)
    first = (await client.post("/v1/work/next", headers=auth(token))).json()
    # its one slot is taken: a pull gets nothing
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204
    answer = await commit(client, worker, token, first, next=1)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["action"] == "reveal" and body["id"] == first["id"]
    handed = body["next"]
    assert handed["status"] == "running" and handed["index"] == first["index"] + 1
    assert handed["task_id"] != first["task_id"] and handed["authorization"].startswith("0x")
    # the handed replica holds the slot again, and is the worker's like a pulled one
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204
    view = await client.get(f"/v1/assignments/{handed['id']}", headers=auth(token))
    assert view.json()["action"] == "run"
    then = await commit(client, worker, token, handed, next=1)
    assert then.json()["next"]["index"] == first["index"] + 2


async def test_a_commitment_without_next_hands_out_nothing(api: Client) -> None:  # noqa: F811
    client, app = api
    add_bag(app, volume=2)
    worker, token = await one_slot_worker(client, app)
    first = (await client.post("/v1/work/next", headers=auth(token))).json()
    for params in ({}, {"next": 0}):
        answer = await commit(client, worker, token, first, **params)
        assert answer.status_code == 200 and "next" not in answer.json()
    # its slot is free: the second task is pulled as before
    second = await client.post("/v1/work/next", headers=auth(token))
    assert second.status_code == 200 and second.json()["index"] == first["index"] + 1


async def test_next_is_null_when_there_is_nothing_left(api: Client) -> None:  # noqa: F811
    client, app = api
    add_bag(app, volume=1)
    worker, token = await one_slot_worker(client, app)
    only = (await client.post("/v1/work/next", headers=auth(token))).json()
    answer = await commit(client, worker, token, only, next=1)
    assert answer.status_code == 200 and answer.json()["next"] is None


async def test_next_never_hands_a_worker_a_second_replica_of_its_task(api: Client) -> None:  # noqa: F811
    """Two fresh workers on a replicated bag: what a commitment hands out follows the
    dispatch rules, so the committer gets another task, never its own task's replica."""
    client, app = api
    add_bag(app, volume=2, trust=3)
    a, a_token = await one_slot_worker(client, app)
    b, b_token = await one_slot_worker(client, app)
    a_first = (await client.post("/v1/work/next", headers=auth(a_token))).json()
    b_first = (await client.post("/v1/work/next", headers=auth(b_token))).json()
    assert a_first["task_id"] == b_first["task_id"]
    a_answer = (await commit(client, a, a_token, a_first, next=1)).json()
    assert a_answer["action"] == "wait"  # its task waits for b's commitment
    assert a_answer["next"]["task_id"] != a_first["task_id"]
    b_answer = (await commit(client, b, b_token, b_first, next=1)).json()
    assert b_answer["action"] == "reveal"  # b's commitment decided the first task
    assert b_answer["next"]["task_id"] == a_answer["next"]["task_id"]  # its other replica


async def test_a_refused_commitment_hands_out_nothing(api: Client) -> None:  # noqa: F811
    client, app = api
    add_bag(app, volume=2)
    worker, token = await one_slot_worker(client, app)
    first = (await client.post("/v1/work/next", headers=auth(token))).json()
    forged = await client.post(
        f"/v1/assignments/{first['id']}/commit",
        json=commitment(Account.create(), first["task_id"]),  # someone else's signature
        params={"next": 1},
        headers=auth(token),
    )
    assert forged.status_code == 400 and "not signed by this worker" in forged.json()["detail"]
    # nothing was dispatched by it: the slot is still held by the first replica only
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204
    for odd in ("2", "yes", "true", ""):
        refused = await commit(client, worker, token, first, next=odd)
        assert refused.status_code == 422, (odd, refused.text)
        assert refused.json()["detail"].startswith("Invalid ")
    ok = await commit(client, worker, token, first, next=1)
    assert ok.status_code == 200 and ok.json()["next"]["index"] == first["index"] + 1


async def test_repeating_a_commitment_with_next_never_exceeds_the_slots(api: Client) -> None:  # noqa: F811
    """A worker resending its commitment with ?next=1 (out of turn, again and again) gets
    one next assignment for its one slot; a stranger committing for it gets a 404 and
    nothing handed out."""
    client, app = api
    add_bag(app, volume=5)
    worker, token = await one_slot_worker(client, app)
    first = (await client.post("/v1/work/next", headers=auth(token))).json()
    answers = [(await commit(client, worker, token, first, next=1)).json() for _ in range(4)]
    handed = [a["next"] for a in answers if a["next"] is not None]
    assert len(handed) == 1  # the repeats find the slot taken
    _stranger, stranger_token = await one_slot_worker(client, app)
    theirs = await commit(client, worker, stranger_token, handed[0], next=1)
    assert theirs.status_code == 404 and "next" not in theirs.json()
    # the stranger's own slot is still free: nothing was dispatched to it by that call
    mine = await client.post("/v1/work/next", headers=auth(stranger_token))
    assert mine.status_code == 200 and mine.json()["id"] != handed[0]["id"]
