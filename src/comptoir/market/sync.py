"""Keeps listed orders in step with the chain.

Each pass records new DealCreated events into the price index (when a deal source is
given), then re-reads the consumed volume of every open order, and the owner of the asset
behind asset orders: events alone miss on-chain cancels and ownership transfers, and
an event stream can drop entries, so polling is the source of truth.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog

from comptoir.market.chainview import DealSource
from comptoir.market.orderbook import OrderBook, _read_chain
from comptoir.market.schemas import SyncReport

log = structlog.get_logger("comptoir.market.sync")

DEALS_BLOCK_KEY = "deals_block"


class MarketSync:
    def __init__(
        self,
        book: OrderBook,
        deal_source: DealSource | None = None,
        interval: float = 5.0,
        start_block: int = 0,
        page_size: int = 500,
        max_block_range: int = 2000,
        confirmations: int = 0,
    ) -> None:
        self.book = book
        self.deal_source = deal_source
        self.interval = interval
        self.start_block = start_block
        self.page_size = page_size
        self.max_block_range = max_block_range
        # deals are read only this many blocks behind the head, so a reorg cannot
        # leave a vanished deal in the price index
        self.confirmations = confirmations
        self._lock = asyncio.Lock()  # the loop and POST /v1/sync never overlap
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> SyncReport:
        async with self._lock:
            return await self._pass()

    async def _pass(self) -> SyncReport:
        store, chain = self.book.store, self.book.chain
        block = await _read_chain("the block number", chain.block_number())
        new_deals = 0
        if self.deal_source is not None:
            last = await store.get_meta(DEALS_BLOCK_KEY)
            first = int(last) + 1 if last is not None else self.start_block
            # in chunks, remembering progress, so a long history resumes where it stopped
            safe = block - self.confirmations
            while first <= safe:
                last_of_chunk = min(first + self.max_block_range - 1, safe)
                found = await _read_chain(
                    "DealCreated events", self.deal_source(first, last_of_chunk)
                )
                for deal in found:
                    created = await self.book.record_deal(
                        deal.category,
                        deal.workerpool_price,
                        deal.volume,
                        deal.timestamp,
                        deal_id=deal.deal_id,
                        block=deal.block,
                    )
                    new_deals += created
                await store.set_meta(DEALS_BLOCK_KEY, str(last_of_chunk))
                first = last_of_chunk + 1

        checked = updated = 0
        owners: dict[int, str | None] = {}  # one read per asset per pass
        after = ""
        while page := await store.open_orders(after, self.page_size):
            after = page[-1].hash
            page = [o for o in page if await self.book.readable(o) is not None]
            if not page:
                continue
            consumed = await _read_chain(
                "consumed volumes",
                asyncio.gather(*(chain.consumed(bytes.fromhex(o.hash[2:])) for o in page)),
            )
            assets = {int(o.order[o.kind]) for o in page if o.kind != "request"} - owners.keys()
            found_owners = await _read_chain(
                "asset owners", asyncio.gather(*(chain.owner_of(a) for a in assets))
            )
            owners.update(zip(assets, found_owners, strict=True))
            for order, used in zip(page, consumed, strict=True):
                checked += 1
                is_asset = order.kind != "request"
                owner = owners[int(order.order[order.kind])] if is_asset else None
                updated += await self.book.apply_chain_state(
                    order, used, owner, check_owner=is_asset
                )
        report = SyncReport(block=block, checked=checked, updated=updated, deals=new_deals)
        if updated or new_deals:
            log.info("market.sync", **report.model_dump())
        return report

    # ------------------------------------------------------------ background loop

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="market-sync")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as e:  # a node hiccup must not kill the loop
                log.warning("market.sync.failed", error=str(e))
            await asyncio.sleep(self.interval)
