"""The scheduler's HTTP API in process: registration by signed challenge, token checks,
contribution signatures checked off-chain. The chain is unreachable here on purpose: the
API must still serve (scores default to 0 until the next reconciliation)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from comptoir.chain import eip712
from comptoir.chain.client import WorkerStanding, sign_contribution
from comptoir.chain.types import Deal
from comptoir.scheduler import create_scheduler_app, stakelock, state
from comptoir.scheduler.settings import SchedulerSettings
from comptoir.storage.keys import sign_text

from .conftest import CHAIN_ID, DEPLOYMENT, HUB, LOCKED, NOW, deal_info

SCHEDULER = Account.create()


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    from comptoir.scheduler.settings import SchedulerSettings

    settings = SchedulerSettings(
        rpc_url="http://127.0.0.1:1",
        deployment=DEPLOYMENT,
        private_key=SCHEDULER.key.hex(),
        workerpool=7,
        db_url=":memory:",
    )
    app = create_scheduler_app(settings, run_loops=False)
    app.state.scheduler.clock.observe(1, NOW)  # the chain's time, as a new block would say
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sched") as client:
        yield client, app
    app.state.db.close()


async def register(
    client: httpx.AsyncClient, worker: LocalAccount, slots: int | None = None
) -> str:
    ch = (await client.get("/v1/workers/challenge", params={"address": worker.address})).json()
    caps: dict[str, Any] = {"gpu": False, "cpus": 4, "memory": 1 << 30}
    if slots is not None:
        caps["slots"] = slots
    resp = await client.post(
        "/v1/workers/register",
        json={
            "address": worker.address,
            "nonce": ch["nonce"],
            "signature": sign_text(worker.key, ch["message"]),
            "capabilities": caps,
        },
    )
    assert resp.status_code == 200, resp.text
    return str(resp.json()["token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_deal(app: object, trust: int = 1) -> Deal:
    deal, info = deal_info(SCHEDULER.address, trust=trust)
    app.state.db.tx(lambda c: state.add_deal(c, info, time.time()))  # type: ignore[attr-defined]
    return deal


def stake_locked(app: object, address: str, until: int, balance: int = 1000) -> None:
    """Record a worker's chain standing (balance, lock) as a reconciliation would."""
    standing = {address: WorkerStanding(0, balance, until)}
    app.state.db.tx(lambda c: stakelock.store_standings(c, standing, time.time()))  # type: ignore[attr-defined]


async def test_an_unlocked_stake_gets_no_work_and_the_204_says_why(
    api: tuple[httpx.AsyncClient, object],
) -> None:
    client, app = api
    worker = Account.create()
    token = await register(client, worker)  # chain unreachable: balance and lock unknown
    deal = add_deal(app, trust=3)
    empty = await client.post("/v1/work/next", headers=auth(token))
    assert empty.status_code == 204
    assert empty.headers[stakelock.LOCK_HEADER] == str(deal.final_deadline)
    assert "lock" in empty.headers[stakelock.WAIT_HEADER]
    # a lock ending one second before the final deadline is not enough: the stake could
    # leave while the deal can still settle
    stake_locked(app, worker.address, deal.final_deadline - 1)
    assert (await client.post("/v1/work/next", headers=auth(token))).status_code == 204
    # a balance under the deal's worker stake (10) is named, lock or not
    stake_locked(app, worker.address, LOCKED, balance=9)
    short = await client.post("/v1/work/next", headers=auth(token))
    assert short.status_code == 204 and short.headers[stakelock.STAKE_HEADER] == "10"
    stake_locked(app, worker.address, deal.final_deadline)
    got = await client.post("/v1/work/next", headers=auth(token))
    assert got.status_code == 200 and got.json()["task_id"] == "0x" + deal.task_id(0).hex()
    # nothing left it could take: a plain 204, no reason
    again = await client.post("/v1/work/next", headers=auth(token))
    assert again.status_code == 204 and stakelock.WAIT_HEADER not in again.headers


async def test_register_heartbeat_and_list(api: tuple[httpx.AsyncClient, object]) -> None:
    client, _ = api
    worker = Account.create()
    token = await register(client, worker)
    hb = await client.post(
        "/v1/workers/heartbeat", json={"cached": ["AB" * 32]}, headers=auth(token)
    )
    assert hb.status_code == 200
    listed = (await client.get("/v1/workers")).json()
    assert [(w["address"], w["online"], w["cached"], w["weight"]) for w in listed] == [
        (worker.address, True, 1, 2)
    ]


async def test_registration_needs_the_workers_own_fresh_signature(
    api: tuple[httpx.AsyncClient, object],
) -> None:
    client, _ = api
    worker, impostor = Account.create(), Account.create()
    ch = (await client.get("/v1/workers/challenge", params={"address": worker.address})).json()
    body = {"address": worker.address, "nonce": ch["nonce"]}
    forged = await client.post(
        "/v1/workers/register", json={**body, "signature": sign_text(impostor.key, ch["message"])}
    )
    assert forged.status_code == 401
    # a forgery records nothing, so it cannot void the worker's own nonce...
    signed = {**body, "signature": sign_text(worker.key, ch["message"])}
    assert (await client.post("/v1/workers/register", json=signed)).status_code == 200
    # ...and once spent, the nonce never registers again
    assert (await client.post("/v1/workers/register", json=signed)).status_code == 401
    # a signature made for another pool does not register here
    ch = (await client.get("/v1/workers/challenge", params={"address": worker.address})).json()
    other_pool = state.registration_message(8, worker.address, ch["nonce"])
    wrong = await client.post(
        "/v1/workers/register",
        json={
            "address": worker.address,
            "nonce": ch["nonce"],
            "signature": sign_text(worker.key, other_pool),
        },
    )
    assert wrong.status_code == 401


