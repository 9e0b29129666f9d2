"""The scheduler app serves its hot routes before Starlette's stack (hotroutes.py): the
answers must be the ones the stack gives, errors and body bounds included, and every
other request must still reach the FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from comptoir.httpguard import guard
from comptoir.scheduler import create_scheduler_app
from comptoir.scheduler.hotroutes import SchedulerApp, path_pattern
from comptoir.scheduler.settings import SchedulerSettings

from .conftest import DEPLOYMENT


class Refused(Exception):
    pass


def small_app() -> SchedulerApp:
    app = SchedulerApp(body_limits={"max_bytes": 64})
    guard(app, max_bytes=64)
    served: list[str] = []
    app.state.served = served

    async def echo(request: Request) -> Response:
        served.append(request.path_params.get("aid", "-"))
        body = await request.body()
        return JSONResponse({"aid": request.path_params.get("aid"), "body": body.decode()})

    async def refuse(request: Request) -> Response:
        raise Refused("no")

    async def crash(request: Request) -> Response:
        raise RuntimeError("bug")

    async def gone(request: Request) -> Response:
        raise HTTPException(404, "gone", headers={"x-why": "test"})

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    for path, endpoint in [
        ("/h/{aid}/echo", echo),
        ("/h/refuse", refuse),
        ("/h/crash", crash),
        ("/h/gone", gone),
    ]:
        app.hot(path, "POST", endpoint)

    @app.get("/documented")
    async def documented() -> dict[str, Any]:
        return {"stack": True}

    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = small_app()
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://s") as c:
        yield c


def test_a_path_parameter_is_one_segment() -> None:
    pattern = path_pattern("/v1/assignments/{aid}/commit")
    found = pattern.match("/v1/assignments/12/commit")
    assert found is not None and found.groupdict() == {"aid": "12"}
    for other in ["/v1/assignments//commit", "/v1/assignments/1/2/commit", "/v1/assignments/1"]:
        assert pattern.match(other) is None, other


async def test_a_hot_route_is_served_with_its_parameters_and_body(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/h/7/echo", content=b'{"x":1}')
    assert r.status_code == 200 and r.json() == {"aid": "7", "body": '{"x":1}'}
    assert client._transport.app.state.served == ["7"]  # type: ignore[attr-defined]


async def test_errors_are_answered_by_the_apps_handlers(client: httpx.AsyncClient) -> None:
    refused = await client.post("/h/refuse")
    assert (refused.status_code, refused.json()) == (409, {"detail": "no"})
    gone = await client.post("/h/gone")
    assert (gone.status_code, gone.json(), gone.headers["x-why"]) == (
        404,
        {"detail": "gone"},
        "test",
    )
    crash = await client.post("/h/crash")
    assert crash.status_code == 500 and "try again" in crash.json()["detail"]


async def test_the_body_bounds_hold_on_hot_routes(client: httpx.AsyncClient) -> None:
    big = await client.post("/h/1/echo", content=b"[" + b"1," * 40 + b"1]")
    assert big.status_code == 413 and "larger than 64 bytes" in big.json()["detail"]
    assert client._transport.app.state.served == []  # type: ignore[attr-defined]


async def test_other_requests_reach_the_fastapi_app(client: httpx.AsyncClient) -> None:
    assert (await client.get("/documented")).json() == {"stack": True}
    assert (await client.get("/h/1/echo")).status_code == 404  # not a route of the router
    assert (await client.post("/h/1/2/echo")).status_code == 404


# ------------------------------------------------- the real scheduler: same either way


@pytest.fixture
async def scheduler() -> AsyncIterator[tuple[httpx.AsyncClient, SchedulerApp]]:
    settings = SchedulerSettings(
        rpc_url="http://127.0.0.1:1",
        deployment=DEPLOYMENT,
        private_key="0x" + "02" * 32,
        workerpool=7,
        db_url=":memory:",
    )
    app = create_scheduler_app(settings, run_loops=False)
    assert isinstance(app, SchedulerApp)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sched") as c:
        yield c, app
    app.state.db.close()


REQUESTS = [
    ("POST", "/v1/assignments/5/commit", {}, None),  # no token
    ("POST", "/v1/assignments/5/commit", {"authorization": "Bearer nope"}, b"{}"),
    ("POST", "/v1/assignments/x/reveal", {"authorization": "Bearer nope"}, b"{}"),
    ("GET", "/v1/assignments/5", {}, None),
    ("POST", "/v1/work/next", {"authorization": "Bearer nope"}, None),
    ("POST", "/v1/workers/heartbeat", {}, b"[" * 40),
    ("GET", "/v1/assignments/5/commit", {}, None),  # another method: the router's 405
]


async def test_the_scheduler_answers_as_its_stack_would(
    scheduler: tuple[httpx.AsyncClient, SchedulerApp],
) -> None:
    client, app = scheduler

    async def answers() -> list[tuple[int, Any]]:
        out = []
        for method, path, headers, body in REQUESTS:
            r = await client.request(method, path, headers=headers, content=body)
            out.append((r.status_code, r.json()))
        return out

    fast = await answers()
    app._exact.clear()  # the hot routes through Starlette's stack and router only
    app._patterns.clear()
    assert fast == await answers()
    assert [code for code, _ in fast] == [401, 401, 401, 401, 401, 422, 405]
