"""Hostile or broken apps end as an agreed, clearly failed result, paid as the protocol says;
app or dataset bytes that do not match the chain are refused, and the claim refunds."""

from __future__ import annotations

import hashlib
import json

from comptoir import devnet as devnet_mod
from comptoir.chain import events as ev
from comptoir.storage import StorageClient, encrypt_dataset
from comptoir.worker.failure import parse_record

from .apps import ECHO, HOSTILE
from .conftest import APP_PRICE, POOL_PRICE, SCHEDULER_STAKE, WORKERS_BASE, Pool, wait_for

EXPECTED = {
    0: ("TIMEOUT", None),  # sleeps past the category time
    1: ("MEMORY_LIMIT", None),
    2: ("OUTPUT_LIMIT", None),  # fills the disk
    3: ("PROCESS_LIMIT", None),  # fork bomb
    4: ("APP_FAILED", 3),  # no route to the host: connect fails
    5: ("APP_FAILED", 4),  # the host file is not in the sandbox
}


def test_hostile_apps_end_with_clear_failed_statuses(pool: Pool) -> None:
    secret = pool.tmp / "host-secret.txt"
    secret.write_text("the worker's secrets")
    port = pool.storage.url.rsplit(":", 1)[1]
    category = pool["deployer"].create_category("E2E-FAULTS", 8)
    app = pool.register_app({"main.py": HOSTILE})
    pool.start_scheduler()
    for w in ("w1", "w2"):
        pool.start_worker(w)
    pool.wait_workers(("w1", "w2"))
    before = pool.balances()
    start = pool["stranger"].block_number()
    n = len(EXPECTED)
    deal = pool.deal(app, volume=n, trust=1, category=category, params=f"{secret}:{port}")
    pool.wait_settled(deal, 75)

    digests = {
        e.index: e.digest  # type: ignore[attr-defined]
        for e in pool["stranger"].events(start, kinds=[ev.TaskFinalized])
    }
    for index, (status, exit_code) in EXPECTED.items():
        view = pool.task(deal, index)
        assert view is not None and view["status"] == "finalized", (index, view)
        record = view["failure"]
        assert record is not None, (index, view)
        assert record["status"] == status, (index, record)
        assert record.get("exit_code") == exit_code, (index, record)
        # the digest on-chain is the record's sha256: anyone can check the failure
        raw = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        assert digests[index] == hashlib.sha256(raw).digest()
        with StorageClient(pool.storage.url) as client:
            assert parse_record(client.download(view["result_blob"])) == record
    after = pool.balances()
    assert after["requester"] == before["requester"] - n * (APP_PRICE + POOL_PRICE)
    assert after["app_dev"] == before["app_dev"] + n * APP_PRICE
    assert (after["w1"] - before["w1"]) + (after["w2"] - before["w2"]) == n * WORKERS_BASE
    assert after["scheduler"] == before["scheduler"] + n * (POOL_PRICE - WORKERS_BASE)
    pool.escrow_holds_everything()


def test_mismatching_app_or_dataset_bytes_are_refused_then_claimed(pool: Pool) -> None:
    category = pool["deployer"].create_category("E2E-REFUSE", 5)
    # an app whose location serves other bytes than its on-chain checksum
    real = pool.register_app({"main.py": ECHO})
    real_location = pool["stranger"].asset(real).location
    bad_app = pool["app_dev"].register_app(
        "tampered", real_location, hashlib.sha256(b"what the owner registered").digest(), 2
    )
    # a dataset whose stored bytes are not the registered (encrypted) ones
    blob, _key = encrypt_dataset(b"registered dataset")
    other = pool.storage.upload(b"something else entirely")
    bad_dataset = pool["dataset_owner"].register_dataset(
        "tampered", pool.storage.blob_url(other), hashlib.sha256(blob).digest()
    )
    pool.start_scheduler(COMPTOIR_SCHEDULER_MAX_ATTEMPTS="2")
    for w in ("w1", "w2"):
        pool.start_worker(w)
    pool.wait_workers(("w1", "w2"))
    before = pool.balances()
    deals = [
        pool.deal(bad_app, category=category),
        pool.deal(real, dataset=bad_dataset, category=category),
    ]
    for deal in deals:
        wait_for(lambda d=deal: pool.task_status(d) == "abandoned", 30, "the refusals", pool)
        view = pool.task(deal)
        assert view is not None
        errors = [r["error"] for r in view["replicas"]]
        assert len(errors) == 2 and all("do not match the on-chain checksum" in e for e in errors)
    assert pool.balances()["w1"] == before["w1"]  # nobody contributed

    # past the final deadline the scheduler claims: the requester gets everything back
    devnet_mod.increase_time(pool.devnet.w3, 60)
    for deal in deals:
        wait_for(lambda d=deal: pool.task_status(d) == "claimed", 30, "the claims", pool)
    after = pool.balances()
    assert after["requester"] == before["requester"] + 2 * SCHEDULER_STAKE
    assert after["scheduler"] == before["scheduler"] - 2 * SCHEDULER_STAKE
    for role in ("app_dev", "dataset_owner", "w1", "w2"):
        assert after[role] == before[role], role
    pool.escrow_holds_everything()
