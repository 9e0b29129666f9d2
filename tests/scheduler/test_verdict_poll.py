"""The commit answers what to do next, and a committed replica long-polls its verdict
(``GET /v1/assignments/{id}?wait=``) instead of polling for it; the hot routes refuse
malformed input as the rest of the API does (422, one sentence)."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.chain.client import sign_contribution
from comptoir.scheduler import trustpolicy
from comptoir.scheduler.api import MAX_ID, WORK_WAIT_S

from .conftest import CHAIN_ID, HUB, LOCKED
from .test_api import add_deal, api, auth, register, stake_locked  # noqa: F401  (api: fixture)

DIGEST = b"\x42" * 32


def commitment(account: LocalAccount, task_id: str, digest: bytes = DIGEST) -> dict[str, str]:
    c = sign_contribution(account, bytes.fromhex(task_id[2:]), digest, CHAIN_ID, HUB)
    return {k: "0x" + getattr(c, k).hex() for k in ("result_hash", "result_seal", "r", "vs")}


async def pulled(client: httpx.AsyncClient, app: Any) -> tuple[LocalAccount, str, dict[str, Any]]:
    worker = Account.create()
    token = await register(client, worker)
    stake_locked(app, worker.address, LOCKED)
    got = await client.post("/v1/work/next", headers=auth(token))
    assert got.status_code == 200, got.text
    return worker, token, got.json()


async def commit_as(
    client: httpx.AsyncClient, worker: LocalAccount, token: str, a: dict[str, Any]
) -> httpx.Response:
    """`worker` commits DIGEST for its assignment `a`."""
    return await client.post(
        f"/v1/assignments/{a['id']}/commit",
        json=commitment(worker, a["task_id"]),
        headers=auth(token),
    )


async def test_a_commit_that_makes_the_consensus_answers_reveal(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    client, app = api
    add_deal(app, trust=1)
    worker, token, a = await pulled(client, app)
    # the pool's policy lets its result stand alone, unaudited
    app.state.db.tx(lambda c: trustpolicy.store(c, 0, 0.0))
    ok = await commit_as(client, worker, token, a)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "committed"
    assert ok.json()["action"] == "reveal"  # no poll needed before revealing
    assert ok.json()["task_id"] == a["task_id"]


async def test_a_waiting_replica_is_woken_by_the_commit_that_decides(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    client, app = api
    add_deal(app, trust=3)  # fresh workers (score 0): two agreeing replicas needed
    first, first_token, a = await pulled(client, app)
    second, second_token, b = await pulled(client, app)
    assert a["task_id"] == b["task_id"] and a["id"] != b["id"]
    committed = await commit_as(client, first, first_token, a)
    assert committed.json()["action"] == "wait"
    poll = asyncio.create_task(
        client.get(
            f"/v1/assignments/{a['id']}",
            params={"wait": WORK_WAIT_S},
            headers=auth(first_token),
        )
    )
    await asyncio.sleep(0.2)
    assert not poll.done()  # held: nothing decided yet
    started = time.monotonic()
    decided = await commit_as(client, second, second_token, b)
    assert decided.json()["action"] == "reveal"
    woken = await poll
    assert woken.status_code == 200 and woken.json()["action"] == "reveal"
    assert time.monotonic() - started < WORK_WAIT_S / 2  # woken, not timed out


async def test_a_verdict_poll_without_news_answers_wait_when_it_expires(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    client, app = api
    add_deal(app, trust=3)
    worker, token, a = await pulled(client, app)
    await commit_as(client, worker, token, a)
    started = time.monotonic()
    seen = await client.get(f"/v1/assignments/{a['id']}", params={"wait": 0.3}, headers=auth(token))
    assert seen.status_code == 200 and seen.json()["action"] == "wait"
    assert time.monotonic() - started >= 0.3
    assert len(app.state.verdicts) == 0  # nothing is left watching the task
    # a running replica is not held: only a committed one waits for a verdict
    add_deal(app, trust=1)
    running = (await client.post("/v1/work/next", headers=auth(token))).json()
    started = time.monotonic()
    view = await client.get(
        f"/v1/assignments/{running['id']}", params={"wait": WORK_WAIT_S}, headers=auth(token)
    )
    assert view.json()["action"] == "run" and time.monotonic() - started < WORK_WAIT_S / 2


async def test_the_hot_routes_refuse_malformed_input_in_one_sentence(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    client, app = api
    add_deal(app, trust=1)
    worker, token, a = await pulled(client, app)
    path = f"/v1/assignments/{a['id']}"
    cases = [
        client.get("/v1/assignments/abc", headers=auth(token)),
        client.get(f"/v1/assignments/{MAX_ID + 1}", headers=auth(token)),
        client.get(path, params={"wait": "nan"}, headers=auth(token)),
        client.get(path, params={"wait": WORK_WAIT_S + 1}, headers=auth(token)),
        client.post("/v1/work/next", params={"wait": "-1"}, headers=auth(token)),
        client.post(f"{path}/commit", content=b"", headers=auth(token)),
        client.post(f"{path}/commit", json={"result_hash": "0x12"}, headers=auth(token)),
        client.post(f"{path}/reveal", json={"digest": 5}, headers=auth(token)),
        client.post("/v1/workers/heartbeat", json={"cached": "x"}, headers=auth(token)),
    ]
    for refused in await asyncio.gather(*cases):
        assert refused.status_code == 422, (refused.request.url, refused.text)
        detail = refused.json()["detail"]
        assert isinstance(detail, str) and detail.startswith("Invalid ") and detail.endswith(".")
    unknown = await client.get("/v1/assignments/999999", headers=auth(token))
    assert unknown.status_code == 404 and "not one of this worker's" in unknown.json()["detail"]
    no_token = await client.post(f"{path}/commit", json=commitment(worker, a["task_id"]))
    assert no_token.status_code == 401
    ok = await client.post(
        f"{path}/commit", json=commitment(worker, a["task_id"]), headers=auth(token)
    )
    assert ok.status_code == 200


async def test_a_stranger_cannot_hold_or_learn_another_workers_verdict(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    """A worker long-polling another worker's committed assignment gets a 404 at once (no
    poll held, nothing watched); a wait far past the bound or in odd digits is a 422."""
    client, app = api
    add_deal(app, trust=3)
    worker, token, a = await pulled(client, app)
    await commit_as(client, worker, token, a)
    stranger = await register(client, Account.create())
    started = time.monotonic()
    seen = await client.get(
        f"/v1/assignments/{a['id']}", params={"wait": WORK_WAIT_S}, headers=auth(stranger)
    )
    assert seen.status_code == 404 and time.monotonic() - started < WORK_WAIT_S / 2
    assert len(app.state.verdicts) == 0
    for odd in ("1e308", "9" * 400, "\u0661", "0x1", "1,5"):
        refused = await client.get(
            f"/v1/assignments/{a['id']}", params={"wait": odd}, headers=auth(token)
        )
        assert refused.status_code == 422, (odd, refused.text)


async def test_a_body_not_sent_as_json_is_refused(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    client, app = api
    add_deal(app, trust=1)
    worker, token, a = await pulled(client, app)
    body = json.dumps(commitment(worker, a["task_id"]))
    for kind in (None, "text/plain", "application/x-www-form-urlencoded"):
        headers = auth(token) | ({"Content-Type": kind} if kind else {})
        refused = await client.post(
            f"/v1/assignments/{a['id']}/commit", content=body, headers=headers
        )
        assert refused.status_code == 422, (kind, refused.text)
        assert "JSON" in refused.json()["detail"]
    ok = await client.post(
        f"/v1/assignments/{a['id']}/commit",
        content=body,
        headers=auth(token) | {"Content-Type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 200, ok.text


async def test_a_repeated_commitment_wakes_nobody(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    """Resending a stored commitment changes nothing: the held work/next polls of every
    worker are not made to look for work again."""
    client, app = api
    add_deal(app, trust=3)
    worker, token, a = await pulled(client, app)
    path = f"/v1/assignments/{a['id']}/commit"
    body = commitment(worker, a["task_id"])
    assert (await client.post(path, json=body, headers=auth(token))).status_code == 200
    before = app.state.scheduler.work_generation
    for _ in range(5):
        again = await client.post(path, json=body, headers=auth(token))
        assert again.status_code == 200 and again.json()["action"] == "wait"
    assert app.state.scheduler.work_generation == before


async def test_verdict_polls_do_not_take_the_place_of_work_polls(
    api: tuple[httpx.AsyncClient, Any],  # noqa: F811
) -> None:
    from comptoir.scheduler.api import MAX_HELD_PER_WORKER

    client, app = api
    add_deal(app, trust=3)
    worker, token, a = await pulled(client, app)
    await commit_as(client, worker, token, a)
    verdicts = [
        asyncio.create_task(
            client.get(f"/v1/assignments/{a['id']}", params={"wait": 1}, headers=auth(token))
        )
        for _ in range(MAX_HELD_PER_WORKER)
    ]
    await asyncio.sleep(0.2)
    assert not any(v.done() for v in verdicts)  # both held
    started = time.monotonic()
    work = await client.post("/v1/work/next", params={"wait": 0.5}, headers=auth(token))
    assert work.status_code == 204
    assert time.monotonic() - started >= 0.5  # still held itself: its own cap
    for v in verdicts:
        assert (await v).json()["action"] == "wait"


def test_a_stale_open_status_does_not_restart_a_reveal(pool: Any) -> None:
    """Two commitments evaluated against task rows read before either was stored (two
    API processes on PostgreSQL): the reveal phase starts once, its clock is not reset
    and no replica is cancelled by the late one."""
    from comptoir.scheduler import state as st

    deal = pool.add_deal(trust=1)
    for name in ("a", "b"):
        pool.add_worker(name)
    pool.tx(lambda c: trustpolicy.store(c, 0, 0.0))
    task = "0x" + deal.task_id(0).hex()
    stale = pool.tx(lambda c: st._TASK_BY_ID.first(c, {"task_id": task}))
    got = pool.next("a")
    assert got is not None
    pool.commit("a", got["id"], deal, 0, DIGEST)
    started = pool.tx(lambda c: st._TASK_BY_ID.first(c, {"task_id": task}))
    assert started.status == st.REVEALING
    time.sleep(0.01)
    pool.tx(lambda c: st.evaluate(c, task, time.time(), task=stale))  # the late one
    after = pool.tx(lambda c: st._TASK_BY_ID.first(c, {"task_id": task}))
    assert after.status == st.REVEALING and after.reveal_started == started.reveal_started
