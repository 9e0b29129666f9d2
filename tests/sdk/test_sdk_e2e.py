"""The SDK against a real local stack: requests yield verified results, datasets stay
restricted, errors are one clear sentence."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from eth_account import Account

from comptoir import stack
from comptoir.chain.client import ChainClient
from comptoir.exceptions import (
    NoMatchingOrder,
    ResultError,
    TransactionRejected,
    UnknownNameError,
)
from comptoir.sdk import Comptoir, ComptoirSync, Config, Progress, devnet_account

pytestmark = pytest.mark.devnet

TASK_PRICE = stack.APP_PRICE + stack.POOL_PRICE


async def test_async_run_yields_verified_tasks(config: Config, tmp_path: Path) -> None:
    steps: list[Progress] = []
    async with Comptoir(config, devnet_account(stack.REQUESTER)) as c:
        await c.deposit(10 * TASK_PRICE)
        before = await c.balance()
        tasks = [
            t
            async for t in c.run(
                "primes",
                volume=3,
                trust=4,  # two agreeing fresh workers
                category="TEST",
                args="5000",
                output=tmp_path,
                timeout=300,
                on_progress=steps.append,
            )
        ]
        after = await c.balance()
    assert sorted(t.index for t in tasks) == [0, 1, 2]
    assert all(t.status == "verified" for t in tasks), [t.message for t in tasks]
    for t in tasks:
        assert t.path is not None
        result = json.loads((t.path / "result.json").read_text())
        assert result["index"] == t.index and result["limit"] == 5000 * (t.index + 1)
        # anyone can recompute the digest the chain settled on
        digest = hashlib.sha256((t.path / "result.json").read_bytes()).hexdigest()
        assert t.digest == "0x" + digest
    assert after.free == before.free - 3 * TASK_PRICE and after.locked == 0
    stages = [s.stage for s in steps]
    assert stages[0] == "searching" and "matched" in stages and stages[-1] == "done"
    assert [s.done for s in steps if s.stage == "task"] == [1, 2, 3]


def test_sync_facade_deal_task_result(config: Config, tmp_path: Path) -> None:
    with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
        c.deposit(TASK_PRICE)
        (task,) = list(c.run("primes", volume=1, category="TEST", output=tmp_path, timeout=300))
        assert task.verified
        deal = c.deal(task.deal_id)
        assert deal.volume == 1 and deal.settled == 1 and deal.task_price == TASK_PRICE
        assert deal.tasks[0].status == "finalized" and deal.tasks[0].digest == task.digest
        status = c.task(task.task_id)
        assert status.status == "finalized" and status.result_blob
        again = c.result(task.task_id, tmp_path / "again")
        assert again.status == "verified" and again.files == ("result.json",)


def test_dataset_is_encrypted_restricted_and_used(config: Config, tmp_path: Path) -> None:
    plain = b"confidential measurements\n" * 100
    source = tmp_path / "measurements.csv"
    source.write_bytes(plain)
    requester = devnet_account(stack.REQUESTER)
    app = stack.Stack.load(config.settings).app
    with ComptoirSync(config, devnet_account(stack.DATASET_OWNER)) as owner:
        ds = owner.deploy_dataset(source, "measurements")
        # at rest: only ciphertext in storage, its sha256 is the on-chain checksum
        stored = owner.storage.download(ds.checksum)
        assert plain not in stored and hashlib.sha256(stored).hexdigest() == ds.checksum
        owner.publish_dataset_order(
            ds.dataset, 7, 100, app_restrict=app, requester_restrict=requester.address
        )
    with ComptoirSync(config, requester) as c:
        c.deposit(TASK_PRICE + 7)
        (task,) = list(
            c.run("primes", dataset="measurements", category="TEST", output=tmp_path, timeout=300)
        )
    assert task.verified
    assert task.path is not None
    result = json.loads((task.path / "result.json").read_text())
    assert result["dataset_sha256"] == hashlib.sha256(plain).hexdigest()
    # the owner's restriction: nobody else finds a usable order for it
    with (
        ComptoirSync(config, devnet_account(9)) as stranger,
        pytest.raises(NoMatchingOrder, match="dataset"),
    ):
        stranger.find_orders("primes", dataset=ds.dataset, category="TEST")


def test_app_developer_publishes_and_requester_finds_the_cheapest(
    config: Config, tmp_path: Path
) -> None:
    from comptoir.sdk import init_app

    source = init_app(tmp_path / "cheap", "cheap-primes")
    with ComptoirSync(config, devnet_account(stack.APP_OWNER)) as dev:
        deployed = dev.deploy_app(source)
        assert deployed.kind == "bundle" and deployed.name == "cheap-primes"
        dev.publish_app_order(deployed.app, 9, 10)
        dev.publish_app_order(deployed.app, 3, 10)
    with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
        sel = c.find_orders("cheap-primes", category="TEST")
        assert sel.app.price == 3 and sel.price == 3 + stack.POOL_PRICE
        with pytest.raises(NoMatchingOrder, match="raise --max-price to at least 103"):
            c.find_orders("cheap-primes", category="TEST", max_price=50)
        with pytest.raises(UnknownNameError, match="Did you mean 'cheap-primes'"):
            c.find_orders("cheap-prime", category="TEST")


def test_requests_are_prechecked(config: Config) -> None:
    broke = Account.create()
    with ComptoirSync(config, broke) as c:
        with pytest.raises(TransactionRejected, match="deposit at least 210"):
            c.request("primes", volume=2, category="TEST")
        with pytest.raises(NoMatchingOrder, match="trust"):
            c.request("primes", trust=1000, category="TEST")
        with pytest.raises(ResultError, match="not settled"):
            c.result("0x" + "ab" * 32)


def test_requester_can_require_a_minimum_worker_stake(config: Config) -> None:
    staked = stack.POOL_PRICE * stack.WORKER_STAKE_RATIO // 100  # what the devnet pool stakes
    with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
        sel = c.find_orders("primes", category="TEST", min_worker_stake=staked)
        assert sel.workerpool.price == stack.POOL_PRICE
        with pytest.raises(NoMatchingOrder, match=f"stakes {staked + 1} or more"):
            c.find_orders("primes", category="TEST", min_worker_stake=staked + 1)


def test_a_pool_lowering_its_stake_after_the_request_was_signed_cannot_take_it(
    config: Config,
) -> None:
    staked = stack.POOL_PRICE * stack.WORKER_STAKE_RATIO // 100
    chain = ChainClient.from_settings(config.settings, devnet_account(stack.SCHEDULER))
    with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
        c.deposit(TASK_PRICE)
        prepared = c.prepare_request("primes", category="TEST", min_worker_stake=staked)
        assert prepared.order.min_worker_stake == staked  # signed into the request
        pool = prepared.selection.workerpool.order.workerpool
        chain.set_workerpool_policy(pool, 0, stack.SCHEDULER_REWARD_RATIO)
        try:
            with pytest.raises(TransactionRejected, match="now stakes 0 token units") as refused:
                c.match_request(prepared)
            assert refused.value.reason == "poco: pool stakes below request"
        finally:
            restored = (stack.WORKER_STAKE_RATIO, stack.SCHEDULER_REWARD_RATIO)
            chain.set_workerpool_policy(pool, *restored)
