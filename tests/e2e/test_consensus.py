"""A replicated deal end to end: real anvil, storage, scheduler and worker processes."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import httpx
import pytest

from comptoir.apps import sealed
from comptoir.apps.contract import result_digest
from comptoir.chain import events as ev
from comptoir.chain.client import TaskOutcome
from comptoir.exceptions import ResultError
from comptoir.storage import StorageClient

from .apps import ECHO
from .conftest import (
    APP_PRICE,
    DATASET_PRICE,
    POOL_PRICE,
    WORKER_STAKE,
    WORKERS_BASE,
    Pool,
    wait_for,
)


def test_three_workers_reach_consensus_and_everyone_is_paid(pool: Pool, tmp_path: Path) -> None:
    app = pool.register_app({"main.py": ECHO})
    dataset = pool.register_dataset(b"the secret dataset\n")
    pool.start_scheduler()
    for w in ("w1", "w2", "w3"):
        pool.start_worker(w)
    pool.wait_workers(("w1", "w2", "w3"))
    before = pool.balances()
    start = pool["stranger"].block_number()

    # trust 5 with fresh workers (weight 2 each): 2**3 * 5 > (1 + 8) * 4 needs 3 replicas
    deal = pool.deal(app, dataset=dataset, trust=5, params="hello")
    pool.wait_settled(deal)

    after = pool.balances()
    share = WORKERS_BASE * 2 // 6  # pro rata of equal weights
    assert after["requester"] == before["requester"] - (APP_PRICE + DATASET_PRICE + POOL_PRICE)
    assert after["app_dev"] == before["app_dev"] + APP_PRICE
    assert after["dataset_owner"] == before["dataset_owner"] + DATASET_PRICE
    for w in ("w1", "w2", "w3"):
        assert after[w] == before[w] + share, w
        assert pool["stranger"].score(pool.accounts[w].address) == 1  # replicated: +1
    assert after["w4"] == before["w4"]
    # stake back, its share, and the rounding remainder
    assert after["scheduler"] == before["scheduler"] + (POOL_PRICE - WORKERS_BASE) + (
        WORKERS_BASE - 3 * share
    )
    pool.escrow_holds_everything()

    # the requester's view: the result in storage matches the digest on-chain
    finalized = pool["stranger"].events(start, kinds=[ev.TaskFinalized])
    assert [e.index for e in finalized] == [0]  # type: ignore[attr-defined]
    view = pool.task(deal)
    assert view is not None and view["status"] == "finalized" and view["failure"] is None
    assert view["digest"] == "0x" + finalized[0].digest.hex()  # type: ignore[attr-defined]
    assert sorted(r["status"] for r in view["replicas"]) == ["revealed"] * 3
    with StorageClient(pool.storage.url) as client:
        envelope = client.download(view["result_blob"])
    # computed on a dataset: storage holds only what the requester can decrypt
    assert b"secret dataset" not in envelope
    assert sealed.open_envelope(envelope).result is None
    with pytest.raises(ResultError, match="sealed to its requester"):
        sealed.open_envelope(envelope, bytes(pool.accounts["stranger"].key))
    opened = sealed.open_envelope(envelope, bytes(pool.accounts["requester"].key))
    archive = opened.result
    assert archive is not None and opened.logs is not None
    out = tmp_path / "result"
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(out, filter="data")
    assert "0x" + result_digest(out) == view["digest"]
    text = (out / "result.txt").read_text()
    assert text == "task 0 args 'hello' dataset b'the secret dataset\\n' square 0\n"

    metrics = httpx.get(f"{pool.scheduler_url}/metrics").text
    assert 'comptoir_scheduler_tasks{status="finalized"} 1.0' in metrics
    assert "comptoir_scheduler_finalize_gas_count 1.0" in metrics


def test_a_lying_worker_is_outvoted_penalized_and_loses_score(pool: Pool) -> None:
    app = pool.register_app({"main.py": ECHO})
    roles = ("w1", "w2", "w3", "w4")
    # warm-up straight on-chain: every worker agrees on three tasks, score 3 each (their
    # stakes locked first, as their agents would)
    warm = pool.deal(app, volume=3)
    for w in roles:
        pool[w].lock(warm.final_deadline)
    pool["scheduler"].finalize_tasks(
        warm,
        [
            TaskOutcome(
                i,
                bytes([i + 1]) * 32,
                [pool[w].sign_contribution(warm, i, bytes([i + 1]) * 32) for w in roles],
            )
            for i in range(3)
        ],
    )
    liar = pool.accounts["w4"].address
    assert pool["stranger"].score(liar) == 3
    pool.start_scheduler(COMPTOIR_SCHEDULER_START_BLOCK=str(pool["stranger"].block_number() + 1))
    pool.start_worker("w4", COMPTOIR_WORKER_FAULT="lie")
    pool.wait_workers(("w4",))
    before = pool.balances()

    # trust 3: two agreeing replicas would do; the liar holds one of them
    deal = pool.deal(app, trust=3)
    wait_for(
        lambda: any(r["worker"] == liar for r in (pool.task(deal) or {}).get("replicas", [])),
        30,
        "the liar to get a replica",
        pool,
    )
    for w in ("w1", "w2", "w3"):
        pool.start_worker(w)
    pool.wait_settled(deal)

    # 2 (honest) vs 2 (liar) is no consensus at trust 3: the scheduler asked for two
    # more replicas; 8 vs 2 wins (24 > 22) and the liar's stake joins the reward
    view = pool.task(deal)
    assert view is not None
    statuses = {r["worker"]: r["status"] for r in view["replicas"]}
    assert statuses[liar] == "committed"
    assert len(statuses) == 4
    after = pool.balances()
    reward = WORKERS_BASE + WORKER_STAKE
    share = reward * 2 // 6
    for w in ("w1", "w2", "w3"):
        assert after[w] == before[w] + share, w
        assert pool["stranger"].score(pool.accounts[w].address) == 4
    assert after["w4"] == before["w4"] - WORKER_STAKE
    assert pool["stranger"].score(liar) == 0  # a wrong result wipes the score
    assert after["scheduler"] == before["scheduler"] + (POOL_PRICE - WORKERS_BASE) + (
        reward - 3 * share
    )
    pool.escrow_holds_everything()


def test_replicas_agree_while_sealing_to_several_recipients(pool: Pool) -> None:
    """Three replicas seal to the requester, the app's owner (logs) and the callback's
    owner (result), each with its own keys: their envelopes differ, their digests agree,
    and each recipient reads exactly its part."""
    from comptoir.chain.build import artifact
    from comptoir.chain.client import Transactor
    from comptoir.chain.deploy import deploy_contract

    app = pool.register_app({"main.py": ECHO + 'open("/comptoir/out/callback", "w").write("ok")\n'})
    owner = pool.accounts["dataset_owner"]  # owns the callback contract
    receiver, _ = deploy_contract(
        Transactor(pool.devnet.w3, owner), "CallbackReceiver", pool.devnet.deployment.hub, 0
    )
    pool.start_scheduler()
    for w in ("w1", "w2", "w3"):
        pool.start_worker(w)
    pool.wait_workers(("w1", "w2", "w3"))
    requester, dev = pool.accounts["requester"], pool.accounts["app_dev"]
    others = [
        sealed.Recipient(
            sealed.APP_OWNER, sealed.public_key_of(bytes(dev.key)), sealed.SCOPES["logs"]
        ),
        sealed.Recipient(
            sealed.CALLBACK_OWNER, sealed.public_key_of(bytes(owner.key)), sealed.SCOPES["result"]
        ),
    ]
    params = sealed.request_params(
        "hello", sealed.public_key_of(bytes(requester.key)), False, others
    )
    deal = pool.deal(app, trust=5, params=params, callback=receiver)
    pool.wait_settled(deal)

    view = pool.task(deal)
    assert view is not None and view["status"] == "finalized" and view["failure"] is None
    assert sorted(r["status"] for r in view["replicas"]) == ["revealed"] * 3
    contract = pool.devnet.w3.eth.contract(receiver, abi=artifact("CallbackReceiver").abi)
    assert contract.functions.last_result().call() == b"ok"
    with StorageClient(pool.storage.url) as client:
        envelope = client.download(view["result_blob"])
    assert b"hello" not in envelope  # a callback owner's result is sealed
    mine = sealed.open_envelope(envelope, bytes(requester.key))
    theirs = sealed.open_envelope(envelope, bytes(owner.key))
    assert mine.result is not None and theirs.result == mine.result and theirs.logs is None
    devs = sealed.open_envelope(envelope, bytes(dev.key))
    assert devs.result is None and devs.logs == mine.logs
    with pytest.raises(ResultError, match="the callback's owner"):
        sealed.open_envelope(envelope, bytes(pool.accounts["stranger"].key))
