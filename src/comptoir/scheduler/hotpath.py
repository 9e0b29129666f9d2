"""Per-process helpers that keep the cost of one worker request flat: a bounded cache of
bearer tokens, and a coalescer that turns concurrent registrations' chain reads into one
batched JSON-RPC request, and the signals that wake long polls of committed replicas."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Generic, TypeVar

from comptoir.scheduler import state

TOKEN_CACHE_SIZE = 50_000  # workers whose token one process remembers
# how long a token is trusted without reading the database again: a re-registration
# through this process supersedes the old token at once, through another API process of
# the same pool within this many seconds
TOKEN_TRUST_S = 5.0
READ_BATCH = 250  # workers per coalesced chain read (three calls each)

T = TypeVar("T")


class TokenCache:
    """token hash -> worker address, least recently used first out."""

    def __init__(self, size: int = TOKEN_CACHE_SIZE, trust_s: float = TOKEN_TRUST_S) -> None:
        self.size, self.trust_s = size, trust_s
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._by_worker: dict[str, str] = {}

    def get(self, token: str) -> str | None:
        key = state.token_hash(token)
        found = self._entries.get(key)
        if found is None:
            return None
        address, until = found
        if time.monotonic() > until:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return address

    def put(self, token: str, address: str) -> None:
        key = state.token_hash(token)
        self.forget(address)
        self._entries[key] = (address, time.monotonic() + self.trust_s)
        self._by_worker[address] = key
        while len(self._entries) > self.size:
            self._drop(next(iter(self._entries)))

    def forget(self, address: str) -> None:
        """The worker registered again: its previous token stops working here now."""
        key = self._by_worker.pop(address, None)
        if key is not None:
            self._entries.pop(key, None)

    def _drop(self, key: str) -> None:
        address, _ = self._entries.pop(key)
        if self._by_worker.get(address) == key:
            del self._by_worker[address]

    def __len__(self) -> int:
        return len(self._entries)


class CoalescedReads(Generic[T]):
    """Concurrent callers of :meth:`get` share batched reads: while one batch is on the
    wire, the addresses asked for meanwhile wait for the next one (so 10 000 workers
    joining at once cost tens of chain requests, not 10 000)."""

    def __init__(
        self,
        read: Callable[[Sequence[str]], dict[str, T]],
        batch: int = READ_BATCH,
    ) -> None:
        self._read, self._batch = read, batch
        self._waiting: dict[str, list[asyncio.Future[T]]] = {}
        self._runner: asyncio.Task[None] | None = None

    async def get(self, address: str) -> T:
        """What the read answers for `address`; raises what the chain read raised."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(address, []).append(future)
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(0)  # let the requests already parsed join the first batch
        while self._waiting:
            addresses = list(self._waiting)[: self._batch]
            futures = {a: self._waiting.pop(a) for a in addresses}
            try:
                read = await asyncio.to_thread(self._read, addresses)
                by_lower = {a.lower(): v for a, v in read.items()}
            except Exception as exc:  # every waiter gets the failure, none hangs
                for waiters in futures.values():
                    for f in waiters:
                        if not f.done():
                            f.set_exception(exc)
                continue
            for a, waiters in futures.items():
                value = by_lower.get(a.lower())
                for f in waiters:
                    if f.done():
                        continue
                    if value is None:
                        f.set_exception(LookupError(f"the chain read left out {a}"))
                    else:
                        f.set_result(value)


class TaskSignals:
    """Wakes the long polls of a task's committed replicas (``GET /v1/assignments/{id}
    ?wait=``) when something happens to the task in this process: a commitment, which may
    start its reveal phase. Changes made by the background loop or another API process
    are seen when the poll times out."""

    def __init__(self) -> None:
        self._watched: dict[str, list[Any]] = {}  # task -> [event, watchers]

    @contextlib.contextmanager
    def watch(self, task_id: str) -> Iterator[asyncio.Event]:
        """An event set at the task's next :meth:`notify`; watch before reading the state
        the wait depends on, so that a change made in between is not missed."""
        entry = self._watched.setdefault(task_id, [asyncio.Event(), 0])
        entry[1] += 1
        try:
            yield entry[0]
        finally:
            entry[1] -= 1
            if entry[1] <= 0 and self._watched.get(task_id) is entry:
                del self._watched[task_id]

    def notify(self, task_id: str) -> None:
        entry = self._watched.pop(task_id, None)
        if entry is not None:
            entry[0].set()

    def __len__(self) -> int:
        return len(self._watched)
