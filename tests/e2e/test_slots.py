"""Worker slots end to end: a worker with two slots runs two tasks at once, each in its
own sandbox job; with one slot it runs them one after the other. Overlap is read from the
spans the tasks record themselves, never from wall-clock limits."""

from __future__ import annotations

import io
import tarfile

from comptoir.chain.deploy import TEST_CATEGORY_ID
from comptoir.chain.types import Deal
from comptoir.storage import StorageClient

from .conftest import Pool

# records when it started and ended (host clock: the sandbox shares it)
SPAN = """
import os, time
start = time.time()
time.sleep(float(os.environ.get("COMPTOIR_ARGS") or "2"))
with open("/comptoir/out/span.txt", "w") as f:
    f.write(f"{start} {time.time()}\\n")
"""


def _spans(pool: Pool, deal: Deal) -> list[tuple[float, float]]:
    spans = []
    with StorageClient(pool.storage.url) as client:
        for index in range(deal.volume):
            view = pool.task(deal, index)
            assert view is not None and view["status"] == "finalized", view
            workers = [r["worker"] for r in view["replicas"]]
            assert workers == [pool.accounts["w1"].address], workers
            archive = client.download(view["result_blob"])
            with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
                member = tar.extractfile("span.txt")
                assert member is not None
                start, end = member.read().decode().split()
            spans.append((float(start), float(end)))
    return spans


def _run_two(pool: Pool, slots: str) -> list[tuple[float, float]]:
    app = pool.register_app({"main.py": SPAN})
    pool.start_scheduler()
    pool.start_worker("w1", COMPTOIR_WORKER_SLOTS=slots)
    pool.wait_workers(("w1",))
    listed = {w["address"]: w["slots"] for w in pool.get("/v1/workers")}
    assert listed[pool.accounts["w1"].address] == int(slots)
    deal = pool.deal(app, volume=2, trust=1, category=TEST_CATEGORY_ID, params="2")
    pool.wait_settled(deal, timeout=90)
    pool.escrow_holds_everything()
    return _spans(pool, deal)


def test_a_worker_with_two_slots_runs_two_tasks_at_once(pool: Pool) -> None:
    (s0, e0), (s1, e1) = _run_two(pool, "2")
    assert max(s0, s1) < min(e0, e1), "the two tasks did not overlap"


def test_a_worker_with_one_slot_runs_them_one_after_the_other(pool: Pool) -> None:
    (s0, e0), (s1, e1) = _run_two(pool, "1")
    assert e0 <= s1 or e1 <= s0, "one slot ran two tasks at once"
