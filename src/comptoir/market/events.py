"""In-process fan-out of order events to Server-Sent Events subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

# SSE event names
PUBLISHED = "order.published"
UPDATED = "order.updated"
CANCELLED = "order.cancelled"
DEAL = "deal.recorded"


class Broadcaster:
    """Every subscriber gets its own bounded queue; a subscriber that falls behind is dropped
    rather than slowing publishers down (it reconnects and re-reads the book)."""

    def __init__(self, queue_size: int = 1000) -> None:
        self._queues: set[asyncio.Queue[tuple[str, dict[str, Any]] | None]] = set()
        self._queue_size = queue_size

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: str, data: dict[str, Any]) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait((event, data))
            except asyncio.QueueFull:
                # too slow: end its stream (it reconnects and re-reads the book)
                self._queues.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    def close(self) -> None:
        """Ends every stream (server shutdown)."""
        for queue in list(self._queues):
            self._queues.discard(queue)
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    async def subscribe(
        self, keepalive: float = 15.0, max_events: int | None = None
    ) -> AsyncIterator[str]:
        """SSE-formatted chunks: a comment first (so clients see the stream open), events,
        and a keepalive comment when idle, so proxies keep the connection."""
        queue: asyncio.Queue[tuple[str, dict[str, Any]] | None] = asyncio.Queue(self._queue_size)
        self._queues.add(queue)
        sent = 0
        try:
            yield ": connected\n\n"
            while max_events is None or sent < max_events:
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                event, data = item
                yield format_sse(event, data)
                sent += 1
        finally:
            self._queues.discard(queue)


def format_sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"
