"""Scheduler liveness (comptoir.sdk.liveness): what counts as alive, bounded answers, the
cache. The remote schedulers here are HTTP stand-ins for strangers' endpoints; the real
stack's alive and endpoint-less pools are driven in tests/cli/test_lifecycle_cli.py."""

from __future__ import annotations

import asyncio
import json

import httpx

from comptoir.sdk.liveness import MAX_STATUS_BYTES, LivenessCache

ANSWERS = {
    "http://pool-1": lambda: httpx.Response(200, json={"workerpool": 1, "scheduler": "0xab"}),
    "http://pool-2": lambda: httpx.Response(200, json={"workerpool": 7}),  # someone else's
    "http://pool-3": lambda: httpx.Response(503, json={"detail": "database down"}),
    "http://pool-4": lambda: httpx.Response(200, content=b"[" * (MAX_STATUS_BYTES + 10)),
    "http://pool-5": lambda: httpx.Response(200, content=b"not json"),
}


def _check(pools: set[int], cache: LivenessCache, calls: list[str]) -> dict[int, object]:
    def answer(request: httpx.Request) -> httpx.Response:
        base = f"{request.url.scheme}://{request.url.host}"
        calls.append(base)
        if base not in ANSWERS:
            raise httpx.ConnectError("connection refused", request=request)
        assert request.url.path == "/v1/status"
        return ANSWERS[base]()

    async def endpoint(pool: int) -> str | None:
        return None if pool == 9 else f"http://pool-{pool}"

    async def go() -> dict[int, object]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return dict(await cache.check_all(pools, endpoint, http))

    return asyncio.run(go())


def test_only_a_scheduler_naming_its_own_pool_is_alive() -> None:
    calls: list[str] = []
    found = _check({1, 2, 3, 4, 5, 6, 9}, LivenessCache(), calls)
    alive = {p for p, v in found.items() if v.alive}  # type: ignore[attr-defined]
    assert alive == {1}
    reasons = {p: v.reason for p, v in found.items()}  # type: ignore[attr-defined]
    assert reasons[2] == "the scheduler at http://pool-2 answers for another workerpool"
    for pool in (3, 4, 5, 6):  # error status, endless body, not JSON, refused connection
        assert reasons[pool] == f"its scheduler at http://pool-{pool} does not answer"
    assert reasons[9] == "it records no scheduler endpoint on-chain"
    assert json.dumps(reasons)  # plain clauses, ready for a sentence


def test_answers_are_cached_then_probed_again() -> None:
    calls: list[str] = []
    cache = LivenessCache(ttl=3600)
    _check({1, 3}, cache, calls)
    _check({1, 3}, cache, calls)
    assert sorted(calls) == ["http://pool-1", "http://pool-3"]  # once each
    expired = LivenessCache(ttl=0)
    _check({1}, expired, calls)
    _check({1}, expired, calls)
    assert calls.count("http://pool-1") == 3


def test_a_hostile_endpoint_or_answer_is_not_alive_and_fails_nothing_else() -> None:
    """A pool owner chooses its Registry location and its answer: a URL httpx cannot even
    build, or a small but deeply nested JSON body, makes that pool not alive; the probe of
    the other pools (the whole listing) still answers."""

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "pool-1":
            return httpx.Response(200, json={"workerpool": 1})
        return httpx.Response(200, content=b"[" * 50_000 + b"]" * 50_000)  # < the size cap

    urls = {1: "http://pool-1", 2: "http://pool-2", 3: "http://\x00bad"}

    async def endpoint(pool: int) -> str | None:
        return urls[pool]

    async def go() -> dict[int, object]:
        async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
            return dict(await LivenessCache().check_all({1, 2, 3}, endpoint, http))

    found = asyncio.run(go())
    assert {p for p, v in found.items() if v.alive} == {1}  # type: ignore[attr-defined]
    assert "does not answer" in found[2].reason  # type: ignore[attr-defined]
    assert "does not answer" in found[3].reason  # type: ignore[attr-defined]
