"""Bounded request bodies for every HTTP service, checked before anything parses them.

`BodyGuard` is a pure-ASGI middleware: it refuses a body larger than `max_bytes` from its
Content-Length or while it arrives (413), one that takes longer than `max_seconds` to
arrive (408), and a body nested deeper than `max_depth` or holding more than `max_items`
JSON values (422), each with one sentence. The JSON check is
a linear pre-scan that never recurses, so a hostile body cannot reach the C decoder's
recursion (web3 imports py_ecc, which raises the interpreter's recursion limit to 100 000:
past the C stack). `sane_recursion_limit()` lowers it back at every service entry point.
"""

from __future__ import annotations

import asyncio
import json
import operator
import re
import sys
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from functools import partial
from itertools import accumulate, repeat
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_BYTES = 64 * 1024  # a signed order or a worker's report is a few kilobytes
MAX_DEPTH = 32
MAX_ITEMS = 20_000
MAX_BODY_SECONDS = 30.0  # a trickled body must not hold a connection and a coroutine
RECURSION_LIMIT = 4000

# JSON strings (escapes included), so brackets and commas inside them are not counted
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)  # unrolled: no per-byte branch
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b"[]{}")  # deleted by translate
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")  # minus 1: +1 open, -1 close


class BodyRefused(ValueError):
    """A body over the limits; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def sane_recursion_limit(limit: int = RECURSION_LIMIT) -> int:
    """Lowers the interpreter's recursion limit to `limit` if an import raised it; the
    limit now in force."""
    if sys.getrecursionlimit() > limit:
        sys.setrecursionlimit(limit)
    return sys.getrecursionlimit()


def check_json_shape(body: bytes, max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> None:
    """Raises BodyRefused when `body`, read as JSON, nests deeper than `max_depth` or holds
    more than `max_items` values; linear time, no recursion, whatever the bytes are."""
    outside = _STRING.sub(b"0", body)
    # each value but the first follows a comma or opens a container
    opens = outside.count(b"[") + outside.count(b"{")
    if outside.count(b",") + opens > max_items:
        raise BodyRefused(422, f"The JSON body holds more than {max_items} values; send fewer.")
    if opens > max_depth:  # else it cannot nest deeper: most bodies stop here
        # running depth, computed lazily in C (no Python loop) and stopped at the first
        # level past max_depth; the decoder never goes deeper than this prefix maximum
        steps = map(operator.sub, outside.translate(_DEPTH_STEP, _NOT_STRUCTURAL), repeat(1))
        if next(filter(partial(operator.lt, max_depth), accumulate(steps)), None) is not None:
            raise BodyRefused(
                422, f"The JSON body nests deeper than {max_depth} levels; flatten it."
            )


def parse_json(
    body: bytes | str,
    max_bytes: int = MAX_BODY_BYTES,
    max_depth: int = MAX_DEPTH,
    max_items: int = MAX_ITEMS,
) -> Any:
    """`json.loads` behind the same bounds (for bodies read outside the middleware)."""
    raw = body.encode() if isinstance(body, str) else body
    if len(raw) > max_bytes:
        raise BodyRefused(413, f"The body is larger than {max_bytes} bytes; send less.")
    check_json_shape(raw, max_depth, max_items)
    return json.loads(raw)


class BodyGuard:
    """ASGI middleware bounding request bodies (paths under `passthrough` stream as they
    are: e.g. blob uploads, which their own handler bounds while spooling to disk)."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        max_depth: int = MAX_DEPTH,
        max_items: int = MAX_ITEMS,
        passthrough: Sequence[str] = (),
        max_seconds: float = MAX_BODY_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes, self.max_depth, self.max_items = max_bytes, max_depth, max_items
        self.passthrough = tuple(passthrough)
        self.max_seconds = max_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope.get("path", "")).startswith(self.passthrough):
            await self.app(scope, receive, send)
            return
        try:
            try:
                async with asyncio.timeout(self.max_seconds):
                    body = await self._read(scope, receive)
            except TimeoutError:
                raise BodyRefused(
                    408, f"The request body took longer than {self.max_seconds:g} s to arrive."
                ) from None
            if body:
                check_json_shape(body, self.max_depth, self.max_items)
        except BodyRefused as refused:
            await _refuse(send, refused)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect

        await self.app(scope, replay, send)

    async def _read(self, scope: Scope, receive: Receive) -> bytes:
        too_large = BodyRefused(
            413, f"The request body is larger than {self.max_bytes} bytes; send less."
        )
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise BodyRefused(400, "The Content-Length header is not a number.") from None
                if declared > self.max_bytes:
                    raise too_large
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise too_large
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


async def _refuse(send: Send, refused: BodyRefused) -> None:
    payload = json.dumps({"detail": str(refused)}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": refused.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def validation_sentence(errors: Sequence[Any]) -> str:
    """One sentence for FastAPI's validation errors: the first field and what is wrong."""
    if not errors:
        return "Invalid request."
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
    return f"Invalid {'.'.join(loc) or 'request'}: {msg[:1].lower() + msg[1:]}."


def guard(app: Any, **limits: Any) -> Any:
    """Installs BodyGuard on a FastAPI app (outermost, before any parsing), and answers
    validation errors with one sentence (an app may register its own handler after)."""
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    async def invalid(_request: Any, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_sentence(exc.errors())}, status_code=422)

    app.add_middleware(BodyGuard, **limits)
    app.add_exception_handler(RequestValidationError, invalid)
    return app
