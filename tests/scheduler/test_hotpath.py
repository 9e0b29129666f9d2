"""The scheduler's per-process request helpers: the token cache forgets superseded and
stale tokens and stays bounded; coalesced chain reads batch concurrent callers and hand
every caller its own answer or the failure."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

import pytest

from comptoir.scheduler.hotpath import CoalescedReads, TokenCache


def test_token_cache_answers_forgets_and_stays_bounded() -> None:
    cache = TokenCache(size=3, trust_s=60.0)
    cache.put("t-a", "0xA")
    assert cache.get("t-a") == "0xA"
    assert cache.get("t-other") is None
    cache.put("t-a2", "0xA")  # registered again: the old token is gone at once
    assert cache.get("t-a") is None
    assert cache.get("t-a2") == "0xA"
    cache.forget("0xA")
    assert cache.get("t-a2") is None
    for i in range(5):
        cache.put(f"t-{i}", f"0x{i}")
    assert len(cache) == 3
    assert cache.get("t-0") is None and cache.get("t-4") == "0x4"


def test_token_cache_entries_expire() -> None:
    cache = TokenCache(trust_s=0.05)
    cache.put("t", "0xA")
    time.sleep(0.1)
    assert cache.get("t") is None


async def test_concurrent_reads_share_batches() -> None:
    batches: list[list[str]] = []

    def read(addresses: Sequence[str]) -> dict[str, tuple[int, int]]:
        batches.append(list(addresses))
        time.sleep(0.02)  # a chain round trip: later callers queue for the next batch
        return {a.upper(): (len(a), 7) for a in addresses}  # keyed in another case

    reads = CoalescedReads(read, batch=40)
    names = [f"0xw{i}" for i in range(100)]
    got = await asyncio.gather(*(reads.get(n) for n in names), reads.get(names[0]))
    assert got[:100] == [(len(n), 7) for n in names]
    assert got[100] == got[0]
    assert sorted(a for b in batches for a in b) == sorted(names)  # each address once
    assert len(batches) <= 4 and max(len(b) for b in batches) <= 40


async def test_a_failed_read_fails_its_callers_and_the_next_batch_runs() -> None:
    calls = 0

    def read(addresses: Sequence[str]) -> dict[str, tuple[int, int]]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("node down")
        return {a: (1, 2) for a in addresses if a != "0xmissing"}

    reads = CoalescedReads(read)
    with pytest.raises(ConnectionError):
        await reads.get("0xa")
    assert await reads.get("0xa") == (1, 2)
    with pytest.raises(LookupError):
        await reads.get("0xmissing")


def test_a_reconciliation_reads_the_stalest_standings_first(pool: Any) -> None:
    """Each pass refreshes a bounded slice of the online workers, those read longest ago,
    so every worker comes round while a pass costs the same at any pool size."""
    from comptoir.chain.client import WorkerStanding
    from comptoir.scheduler import stakelock, state

    names = [f"w{i}" for i in range(5)]
    for name in names:
        pool.add_worker(name)
    now = time.time()
    for age, name in enumerate(names):  # w4 read longest ago, w0 just now
        standing = {pool.addr(name): WorkerStanding(0, 1000, 0)}
        pool.tx(lambda c, s=standing, at=now - 100 * age: stakelock.store_standings(c, s, at))
    stalest = pool.tx(lambda c: state.worker_addresses(c, stalest=2))
    assert stalest == [pool.addr("w4"), pool.addr("w3")]
    refreshed = {a: WorkerStanding(0, 1000, 0) for a in stalest}
    pool.tx(lambda c: stakelock.store_standings(c, refreshed, now + 1))
    assert pool.tx(lambda c: state.worker_addresses(c, stalest=2)) == [
        pool.addr("w2"),
        pool.addr("w1"),
    ]
    assert len(pool.tx(lambda c: state.worker_addresses(c))) == 5  # unbounded without it
