"""The scheduler's app, with the routes every worker calls for every replica served
before Starlette's stack.

A request to a FastAPI app passes through Starlette's error middleware, the user
middleware, the exception middleware, FastAPI's exit-stack middleware, the router's
matching and the endpoint's exception wrapper before the endpoint runs: about 55 µs of
CPU a request on this machine, as much as half of what a commitment costs besides its
database work. `SchedulerApp` answers the hot routes (heartbeat, work/next, the
assignment's state, commit, reveal) straight from its ``__call__``: the same body bounds
(`BodyGuard`), the same endpoint, and its errors answered by the app's own exception
handlers, so a client sees the same answers either way. Everything else (another method
on the same path, HEAD, the documented routes, lifespan) is the FastAPI app's as before,
and the hot routes stay in its router too.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from comptoir.httpguard import ASGIApp, BodyGuard, Receive, Scope, Send, guard

Endpoint = Callable[[Request], Awaitable[Response]]

log = structlog.get_logger("comptoir.scheduler")


class SchedulerApp(FastAPI):
    """FastAPI behind `guard` (`body_limits`), plus `hot` routes dispatched before its
    middleware stack under the same limits."""

    def __init__(self, *args: Any, body_limits: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        guard(self, **body_limits)
        self._body_limits = body_limits
        self._exact: dict[tuple[str, str], ASGIApp] = {}  # (method, path) without parameters
        self._routes: list[tuple[str, Route, ASGIApp]] = []

    def hot(self, path: str, method: str, endpoint: Endpoint) -> None:
        """Route `method` `path` to `endpoint`: in the router (other methods: 405, HEAD)
        and served before the stack, first among the hot routes matched."""
        route = Route(path, endpoint, methods=[method])
        self.router.routes.insert(len(self._routes) + len(self._exact), route)
        served = BodyGuard(partial(self._serve, endpoint), **self._body_limits)
        if route.param_convertors:
            self._routes.append((method, route, served))
        else:
            self._exact[(method, path)] = served

    def _match(self, scope: Scope) -> tuple[ASGIApp, dict[str, Any]] | None:
        method, path = scope["method"], scope["path"]
        found = self._exact.get((method, path))
        if found is not None:
            return found, {}
        for want, route, served in self._routes:
            if want == method and (m := route.path_regex.match(path)) is not None:
                convert = route.param_convertors
                return served, {k: convert[k].convert(v) for k, v in m.groupdict().items()}
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            matched = self._match(scope)
            if matched is not None:
                served, scope["path_params"] = matched
                scope["app"] = self
                await served(scope, receive, send)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    async def _serve(self, endpoint: Endpoint, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)  # type: ignore[arg-type]
        try:
            response = await endpoint(request)
        except Exception as exc:
            response = await self._answer_error(request, exc)
        await response(scope, receive, send)  # type: ignore[arg-type]

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        """What the app's exception handlers answer for `exc` (the handler of its nearest
        class, as Starlette's exception middleware looks it up), or a 500 with the error
        logged, as Starlette's error middleware does."""
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                out = handler(request, exc)
                return await out if inspect.isawaitable(out) else out  # type: ignore[no-any-return]
        log.exception("http.internal_error", method=request.method, path=request.url.path)
        return JSONResponse({"detail": "Internal scheduler error; try again."}, status_code=500)
