"""A stranger who sees a requester's signed request tries to take it over with their own
workerpool: the SDK signs every request bound to the pool it chose, so the hub refuses
the stranger's match with one sentence, and a result is "verified" only for a deal made
from a request this SDK signed with the pool it chose."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from comptoir import stack
from comptoir.chain.types import RequestOrder, WorkerpoolOrder
from comptoir.exceptions import TransactionRejected
from comptoir.sdk import Comptoir, Config, devnet_account
from comptoir.sdk.journal import RequestJournal

pytestmark = pytest.mark.devnet

STRANGER = 9  # left to tests by the stack
TASK_PRICE = stack.APP_PRICE + stack.POOL_PRICE


async def test_a_signed_request_cannot_be_hijacked_by_another_pool(
    config: Config, local_stack: stack.Stack, tmp_path: Path
) -> None:
    async with (
        Comptoir(config, devnet_account(stack.REQUESTER)) as requester,
        Comptoir(config, devnet_account(STRANGER)) as thief,
    ):
        await requester.deposit(2 * TASK_PRICE)
        category = await requester.resolve_category("TEST")
        prepared = await requester.prepare_request("primes", category="TEST", volume=1)
        # the SDK chose the stack's pool and signed exactly that pool
        assert prepared.selection.workerpool.order.workerpool == local_stack.workerpool
        assert prepared.order.workerpool == local_stack.workerpool

        # the thief runs its own pool and offers the same terms
        thief_pool = (await thief.deploy_pool("thief-pool")).workerpool
        await thief.deposit(10 * stack.POOL_PRICE)
        thief_chain = await thief.chain()
        own = WorkerpoolOrder(
            workerpool=thief_pool,
            workerpool_price=prepared.selection.workerpool.price,
            volume=10,
            category=category,
            trust=1000,
        )
        app = prepared.selection.app
        with pytest.raises(TransactionRejected) as refused:
            await asyncio.to_thread(
                thief_chain.match_orders,
                app.order,
                app.signature,
                None,
                b"",
                own,
                thief_chain.sign_order(own),
                prepared.order,
                prepared.signature,
            )
        assert str(refused.value) == (
            "The request only accepts another workerpool; pick an order from that workerpool."
        )

        # the requester's own match goes through, with the pool it chose, and verifies
        (deal,) = await requester.match_request(prepared)
        assert deal.workerpool == local_stack.workerpool
        (task,) = [t async for t in requester.watch([deal], output=tmp_path, timeout=300)]
        assert task.status == "verified", task.message


async def test_a_deal_the_requester_did_not_make_is_not_verified(
    config: Config, local_stack: stack.Stack, tmp_path: Path
) -> None:
    """A request signed outside the SDK with workerpool 0 (anyone's pool), matched by a
    stranger: the digest matches the chain, but the SDK does not call the result verified."""
    async with (
        Comptoir(config, devnet_account(stack.REQUESTER)) as requester,
        Comptoir(config, devnet_account(STRANGER)) as thief,
    ):
        await requester.deposit(TASK_PRICE)
        sel = await requester.find_orders("primes", category="TEST")
        open_request = RequestOrder(
            app=sel.app.order.app,
            app_max_price=sel.app.price,
            dataset=0,
            dataset_max_price=0,
            workerpool=0,
            workerpool_max_price=sel.workerpool.price,
            requester=requester.address,
            volume=1,
            category=await requester.resolve_category("TEST"),
            trust=1,
        )
        signature = (await requester.chain()).sign_order(open_request)
        thief.journal = RequestJournal(tmp_path / "thief-home")  # the thief's own machine
        (deal,) = await thief.fulfil(open_request, signature)  # the stranger picks the pool
        assert thief.journal.made_here(deal.deal_id, deal.workerpool)
        (task,) = [t async for t in requester.watch([deal], output=tmp_path / "out", timeout=300)]
    assert task.status == "unbound"
    assert "was not made here nor from a request signed here" in task.message
    assert not task.verified
