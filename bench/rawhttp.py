"""A lean HTTP/1.1 keep-alive client for load generators (bench/scale.py).

httpx costs about a millisecond of CPU per request; a load generator sharing the machine's
cores with the server it measures then measures itself. This one writes a request line and
a few headers on a pooled asyncio connection and reads back a Content-Length body: tens of
microseconds. Only what the scheduler's API needs (JSON bodies, no chunked encoding, no
TLS); not for anything a user touches.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

MAX_BODY = 16 * 1024 * 1024  # larger answers are a bug in the server under test


class TransportError(Exception):
    """The connection broke (the server closed an idle keep-alive one, say)."""


@dataclass
class Reply:
    status_code: int
    headers: dict[str, str]
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise RuntimeError(f"HTTP {self.status_code}: {self.text[:300]}")


@dataclass
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter


@dataclass
class Pool:
    """Up to `size` keep-alive connections to each origin, shared by the callers."""

    size: int
    timeout: float = 60.0
    _idle: dict[str, list[_Conn]] = field(default_factory=dict)
    _slots: dict[str, asyncio.Semaphore] = field(default_factory=dict)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        json: Any = None,
    ) -> Reply:
        parts = urlsplit(url)
        origin = f"{parts.hostname}:{parts.port}"
        path = parts.path + ("?" + urlencode(params) if params else "")
        body = b"" if json is None else _dumps(json)
        head = [f"{method} {path} HTTP/1.1", f"Host: {origin}", f"Content-Length: {len(body)}"]
        if json is not None:
            head.append("Content-Type: application/json")
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        slots = self._slots.setdefault(origin, asyncio.Semaphore(self.size))
        async with slots:
            idle = self._idle.setdefault(origin, [])
            while True:
                # an idle connection the server closed meanwhile (its keep-alive timeout)
                # fails at once: the next idle one, then a fresh one, is tried
                reused = bool(idle)
                conn = idle.pop() if reused else await self._connect(parts.hostname, parts.port)
                try:
                    reply = await asyncio.wait_for(self._exchange(conn, raw), self.timeout)
                    break
                except (OSError, asyncio.IncompleteReadError, TransportError) as exc:
                    conn.writer.close()
                    if not reused:
                        raise TransportError(str(exc) or type(exc).__name__) from exc
            if reply.headers.get("connection", "").lower() == "close":
                conn.writer.close()
            else:
                idle.append(conn)
            return reply

    async def _connect(self, host: str | None, port: int | None) -> _Conn:
        reader, writer = await asyncio.open_connection(host or "127.0.0.1", port or 80)
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, raw: bytes) -> Reply:
        conn.writer.write(raw)
        status_line = await conn.reader.readline()
        if not status_line:
            raise TransportError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while True:
            line = await conn.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        if length > MAX_BODY:
            raise TransportError(f"a {length}-byte answer")
        content = await conn.reader.readexactly(length) if length else b""
        return Reply(status, headers, content)

    async def aclose(self) -> None:
        for conns in self._idle.values():
            for c in conns:
                c.writer.close()
        self._idle.clear()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
