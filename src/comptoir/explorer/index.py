"""The explorer's read-only index of the chain: deals, tasks, assets, workers, accounts.

It follows the protocol's events (Hub, Registry, Contributions), the same logs the market
and the SDK read: from the deployment's first block, or, given a market's network index,
from that index's final block after a catch-up checked against the node (feed.py). It
keeps what the pages need in memory:
an explorer holds no state of its own that the chain cannot rebuild. Gas is read from the
receipts of the transactions that touched a deal. Schedulers add what only they know
(replicas running or committed, failure records) through their public read API.

Each change to a deal or a task is published on the market's event feed (SSE), so an open
page refreshes the part that changed without a reload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from eth_utils import to_checksum_address

from comptoir.chain import events as ev
from comptoir.chain.types import task_id as derive_task_id

if TYPE_CHECKING:
    from comptoir.explorer.feed import Catchup

log = structlog.get_logger("comptoir.explorer")

# SSE event names the explorer adds to the market's feed
DEAL_UPDATED = "deal.updated"
TASK_UPDATED = "task.updated"

MAX_MAPPED_TASKS = 100_000  # task ids derived per deal (a bag of 10 000 tasks is one match)
MAX_POLLED_DEALS = 20  # unsettled deals whose scheduler view is read per pass
SCHEDULER_TIMEOUT = 2.0
KIND_NAMES = {1: "app", 2: "dataset", 3: "workerpool"}
# a task's status on chain outranks what its scheduler says
SETTLED, REFUNDED = "settled", "refunded"


def hx(data: bytes) -> str:
    return "0x" + data.hex()


@dataclass
class TaskRecord:
    task_id: str
    deal_id: str
    index: int
    status: str = "pending"  # merged: chain first, then the scheduler's view
    scheduler_status: str | None = None
    contributions: list[tuple[str, str]] = field(default_factory=list)  # on-chain (worker, hash)
    consensus: str | None = None  # result hash the on-chain consensus reached
    reveals: int = 0
    digest: str | None = None
    settled_at: float | None = None
    settled_tx: str | None = None
    rewards: dict[str, int] = field(default_factory=dict)
    penalties: dict[str, int] = field(default_factory=dict)
    callback_failed: bool = False
    gas: int = 0
    fee: int = 0  # wei

    @property
    def settled(self) -> bool:
        return self.status in (SETTLED, REFUNDED)


@dataclass
class DealRecord:
    deal_id: str
    block: int
    timestamp: float
    tx: str
    requester: str
    beneficiary: str
    workerpool: int
    app: int
    dataset: int
    category: int
    tag: str
    params: str
    scheduler: str
    app_owner: str
    dataset_owner: str
    app_price: int
    dataset_price: int
    workerpool_price: int
    task_price: int
    volume: int
    trust: int
    worker_stake: int
    scheduler_stake: int
    scheduler_reward_ratio: int
    contribution_deadline: int
    final_deadline: int
    callback: str
    tasks: dict[int, TaskRecord] = field(default_factory=dict)
    gas: int = 0
    fee: int = 0

    def task(self, index: int) -> TaskRecord:
        """The task's record (created on first use: untouched tasks of a big bag cost nothing)."""
        found = self.tasks.get(index)
        if found is None:
            tid = hx(derive_task_id(bytes.fromhex(self.deal_id[2:]), index))
            found = self.tasks[index] = TaskRecord(tid, self.deal_id, index)
        return found

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for t in self.tasks.values():
            out[t.status] += 1
        out["pending"] += self.volume - len(self.tasks)
        return dict(out)

    @property
    def settled(self) -> int:
        return sum(1 for t in self.tasks.values() if t.settled)

    @property
    def status(self) -> str:
        done = self.settled
        if done == self.volume:
            return "completed"
        return "active" if done == 0 else "partly settled"


@dataclass
class AssetRecord:
    asset: int
    kind: str
    owner: str
    name: str
    location: str
    checksum: str
    block: int
    worker_stake_ratio: int | None = None
    scheduler_reward_ratio: int | None = None
    deals: int = 0
    tasks: int = 0


