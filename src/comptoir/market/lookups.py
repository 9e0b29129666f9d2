"""Chain facts a publish needs (asset kind and owner, free balance), cached briefly.

A publish must check its claims against the chain, but a provider listing a thousand orders
for one app need not cost a thousand identical reads: each answer is kept `ttl` seconds at
most, `size` entries at most (oldest dropped first), so a changed owner or a withdrawn
deposit is seen within `ttl`. `forget` drops an entry at once (a caller that saw the change
on-chain, or a refusal based on it). The sync loop reads the chain directly, never this.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

from comptoir.market.chainview import ChainView

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_TTL = 2.0  # seconds a chain answer may serve publishes
DEFAULT_SIZE = 20_000  # entries per cache


class TTLCache(Generic[K, V]):
    """A bounded map whose entries expire `ttl` seconds after they were stored."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl, self.size, self.clock = ttl, size, clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        found = self._entries.get(key)
        if found is None:
            return False, None
        if self.clock() >= found[0]:
            del self._entries[key]
            return False, None
        return True, found[1]

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0 or self.size <= 0:
            return
        self._entries.pop(key, None)
        self._entries[key] = (self.clock() + self.ttl, value)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        self._entries.pop(key, None)

    def __len__(self) -> int:
        return len(self._entries)


class ChainLookups:
    """The cached reads of the publish path, in front of a ChainView."""

    def __init__(
        self,
        chain: ChainView,
        ttl: float = DEFAULT_TTL,
        size: int = DEFAULT_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.chain = chain
        self.assets: TTLCache[int, tuple[int, str | None]] = TTLCache(ttl, size, clock)
        self.balances: TTLCache[str, int] = TTLCache(ttl, size, clock)

    async def asset(self, asset_id: int) -> tuple[int, str | None]:
        """(kind, owner) of an asset; kind 0 and owner None when unregistered."""
        hit, value = self.assets.get(asset_id)
        if hit and value is not None:
            return value
        value = (await self.chain.kind_of(asset_id), await self.chain.owner_of(asset_id))
        self.assets.put(asset_id, value)
        return value

    async def balance(self, account: str) -> int:
        hit, value = self.balances.get(account)
        if hit and value is not None:
            return value
        value = await self.chain.balance_of(account)
        self.balances.put(account, value)
        return value

    async def prefetch_balances(self, accounts: Iterable[str]) -> None:
        """Reads the missing balances in one batch when the chain view can batch."""
        missing = sorted({a for a in accounts if not self.balances.get(a)[0]})
        many = getattr(self.chain, "balances_of", None)
        if not missing or many is None:
            return
        for account, value in zip(missing, await many(missing), strict=True):
            self.balances.put(account, value)

    def forget(self, *, asset: int | None = None, account: str | None = None) -> None:
        if asset is not None:
            self.assets.forget(asset)
        if account is not None:
            self.balances.forget(account)
