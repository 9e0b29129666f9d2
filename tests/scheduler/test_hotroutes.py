"""The scheduler app serves its hot routes before Starlette's stack (hotroutes.py): the
answers must be the ones the stack gives, errors and body bounds included, and every
other request must still reach the FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from eth_account import Account
from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from comptoir.scheduler.hotroutes import SchedulerApp

from .test_api import api, auth, register  # noqa: F401  (api: fixture)


class Refused(Exception):
    pass


def small_app() -> SchedulerApp:
    app = SchedulerApp(body_limits={"max_bytes": 64})
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
    assert (await client.get("/h/1/echo")).status_code == 405  # the router's, for the path
    assert (await client.head("/h/1/echo")).status_code == 405
    # a path parameter is one non-empty segment, an encoded slash included
    for path in ["/h//echo", "/h/1/2/echo", "/h/1%2F2/echo"]:
        assert (await client.post(path)).status_code == 404, path
    assert client._transport.app.state.served == []  # type: ignore[attr-defined]


# ------------------------------------------------- the real scheduler: same either way


GOOD = "TOKEN"  # replaced by a registered worker's token

REQUESTS = [
    ("POST", "/v1/assignments/5/commit", {}, None),  # no token
    ("POST", "/v1/assignments/5/commit", {"authorization": "Bearer nope"}, b"{}"),
    ("POST", "/v1/work/next", {"authorization": "Bearer nope"}, None),
    ("POST", "/v1/workers/heartbeat", {}, b"[" * 40),
    ("GET", "/v1/assignments/5/commit", {}, None),  # another method: the router's 405
    ("HEAD", "/v1/assignments/5", {}, None),
    ("POST", "/v1/assignments/1%2F2/commit", {}, None),  # an encoded slash: no such route
    ("POST", "/v1/workers/heartbeat", {}, b"1" * (1024 * 1024 + 1)),
    # a worker's own token: the checks after it
    ("GET", "/v1/assignments/5", GOOD, None),  # not one of its assignments
    ("POST", "/v1/assignments/x/reveal", GOOD, b"{}"),
    ("POST", "/v1/assignments/" + "9" * 10_000 + "/commit", GOOD, b"{}"),
    ("POST", "/v1/assignments/%D9%A1/commit", GOOD, b"{}"),  # an Arabic-Indic digit
    ("POST", "/v1/assignments/5/commit", GOOD, b'{"result_hash": ' + b"[" * 40 + b"]" * 40 + b"}"),
    ("POST", "/v1/assignments/5/commit", GOOD, b"not json"),
    ("POST", "/v1/workers/heartbeat", GOOD, b'{"cached": "x"}'),
    ("POST", "/v1/work/next?wait=nan", GOOD, None),
]


async def test_the_scheduler_answers_as_its_stack_would(
    api: tuple[httpx.AsyncClient, SchedulerApp],  # noqa: F811
) -> None:
    client, app = api
    token = await register(client, Account.create())

    async def answers() -> list[tuple[int, Any]]:
        out = []
        for method, path, headers, body in REQUESTS:
            sent = (
                {**auth(token), "content-type": "application/json"} if headers == GOOD else headers
            )
            r = await client.request(method, path, headers=sent, content=body)
            out.append((r.status_code, r.json() if r.content else None))
        return out

    fast = await answers()
    app._exact.clear()  # the hot routes through Starlette's stack and router only
    app._routes.clear()
    assert fast == await answers()
    codes = [code for code, _ in fast]
    details = [str(body) for _, body in fast[9:]]
    assert all("assignment id is 0 to" in d for d in details[:3])  # x, 10 000 digits, ١
    assert "nests deeper than 32" in details[3] and "invalid JSON" in details[4]
    assert "cached" in details[5] and "wait is 0 to" in details[6]
    assert codes == [401, 401, 401, 422, 405, 401, 404, 413, 404, 422, 422, 422, 422, 422, 422, 422]
