"""Keeps listed orders in step with the chain.

With the network index (`indexer`), each pass moves the index forward over the final
blocks and updates only the orders its new events touched (fills and cancels named by
DealCreated and OrderCancelled, orders of assets that changed owner), from the index's
tables: no eth_call per order. After a rollback, and on the first pass, every order the
chain can still change is reconciled against the index (SQL only).

Without an index (a ChainView passed in), each pass records new DealCreated events into
the price index (when a deal source is given), then re-reads the consumed volume of every
open order and the owner of the asset behind asset orders.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import structlog

from comptoir.exceptions import ChainError
from comptoir.market import indexstore as ix
from comptoir.market.chainview import CANCELLED, DealSource
from comptoir.market.indexer import ChainIndexer, PassReport, caught_up
from comptoir.market.orderbook import OrderBook, _read_chain
from comptoir.market.schemas import SyncReport
from comptoir.market.store import OrderQuery, StoredOrder

log = structlog.get_logger("comptoir.market.sync")

DEALS_BLOCK_KEY = "deals_block"
ON_CHAIN = "cancelled on-chain"  # orderbook.chain_status's reason


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
        indexer: ChainIndexer | None = None,
    ) -> None:
        self.book = book
        self.indexer = indexer
        self.last_index: PassReport | None = None
        self._reconcile_all = True  # first pass: the book may predate the index
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
        if self.indexer is not None:
            return await self._index_pass(self.indexer)
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

    # ------------------------------------------------------------ from the index

    async def _index_pass(self, indexer: ChainIndexer) -> SyncReport:
        store = self.book.store
        try:
            report = await indexer.run(read=asyncio.to_thread, write=store._run)
        except Exception as e:
            raise ChainError(
                f"The index could not follow the chain ({type(e).__name__}: {str(e)[:200]}); "
                "it resumes from its cursor when the node answers."
            ) from e
        self.last_index = report
        new_deals = 0
        for deal, stamp in report.changes.deals:
            new_deals += await self.book.record_deal(
                deal.category,
                deal.deal.workerpool_price,
                deal.deal.volume,
                stamp if stamp is not None else 0.0,
                deal_id=deal.deal_id,
                block=deal.block_number,
            )
        checked = updated = 0
        if report.rolled_back_to is not None:
            self._reconcile_all = True
        if caught_up(report):  # a partial index would mark live orders dead
            if self._reconcile_all:
                orders = await self._reconcilable_orders()
                self._reconcile_all = False
            else:
                orders = await self._touched_orders(report.changes)
            checked, updated = await self._apply_index(orders)
        out = SyncReport(block=report.head, checked=checked, updated=updated, deals=new_deals)
        if updated or new_deals or report.rolled_back_to is not None:
            log.info("market.sync", rolled_back_to=report.rolled_back_to, **out.model_dump())
        return out

    async def _reconcilable_orders(self) -> list[StoredOrder]:
        """Every listed order the chain can still change: open, filled, cancelled on-chain
        (a rollback may reopen the last two)."""
        store = self.book.store
        out: list[StoredOrder] = []
        after = ""
        while page := await store.open_orders(after, self.page_size):
            out += page
            after = page[-1].hash
        for status in ("filled", "cancelled"):
            rows = await self._every_match(OrderQuery(status=status))
            out += [r for r in rows if status == "filled" or r.status_reason == ON_CHAIN]
        return out

    async def _every_match(self, query: OrderQuery) -> list[StoredOrder]:
        """Every order `query` matches, a page of page_size at a time on the listing order's
        keyset (an offset would re-read every earlier page)."""
        out: list[StoredOrder] = []
        query = replace(query, limit=self.page_size, offset=0, after=None)
        while True:
            rows, _, _ = await self.book.store.list_orders(query)
            out += rows
            if len(rows) < self.page_size:
                return out
            last = rows[-1]
            query = replace(query, after=(last.price, last.published_at, last.hash))

    async def _touched_orders(self, changes: ix.Changes) -> list[StoredOrder]:
        store = self.book.store
        found = [await store.get_order(h) for h in sorted(changes.orders)]
        out = [o for o in found if o is not None]
        for asset in sorted(changes.assets):
            for kind in ("app", "dataset", "workerpool"):
                query = OrderQuery(kind=kind, status="open")
                setattr(query, kind, asset)
                out += await self._every_match(query)
        return out

    async def _apply_index(self, orders: list[StoredOrder]) -> tuple[int, int]:
        """Applies the index's fills, cancels and owners to these orders."""
        orders = [
            o
            for o in orders
            if o.status in ("open", "filled")
            or (o.status == "cancelled" and o.status_reason == ON_CHAIN)
        ]
        if not orders:
            return 0, 0
        engine = self.book.store.engine
        assets = {int(o.order[o.kind]) for o in orders if o.kind != "request"}

        def read() -> tuple[dict[str, tuple[int, bool]], dict[int, str]]:
            with engine.connect() as conn:
                return ix.fills(conn, [o.hash for o in orders]), ix.owners(conn, assets)

        fills, owners = await self.book.store._run(read)
        checked = updated = 0
        seen: set[str] = set()
        for order in orders:
            if order.hash in seen or await self.book.readable(order) is None:
                continue
            seen.add(order.hash)
            checked += 1
            consumed, cancelled = fills.get(order.hash, (0, False))
            asset = None if order.kind == "request" else int(order.order[order.kind])
            owner = owners.get(asset) if asset is not None else None
            # an asset the index has not seen final yet keeps its listing (publish checked it)
            updated += await self.book.apply_chain_state(
                order, CANCELLED if cancelled else consumed, owner, check_owner=owner is not None
            )
        return checked, updated

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
