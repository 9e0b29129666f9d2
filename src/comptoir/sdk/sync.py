"""ComptoirSync: the async SDK driven from plain (blocking) code, on a private event loop.

Every coroutine method of :class:`Comptoir` has a blocking twin here and every async
iterator (``run``, ``watch``, ``watch_task``) a plain iterator, with the same parameters
and typed results (declared one by one below, so editors and mypy see them)::

    with ComptoirSync(account="devnet:1") as c:
        print(c.balance())
        for task in c.run("primes", volume=3, category="TEST"):
            print(task.index, task.status)

Do not use it inside a running event loop (use :class:`Comptoir` there).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from eth_account.signers.local import LocalAccount

from comptoir.chain.client import ChainClient
from comptoir.config import Settings
from comptoir.sdk.client import Comptoir
from comptoir.sdk.config import Config
from comptoir.sdk.market import MarketClient
from comptoir.sdk.wallet import PasswordSource
from comptoir.storage.client import StorageClient

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")


def _blocking(
    method: Callable[Concatenate[Comptoir, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[ComptoirSync, P], R]:
    @functools.wraps(method)
    def call(self: ComptoirSync, *args: P.args, **kw: P.kwargs) -> R:
        return self._wait(method(self.client, *args, **kw))

    return call


def _iterating(
    method: Callable[Concatenate[Comptoir, P], AsyncIterator[R]],
) -> Callable[Concatenate[ComptoirSync, P], Iterator[R]]:
    @functools.wraps(method)
    def iterate(self: ComptoirSync, *args: P.args, **kw: P.kwargs) -> Iterator[R]:
        return self._iterate(method(self.client, *args, **kw))

    return iterate


class ComptoirSync:
    """Blocking twin of :class:`Comptoir` (same constructor, same methods)."""

    def __init__(
        self,
        config: Config | Settings | str | Path | None = None,
        account: LocalAccount | str | None = None,
        *,
        password: PasswordSource = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self.client = Comptoir(config, account, password=password)

    # ------------------------------------------------------------ plumbing

    @property
    def config(self) -> Config:
        return self.client.config

    @property
    def account(self) -> LocalAccount | None:
        return self.client.account

    @property
    def address(self) -> str:
        return self.client.address

    @property
    def market(self) -> MarketClient:
        return self.client.market

    @property
    def storage(self) -> StorageClient:
        return self.client.storage

    @property
    def transactions(self) -> list[str]:
        """Hashes of the transactions sent so far, oldest first."""
        return self.client.transactions

    def chain(self) -> ChainClient:
        return self._wait(self.client.chain())

    def _wait(self, coro: Awaitable[T]) -> T:
        return self._loop.run_until_complete(coro)

    def _iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._wait(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(agen, "aclose", None)
            if aclose is not None and not self._loop.is_closed():
                # after Ctrl-C the generator may still be suspended mid-step: close() below
                # cancels what is left
                with contextlib.suppress(RuntimeError):
                    self._wait(aclose())

    def close(self) -> None:
        """Close the clients; after an interruption, cancel what was still running."""
        if self._loop.is_closed():
            return
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for task in pending:
            task.cancel()
        with contextlib.suppress(Exception):
            self._wait(asyncio.gather(*pending, return_exceptions=True))
        with contextlib.suppress(Exception):
            self._wait(self.client.aclose())
        self._loop.close()

    def __enter__(self) -> ComptoirSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ accounts and names

    balance = _blocking(Comptoir.balance)
    deposit = _blocking(Comptoir.deposit)
    withdraw = _blocking(Comptoir.withdraw)
    send = _blocking(Comptoir.send)
    resolve = _blocking(Comptoir.resolve)
    resolve_category = _blocking(Comptoir.resolve_category)

    # ------------------------------------------------------------ assets and orders

    orderbook = _blocking(Comptoir.orderbook)
    pools_alive = _blocking(Comptoir.pools_alive)
    assets = _blocking(Comptoir.assets)
    show_asset = _blocking(Comptoir.show_asset)
    deploy_app = _blocking(Comptoir.deploy_app)
    upload_package = _blocking(Comptoir.upload_package)
    publish_app_order = _blocking(Comptoir.publish_app_order)
    deploy_dataset = _blocking(Comptoir.deploy_dataset)
    publish_dataset_order = _blocking(Comptoir.publish_dataset_order)
    deploy_pool = _blocking(Comptoir.deploy_pool)
    publish_pool_order = _blocking(Comptoir.publish_pool_order)
    advertise_pool = _blocking(Comptoir.advertise_pool)
    scheduler_url = _blocking(Comptoir.scheduler_url)
    cancel_order = _blocking(Comptoir.cancel_order)
    unpublish = _blocking(Comptoir.unpublish)
    pool_status = _blocking(Comptoir.pool_status)
    pool_workers = _blocking(Comptoir.pool_workers)

    # ------------------------------------------------------------ requesters

    find_orders = _blocking(Comptoir.find_orders)
    request = _blocking(Comptoir.request)
    prepare_request = _blocking(Comptoir.prepare_request)
    match_request = _blocking(Comptoir.match_request)
    fulfil = _blocking(Comptoir.fulfil)
    run = _iterating(Comptoir.run)
    watch = _iterating(Comptoir.watch)

    # ------------------------------------------------------------ deals, tasks, results

    deal = _blocking(Comptoir.deal)
    deals = _blocking(Comptoir.deals)
    claim_deal = _blocking(Comptoir.claim_deal)
    claim_task = _blocking(Comptoir.claim_task)
    task = _blocking(Comptoir.task)
    logs = _blocking(Comptoir.logs)
    watch_task = _iterating(Comptoir.watch_task)
    result = _blocking(Comptoir.result)
