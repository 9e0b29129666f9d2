"""In-process fan-out of market and explorer events to Server-Sent Events subscribers.

Every event gets an id, ``<epoch>-<seq>``: the epoch names this life of the stream (a
restarted market starts a new one), seq counts its events. The last events are kept, so a
subscriber that says where it stands (``?after=`` the position a page was rendered at,
or the ``Last-Event-ID`` a reconnecting browser sends) is sent what it missed first: a
page rendered just before a deal settled still hears that it settled. When the missed
events are no longer kept, or the id is from another life of the stream, the subscriber
gets one ``stream.resync`` event instead and re-reads what it shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import secrets
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

# SSE event names
PUBLISHED = "order.published"
UPDATED = "order.updated"
CANCELLED = "order.cancelled"
DEAL = "deal.recorded"
RESYNC = "stream.resync"  # missed events are gone: re-read the state

REPLAY_SIZE = 4096  # events kept for subscribers catching up
MAX_POSITION_CHARS = 64

_Event = tuple[int, str, str]  # seq, event name, JSON text


class Broadcaster:
    """Every subscriber gets its own bounded queue; a subscriber that falls behind is dropped
    rather than slowing publishers down (it reconnects from its last event id)."""

    def __init__(self, queue_size: int = 1000, replay_size: int = REPLAY_SIZE) -> None:
        self._queues: set[asyncio.Queue[_Event | None]] = set()
        self._queue_size = queue_size
        self._recent: deque[_Event] = deque(maxlen=replay_size)
        self._seq = 0
        self.epoch = secrets.token_hex(4)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    @property
    def position(self) -> str:
        """The id of the last event published: a page rendered now subscribes after it."""
        return f"{self.epoch}-{self._seq}"

    def publish(self, event: str, data: dict[str, Any]) -> None:
        self.publish_json(event, json.dumps(data, separators=(",", ":")))

    def publish_json(self, event: str, text: str) -> None:
        """Publishes an event whose data is already JSON text (serialized once for all)."""
        if "\n" in text or "\r" in text:  # one SSE data line
            text = json.dumps(json.loads(text), separators=(",", ":"))
        self._seq += 1
        item = (self._seq, event, text)
        self._recent.append(item)
        for queue in list(self._queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                # too slow: end its stream (it reconnects from its last event id)
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

    def missed(self, after: str) -> list[_Event] | None:
        """The kept events after position `after`, or None when they cannot all be given
        (another epoch, a position never reached, events no longer kept, garbage)."""
        epoch, _, seq_text = after.partition("-")
        if len(after) > MAX_POSITION_CHARS or epoch != self.epoch:
            return None
        if not (seq_text.isascii() and seq_text.isdigit()):  # "²" is a digit to isdigit()
            return None
        seq = int(seq_text)
        count = self._seq - seq
        if count < 0 or count > len(self._recent):
            return None
        return list(itertools.islice(self._recent, len(self._recent) - count, None))

    async def subscribe(
        self, keepalive: float = 15.0, max_events: int | None = None, after: str | None = None
    ) -> AsyncIterator[str]:
        """SSE-formatted chunks: a comment first (so clients see the stream open), the
        events missed since `after` (or one resync event), then live events, and a
        keepalive comment when idle, so proxies keep the connection."""
        queue: asyncio.Queue[_Event | None] = asyncio.Queue(self._queue_size)
        # registered and caught up in one step of the loop: nothing published between
        self._queues.add(queue)
        backlog = [] if after is None else self.missed(after)
        sent = 0
        try:
            yield ": connected\n\n"
            if backlog is None:  # no id: not an event to resume after
                yield _sse(RESYNC, json.dumps({"position": self.position}, separators=(",", ":")))
                sent += 1
                backlog = []
            for item in backlog:
                if max_events is not None and sent >= max_events:
                    return
                yield _sse(item[1], item[2], f"{self.epoch}-{item[0]}")
                sent += 1
            while max_events is None or sent < max_events:
                try:
                    got = await asyncio.wait_for(queue.get(), timeout=keepalive)
                except TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                if got is None:
                    return
                yield _sse(got[1], got[2], f"{self.epoch}-{got[0]}")
                sent += 1
        finally:
            self._queues.discard(queue)


def _sse(event: str, text: str, event_id: str | None = None) -> str:
    """One SSE event; `text` is JSON on one line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {text}\n\n"
