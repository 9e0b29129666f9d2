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
import re
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from comptoir.httpguard import BodyGuard, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]

log = structlog.get_logger("comptoir.scheduler")

_PARAM = re.compile(r"\{([a-z_]+)\}")


def path_pattern(path: str) -> re.Pattern[str]:
    """``/v1/assignments/{aid}/commit`` as a regex with one named group per parameter
    (a parameter is one non-empty path segment, as Starlette's default ``str``)."""
    parts = _PARAM.split(path)
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
    )
    return re.compile(f"^{regex}$")


class SchedulerApp(FastAPI):
    """FastAPI, plus `hot` routes dispatched before its middleware stack."""

    def __init__(self, *args: Any, body_limits: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._exact: dict[tuple[str, str], Endpoint] = {}  # (method, path) without parameters
        self._patterns: list[tuple[str, re.Pattern[str], Endpoint]] = []
        self._guarded = BodyGuard(self._serve, **body_limits)

    def hot(self, path: str, method: str, endpoint: Endpoint) -> None:
        """Serve `method` `path` with `endpoint` before the stack (the caller adds the
        route to the router as well)."""
        if "{" in path:
            self._patterns.append((method, path_pattern(path), endpoint))
        else:
            self._exact[(method, path)] = endpoint

    def _match(self, scope: Scope) -> tuple[Endpoint, dict[str, str]] | None:
        method, path = scope["method"], scope["path"]
        found = self._exact.get((method, path))
        if found is not None:
            return found, {}
        for want, pattern, endpoint in self._patterns:
            if want == method and (m := pattern.match(path)) is not None:
                return endpoint, m.groupdict()
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            matched = self._match(scope)
            if matched is not None:
                scope["app"] = self
                scope["hot_endpoint"], scope["path_params"] = matched
                await self._guarded(scope, receive, send)
                return
        await super().__call__(scope, receive, send)  # type: ignore[arg-type]

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)  # type: ignore[arg-type]
        try:
            response = await scope["hot_endpoint"](request)
        except Exception as exc:
            response = await self._answer_error(request, exc)
        await response(scope, receive, send)  # type: ignore[arg-type]

    async def _answer_error(self, request: Request, exc: Exception) -> Response:
        """What the app's exception handlers answer for `exc` (the handler of its nearest
        class), or a 500 with the error logged, as Starlette's error middleware does."""
        for cls in type(exc).__mro__:
            handler = self.exception_handlers.get(cls)
            if handler is not None:
                out = handler(request, exc)
                return await out if inspect.isawaitable(out) else out  # type: ignore[no-any-return]
        log.exception("http.internal_error", method=request.method, path=request.url.path)
        return JSONResponse({"detail": "Internal scheduler error; try again."}, status_code=500)