@dataclass
class WorkerRecord:
    address: str
    correct: int = 0
    wrong: int = 0
    rewards: int = 0
    seized: int = 0
    # (task id, "correct" or "wrong", reward or seized stake, chain time), latest last
    history: list[tuple[str, str, int, float]] = field(default_factory=list)


@dataclass
class Category:
    category: int
    name: str
    time_ref: int


@dataclass
class AccountFlows:
    deposited: int = 0
    withdrawn: int = 0


Publish = Callable[[str, dict[str, Any]], None]
SchedulerUrls = Callable[[], Mapping[int, str]]
Feed = Callable[[], "Catchup"]  # blocking: run in a thread
FEED_PATIENCE_S = 30.0  # how long a fresh explorer waits for a market index still catching up


class ChainIndex:
    """Everything the pages show that lives on chain, kept current by `run_once`."""

    def __init__(
        self,
        w3: Any,
        hub: str,
        registry: str,
        contributions: str,
        start_block: int,
        publish: Publish,
        schedulers: SchedulerUrls,
        max_block_range: int = 2000,
        feed: Feed | None = None,
        feed_patience_s: float = FEED_PATIENCE_S,
    ) -> None:
        self.w3 = w3
        # the market's index catches the explorer up (feed.py); own log scan otherwise
        self.feed = feed
        self.fed_to: int | None = None  # the index's final block the catch-up reached
        self._feed_deadline = time.monotonic() + feed_patience_s
        self.addresses: list[str] = [
            str(to_checksum_address(a)) for a in (hub, registry, contributions)
        ]
        self.next_block = start_block
        self.publish = publish
        self.schedulers = schedulers
        self.max_block_range = max_block_range
        self.deals: dict[str, DealRecord] = {}
        self.task_ids: dict[str, tuple[str, int]] = {}
        self.assets: dict[int, AssetRecord] = {}
        self.workers: dict[str, WorkerRecord] = {}
        self.categories: dict[int, Category] = {}
        self.flows: dict[str, AccountFlows] = defaultdict(AccountFlows)
        self.head = 0
        self.indexed_at = 0.0
        self._block_times: dict[int, float] = {}
        self._receipts: set[str] = set()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------ queries

    def deal_of_task(self, task_id: str) -> tuple[DealRecord, TaskRecord] | None:
        found = self.task_ids.get(task_id.lower())
        if found is None:
            return None
        deal = self.deals[found[0]]
        return deal, deal.task(found[1])

    def deals_newest(self, limit: int = 50) -> list[DealRecord]:
        ordered = sorted(self.deals.values(), key=lambda d: (d.block, d.deal_id), reverse=True)
        return ordered[:limit]

    def deals_of(self, address: str) -> list[DealRecord]:
        a = to_checksum_address(address)
        return [
            d
            for d in self.deals_newest(len(self.deals))
            if a in (d.requester, d.beneficiary, d.scheduler, d.app_owner, d.dataset_owner)
        ]

    def assets_of(self, address: str) -> list[AssetRecord]:
        a = to_checksum_address(address)
        return [x for x in self.assets.values() if x.owner == a]

    def earnings(self, address: str) -> dict[str, int]:
        """What `address` earned, from settled tasks: as app or dataset owner (their price per
        finalized task), as scheduler (the pool price plus seized stakes minus worker rewards)
        and as worker (WorkerRewarded)."""
        a = to_checksum_address(address)
        out = {"app": 0, "dataset": 0, "scheduler": 0, "worker": 0}
        for d in self.deals.values():
            for t in d.tasks.values():
                if t.status != SETTLED:
                    continue
                if d.app_owner == a:
                    out["app"] += d.app_price
                if d.dataset_owner == a and d.dataset:
                    out["dataset"] += d.dataset_price
                if d.scheduler == a:
                    paid = sum(t.rewards.values())
                    out["scheduler"] += max(
                        d.workerpool_price + sum(t.penalties.values()) - paid, 0
                    )
        worker = self.workers.get(a)
        if worker is not None:
            out["worker"] = worker.rewards
        return out

    def throughput(self, workerpool: int, window: float = 3600.0) -> int:
        """Tasks of the pool settled over the last `window` seconds (chain time)."""
        since = (self._block_times.get(self.head) or time.time()) - window
        return sum(
            1
            for d in self.deals.values()
            if d.workerpool == workerpool
            for t in d.tasks.values()
            if t.status == SETTLED and (t.settled_at or 0) >= since
        )

    # ------------------------------------------------------------ ingestion

    async def run_once(self) -> int:
        """Reads new blocks and the schedulers' views; the number of events ingested."""
        async with self._lock:
            head = int(await asyncio.to_thread(lambda: self.w3.eth.block_number))
            seen = 0
            if self.feed is not None:
                caught = await self._catch_up(head)
                if caught is None:  # the index is still catching up: wait for it
                    self.head = head
                    return 0
                seen += caught
            while self.next_block <= head:
                last = min(self.next_block + self.max_block_range - 1, head)
                found = await asyncio.to_thread(
                    ev.get_events, self.w3, self.addresses, self.next_block, last
                )
                touched = await self._ingest(found)
                await self._read_gas(found)
                self.next_block = last + 1
                seen += len(found)
                self._announce(touched)
            self.head = head
            self._announce(await self._poll_schedulers())
            self.indexed_at = time.time()
            return seen

    async def _catch_up(self, head: int) -> int | None:
        """Events taken from the market's index (0 when this explorer scans logs instead),
        or None to wait for an index still far behind the head (for a while)."""
        assert self.feed is not None
        patient = time.monotonic() < self._feed_deadline
        try:
            caught = await asyncio.to_thread(self.feed)
        except Exception as e:  # index down or inconsistent, node refusing: scan logs
            log.info("explorer.index_feed.unavailable", error=str(e), waiting=patient)
            if patient:
                return None
            self.feed = None
            return 0
        if caught.final < self.next_block or (caught.final + self.max_block_range < head):
            if patient:
                return None
            self.feed = None
            return 0
        self.feed = None  # once: the newer blocks are read from the node like before
        for c in caught.categories:
            self.categories[c[0]] = Category(*c)
        touched = await self._ingest([*caught.assets, *caught.events])
        for pool, (stake, reward) in caught.policies.items():
            if pool in self.assets:
                self.assets[pool].worker_stake_ratio = stake
                self.assets[pool].scheduler_reward_ratio = reward
        await self._read_gas(caught.events, caught.receipts)
        self.next_block, self.fed_to = caught.final + 1, caught.final
        self._announce(touched)
        log.info("explorer.index_feed.caught_up", final=caught.final, events=len(caught.events))
        return len(caught.events)

    async def _block_time(self, number: int) -> float:
        if number not in self._block_times:
            block = await asyncio.to_thread(self.w3.eth.get_block, number)
            self._block_times[number] = float(block["timestamp"])
        return self._block_times[number]

    async def _ingest(self, found: list[ev.ChainEvent]) -> set[tuple[str, int | None]]:
        touched: set[tuple[str, int | None]] = set()
        for e in found:
            if isinstance(e, ev.DealCreated):
                deal = await self._deal(e)
                self.deals[deal.deal_id] = deal
                touched.add((deal.deal_id, None))
                for asset in (e.app, e.dataset, e.workerpool):
                    if asset in self.assets:
                        self.assets[asset].deals += 1
                        self.assets[asset].tasks += deal.volume
            elif isinstance(e, ev.AssetRegistered):
                self.assets[int(e.asset)] = AssetRecord(
                    int(e.asset),
                    KIND_NAMES.get(int(e.kind), "asset"),
                    e.owner,
                    e.name,
                    e.location,
                    hx(e.checksum),
                    e.block_number,
                )
            elif isinstance(e, ev.AssetTransferred):
                if int(e.asset) in self.assets:
                    self.assets[int(e.asset)].owner = e.new_owner
            elif isinstance(e, ev.WorkerpoolPolicyUpdated):
                pool = self.assets.get(int(e.workerpool))
                if pool is not None:
                    pool.worker_stake_ratio = int(e.worker_stake_ratio)
                    pool.scheduler_reward_ratio = int(e.scheduler_reward_ratio)
            elif isinstance(e, ev.CategoryCreated):
                self.categories[int(e.category)] = Category(int(e.category), e.name, e.time_ref)
            elif isinstance(e, ev.Deposit):
                self.flows[e.account].deposited += int(e.amount)
            elif isinstance(e, ev.Withdraw):
                self.flows[e.account].withdrawn += int(e.amount)
            else:
                key = await self._task_event(e)
                if key is not None:
                    touched.add(key)
        return touched

    async def _deal(self, e: ev.DealCreated) -> DealRecord:
        d = e.deal
        deal = DealRecord(
            deal_id=hx(e.deal_id),
            block=e.block_number,
            timestamp=await self._block_time(e.block_number),
            tx=hx(e.tx_hash),
            requester=d.requester,
            beneficiary=e.beneficiary,
            workerpool=int(e.workerpool),
            app=int(e.app),
            dataset=int(e.dataset),
            category=int(e.category),
            tag=hx(e.tag),
            params=e.params,
            scheduler=d.scheduler,
            app_owner=d.app_owner,
            dataset_owner=d.dataset_owner,
            app_price=d.app_price,
            dataset_price=d.dataset_price,
            workerpool_price=d.workerpool_price,
            task_price=d.task_price,
            volume=d.volume,
            trust=d.trust,
            worker_stake=d.worker_stake,
            scheduler_stake=d.scheduler_stake,
            scheduler_reward_ratio=d.scheduler_reward_ratio,
            contribution_deadline=d.contribution_deadline,
            final_deadline=d.final_deadline,
            callback=d.callback,
        )
        for i in range(min(d.volume, MAX_MAPPED_TASKS)):
            self.task_ids[hx(derive_task_id(e.deal_id, i))] = (deal.deal_id, i)
        return deal

    async def _task_event(self, e: ev.ChainEvent) -> tuple[str, int] | None:
        tid = getattr(e, "task_id", None)
        if not isinstance(tid, bytes):
            return None
        found = self.deal_of_task(hx(tid))
        if found is None:
            return None
        deal, task = found
        if isinstance(e, ev.TaskFinalized):
            task.status, task.digest = SETTLED, hx(e.digest)
        elif isinstance(e, ev.TaskClaimed):
            task.status = REFUNDED
        elif isinstance(e, ev.Contributed):
            task.contributions.append((e.worker, hx(e.result_hash)))
            if not task.settled:
                task.status = "contributing"
        elif isinstance(e, ev.ConsensusReached):
            task.consensus = hx(e.result_hash)
            if not task.settled:
                task.status = "revealing"
        elif isinstance(e, ev.Revealed):
            task.reveals += 1
        elif isinstance(e, ev.Reopened):
            task.consensus, task.contributions, task.reveals = None, [], 0
            if not task.settled:
                task.status = "contributing"
        elif isinstance(e, ev.WorkerRewarded):
            task.rewards[e.worker] = task.rewards.get(e.worker, 0) + int(e.amount)
            self._worker_outcome(e.worker, task, "correct", int(e.amount), e.block_number)
        elif isinstance(e, ev.WorkerPenalized):
            task.penalties[e.worker] = task.penalties.get(e.worker, 0) + int(e.seized)
            self._worker_outcome(e.worker, task, "wrong", int(e.seized), e.block_number)
        elif isinstance(e, ev.CallbackFailed):
            task.callback_failed = True
        if isinstance(e, ev.TaskFinalized | ev.TaskClaimed):
            task.settled_at = await self._block_time(e.block_number)
            task.settled_tx = hx(e.tx_hash)
        return deal.deal_id, task.index

    def _worker_outcome(
        self, worker: str, task: TaskRecord, outcome: str, amount: int, block: int
    ) -> None:
        w = self.workers.setdefault(worker, WorkerRecord(worker))
        if outcome == "correct":
            w.correct += 1
            w.rewards += amount
        else:
            w.wrong += 1
            w.seized += amount
        w.history.append((task.task_id, outcome, amount, self._block_times.get(block, 0.0)))
        del w.history[:-200]  # the latest contributions are enough for a page

    async def _read_gas(
        self, found: list[ev.ChainEvent], receipts: Mapping[str, Any] | None = None
    ) -> None:
        """Gas of every new transaction that touched a deal, split over the tasks it settled
        (`receipts`: those already read, by 0x hash)."""
        by_tx: dict[str, list[ev.ChainEvent]] = defaultdict(list)
        for e in found:
            by_tx[hx(e.tx_hash)].append(e)
        for tx, events in by_tx.items():
            if tx in self._receipts:
                continue
            deal_ids: set[str] = set()
            tasks: list[TaskRecord] = []
            for e in events:
                if isinstance(e, ev.DealCreated):
                    deal_ids.add(hx(e.deal_id))
                tid = getattr(e, "task_id", None)
                if isinstance(tid, bytes) and (hit := self.deal_of_task(hx(tid))) is not None:
                    deal_ids.add(hit[0].deal_id)
                    if hit[1] not in tasks:
                        tasks.append(hit[1])
            if not deal_ids:
                continue
            self._receipts.add(tx)
            receipt: Any = (receipts or {}).get(tx)
            if receipt is None:
                receipt = await asyncio.to_thread(self.w3.eth.get_transaction_receipt, tx)
            gas = int(receipt["gasUsed"])
            fee = gas * int(receipt.get("effectiveGasPrice") or 0)
            for did in deal_ids:
                self.deals[did].gas += gas // len(deal_ids)
                self.deals[did].fee += fee // len(deal_ids)
            for t in tasks:
                t.gas += gas // len(tasks)
                t.fee += fee // len(tasks)

    # ------------------------------------------------------------ schedulers

    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=SCHEDULER_TIMEOUT)
        return self._http

    async def scheduler_get(self, workerpool: int, path: str) -> Any:
        """A scheduler's public view, or None when unknown, down or refusing."""
        url = self.schedulers().get(workerpool)
        if url is None:
            return None
        try:
            resp = await self.http().get(f"{url.rstrip('/')}{path}")
            if resp.status_code != 200 or len(resp.content) > 8 << 20:
                return None
            return resp.json()
        except (httpx.HTTPError, ValueError):
            return None

    async def _poll_schedulers(self) -> set[tuple[str, int | None]]:
        """The scheduler's status of the tasks of the latest unsettled deals."""
        touched: set[tuple[str, int | None]] = set()
        open_deals = [d for d in self.deals_newest(200) if d.settled < d.volume]
        for deal in open_deals[:MAX_POLLED_DEALS]:
            view = await self.scheduler_get(deal.workerpool, f"/v1/deals/{deal.deal_id}")
            if not isinstance(view, dict):
                continue
            for row in view.get("tasks") or []:
                try:
                    index, status = int(row["index"]), str(row["status"])[:32]
                except (KeyError, TypeError, ValueError):
                    continue
                if not 0 <= index < deal.volume:
                    continue
                task = deal.task(index)
                if task.scheduler_status == status:
                    continue
                task.scheduler_status = status
                if not task.settled and not task.contributions:
                    task.status = status
                touched.add((deal.deal_id, index))
        return touched

    def _announce(self, touched: set[tuple[str, int | None]]) -> None:
        """One task.updated per changed task, then one deal.updated per deal."""
        deals: list[str] = []
        for deal_id, index in sorted(touched, key=lambda k: (k[0], -1 if k[1] is None else k[1])):
            deal = self.deals.get(deal_id)
            if deal is None:
                continue
            if deal_id not in deals:
                deals.append(deal_id)
            if index is not None:
                t = deal.task(index)
                self.publish(
                    TASK_UPDATED,
                    {"deal_id": deal_id, "task_id": t.task_id, "index": index, "status": t.status},
                )
        for deal_id in deals:
            deal = self.deals[deal_id]
            self.publish(
                DEAL_UPDATED, {"deal_id": deal_id, "status": deal.status, "settled": deal.settled}
            )

    # ------------------------------------------------------------ background loop

    def start(self, interval: float) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(interval), name="explorer-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _loop(self, interval: float) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as e:  # a node hiccup must not stop the explorer
                log.warning("explorer.index.failed", error=str(e))
            await asyncio.sleep(interval)
