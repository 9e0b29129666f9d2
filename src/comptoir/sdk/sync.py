"""ComptoirSync: the async SDK driven from plain (blocking) code, on a private event loop.

Every coroutine method of :class:`Comptoir` becomes a blocking call and every async
iterator (``run``, ``watch``, ``watch_task``) a plain iterator::

    with ComptoirSync(account="devnet:1") as c:
        print(c.balance())
        for task in c.run("primes", volume=3, category="TEST"):
            print(task.index, task.status)

Do not use it inside a running event loop (use :class:`Comptoir` there).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, TypeVar

from eth_account.signers.local import LocalAccount

from comptoir.config import Settings
from comptoir.sdk.client import Comptoir
from comptoir.sdk.config import Config
from comptoir.sdk.wallet import PasswordSource

T = TypeVar("T")


class ComptoirSync:
    def __init__(
        self,
        config: Config | Settings | str | Path | None = None,
        account: LocalAccount | str | None = None,
        *,
        password: PasswordSource = None,
    ) -> None:
        self._loop = asyncio.new_event_loop()
        self.client = Comptoir(config, account, password=password)

    @property
    def config(self) -> Config:
        return self.client.config

    @property
    def account(self) -> LocalAccount | None:
        return self.client.account

    @property
    def address(self) -> str:
        return self.client.address

    def _wait(self, coro: Any) -> Any:
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
                self._wait(aclose())

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.client, name)
        if inspect.isasyncgenfunction(attr):

            @functools.wraps(attr)
            def iterate(*args: Any, **kw: Any) -> Iterator[Any]:
                return self._iterate(attr(*args, **kw))

            return iterate
        if inspect.iscoroutinefunction(attr):

            @functools.wraps(attr)
            def call(*args: Any, **kw: Any) -> Any:
                return self._wait(attr(*args, **kw))

            return call
        return attr

    def close(self) -> None:
        if not self._loop.is_closed():
            self._wait(self.client.aclose())
            self._loop.close()

    def __enter__(self) -> ComptoirSync:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