async def test_worker_endpoints_need_a_current_token(
    api: tuple[httpx.AsyncClient, object],
) -> None:
    client, _ = api
    assert (await client.post("/v1/work/next")).status_code == 401
    assert (await client.post("/v1/work/next", headers=auth("nope"))).status_code == 401
    worker = Account.create()
    old = await register(client, worker)
    new = await register(client, worker)  # registering again supersedes the old token
    assert (await client.post("/v1/work/next", headers=auth(old))).status_code == 401
    assert (await client.post("/v1/work/next", headers=auth(new))).status_code == 204


async def test_assignment_commit_and_forged_commit(
    api: tuple[httpx.AsyncClient, object],
) -> None:
    client, app = api
    worker, other = Account.create(), Account.create()
    token = await register(client, worker)
    stake_locked(app, worker.address, LOCKED)  # as the chain would say once it answers
    deal = add_deal(app, trust=3)  # needs two fresh workers: the task stays open
    got = await client.post("/v1/work/next", headers=auth(token))
    assert got.status_code == 200
    a = got.json()
    task = deal.task_id(0)
    assert a["task_id"] == "0x" + task.hex() and a["deal"]["trust"] == 3
    signer = eip712.recover_authorization_signer(
        worker.address,
        task,
        bytes.fromhex(a["authorization"][2:]),
        CHAIN_ID,
        DEPLOYMENT.contributions,
    )
    assert signer == SCHEDULER.address

    def body(account: LocalAccount) -> dict[str, str]:
        c = sign_contribution(account, task, b"\x42" * 32, CHAIN_ID, HUB)
        return {k: "0x" + getattr(c, k).hex() for k in ("result_hash", "result_seal", "r", "vs")}

    path = f"/v1/assignments/{a['id']}"
    forged = await client.post(f"{path}/commit", json=body(other), headers=auth(token))
    assert forged.status_code == 400
    ok = await client.post(f"{path}/commit", json=body(worker), headers=auth(token))
    assert ok.status_code == 200 and ok.json()["status"] == "committed"
    again = await client.post(f"{path}/commit", json=body(worker), headers=auth(token))
    assert again.status_code == 200  # idempotent
    view = (await client.get(path, headers=auth(token))).json()
    assert view["action"] == "wait"
    early = await client.post(
        f"{path}/reveal", json={"digest": "0x" + "42" * 32}, headers=auth(token)
    )
    assert early.status_code == 409  # no consensus yet: nothing to reveal
    stranger = await register(client, other)
    assert (await client.get(path, headers=auth(stranger))).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert "comptoir_scheduler_workers_online 2.0" in metrics
    assert 'comptoir_scheduler_tasks{status="open"} 1.0' in metrics


def _challenge_rows(app: Any) -> int:
    return int(
        app.state.db.tx(
            lambda c: c.exec_driver_sql("SELECT COUNT(*) FROM scheduler_challenges").scalar()
        )
    )


async def test_asking_for_challenges_writes_nothing(api: tuple[httpx.AsyncClient, Any]) -> None:
    """Anyone may ask for a challenge unsigned: a flood of them leaves no row behind; only
    a registration whose signature checked remembers its nonce."""
    client, app = api
    for _ in range(300):
        stranger = Account.create().address
        resp = await client.get("/v1/workers/challenge", params={"address": stranger})
        assert resp.status_code == 200
    assert _challenge_rows(app) == 0
    await register(client, Account.create())
    assert _challenge_rows(app) == 1


async def test_a_challenge_is_bound_to_its_worker_its_pool_and_its_age(
    api: tuple[httpx.AsyncClient, Any],
) -> None:
    client, app = api
    worker, other = Account.create(), Account.create()

    async def attempt(nonce: str, signer: LocalAccount = worker) -> int:
        message = state.registration_message(7, signer.address, nonce)
        body = {
            "address": signer.address,
            "nonce": nonce,
            "signature": sign_text(signer.key, message),
        }
        return (await client.post("/v1/workers/register", json=body)).status_code

    ch = (await client.get("/v1/workers/challenge", params={"address": worker.address})).json()
    issued, salt, mac = ch["nonce"].split("-")
    assert await attempt(ch["nonce"], other) == 401  # issued to another worker
    assert await attempt(f"{issued}-{salt}-{'0' * 32}") == 401  # not this pool's HMAC
    assert await attempt(f"{int(issued) + 1}-{salt}-{mac}") == 401  # the time altered
    assert await attempt("x" * 100) == 401
    ttl = float(SchedulerSettings.__dataclass_fields__["challenge_ttl_s"].default)  # the fixture's
    old = app.state.db.tx(lambda c: state.issue_challenge(c, worker.address, time.time() - ttl - 5))
    assert await attempt(old) == 401  # expired
    ahead = app.state.db.tx(lambda c: state.issue_challenge(c, worker.address, time.time() + 60))
    assert await attempt(ahead) == 401  # dated in the future
    assert await attempt("\u0661" * 13 + f"-{salt}-{mac}") == 401  # digits of another script
    assert await attempt("1-2-3-4") == 401
    assert await attempt(ch["nonce"]) == 200  # the genuine one still works
