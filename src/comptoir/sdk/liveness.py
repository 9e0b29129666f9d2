"""Whether a workerpool's scheduler is alive, as the SDK checks it before matching an
order of that pool and as `comptoir orderbook` shows it.

A pool is alive when the endpoint it advertises (the configured URL, else its Registry
location) answers ``GET /v1/status`` within a bounded time, with a small JSON body naming
that same workerpool. A deal with a pool whose scheduler is down would only wait for its
deadline and a refund, so such offers are skipped. Answers are cached for a short while
so a listing or a bag of requests costs one probe per pool.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

PROBE_TIMEOUT_S = 3.0
CACHE_S = 30.0
MAX_STATUS_BYTES = 64 << 10  # a status answer is small; a hostile endpoint may stream


@dataclass(frozen=True)
class Liveness:
    workerpool: int
    alive: bool
    url: str | None
    reason: str = ""  # why it is not alive, as a clause


class LivenessCache:
    """Probes of schedulers, each remembered for `ttl` seconds."""

    def __init__(self, ttl: float = CACHE_S) -> None:
        self.ttl = ttl
        self._seen: dict[int, tuple[float, Liveness]] = {}

    async def check(
        self,
        workerpool: int,
        endpoint: Callable[[int], Awaitable[str | None]],
        http: httpx.AsyncClient,
    ) -> Liveness:
        hit = self._seen.get(workerpool)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        found = await _probe(http, workerpool, await endpoint(workerpool))
        self._seen[workerpool] = (time.monotonic(), found)
        return found

    async def check_all(
        self,
        workerpools: set[int],
        endpoint: Callable[[int], Awaitable[str | None]],
        http: httpx.AsyncClient,
    ) -> dict[int, Liveness]:
        pools = sorted(workerpools)
        found = await asyncio.gather(*(self.check(p, endpoint, http) for p in pools))
        return dict(zip(pools, found, strict=True))


async def _probe(http: httpx.AsyncClient, workerpool: int, url: str | None) -> Liveness:
    if url is None:
        return Liveness(workerpool, False, None, "it records no scheduler endpoint on-chain")
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_S):
            body = await _status(http, f"{url.rstrip('/')}/v1/status")
    # InvalidURL: an on-chain location httpx cannot build; RecursionError: a small but
    # deeply nested JSON body (both the pool owner's to choose)
    except (httpx.HTTPError, httpx.InvalidURL, TimeoutError, ValueError, RecursionError):
        return Liveness(workerpool, False, url, f"its scheduler at {url} does not answer")
    if not isinstance(body, dict) or body.get("workerpool") != workerpool:
        return Liveness(
            workerpool, False, url, f"the scheduler at {url} answers for another workerpool"
        )
    return Liveness(workerpool, True, url)


async def _status(http: httpx.AsyncClient, url: str) -> object:
    async with http.stream("GET", url, timeout=PROBE_TIMEOUT_S) as resp:
        resp.raise_for_status()
        raw = b""
        async for chunk in resp.aiter_bytes():
            raw += chunk
            if len(raw) > MAX_STATUS_BYTES:
                raise ValueError("status answer too large")
    return json.loads(raw)
