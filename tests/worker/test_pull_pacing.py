"""The agent's pull loop against a scheduler that answers an empty long poll at once (it
holds no more of this worker's requests): paced by the poll interval, never a tight loop."""

from __future__ import annotations

import asyncio
import types
from typing import Any

from comptoir.worker.agent import WorkerAgent


class _Scheduler:
    work_wait_s = 2.0
    lock_needed = 0
    wait_reason = None

    def __init__(self) -> None:
        self.pulls = 0

    async def next_work(self, wait: float = 0.0) -> dict[str, Any] | None:
        self.pulls += 1
        await asyncio.sleep(0)
        return None  # at once, although asked to hold


def test_an_empty_answer_at_once_is_not_asked_again_at_once() -> None:
    scheduler = _Scheduler()
    agent: Any = types.SimpleNamespace(
        _stop=asyncio.Event(),
        slots=1,
        s=types.SimpleNamespace(idle_only=False, poll_interval_s=0.2, http_timeout_s=30.0),
        scheduler=scheduler,
        locker=types.SimpleNamespace(locked_until=0),
    )
    agent._scheduler_backoff = lambda: types.SimpleNamespace(reset=lambda: None)
    agent._until_one_done = lambda in_flight, timeout=None: WorkerAgent._until_one_done(
        agent, in_flight, timeout
    )

    async def go() -> None:
        loop = asyncio.create_task(WorkerAgent._work_loop(agent))
        await asyncio.sleep(1.0)
        agent._stop.set()
        await asyncio.wait_for(loop, 5)

    asyncio.run(go())
    assert 1 <= scheduler.pulls <= 10, scheduler.pulls  # ~5 at a 0.2 s interval
