"""What each explorer page shows, assembled from the order book, the chain index, live chain
views and the schedulers' read API. No HTTP or HTML here: plain dicts and records the
templates render."""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address

from comptoir.chain.types import TAG_GPU, TAG_TEE
from comptoir.explorer.chart import INTERVALS, pick_interval
from comptoir.explorer.index import AssetRecord, ChainIndex, DealRecord, TaskRecord
from comptoir.market.prices import OHLC
from comptoir.market.store import OrderQuery

if TYPE_CHECKING:
    from comptoir.chain.client import ChainClient
    from comptoir.market.orderbook import OrderBook
    from comptoir.market.schemas import OrderRecord

TASKS_PER_PAGE = 25
ORDERS_SHOWN = 50
HEX64 = re.compile(r"^0x[0-9a-fA-F]{64}$")
HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}$")
TAG_NAMES = {TAG_TEE: "TEE", TAG_GPU: "GPU"}
_DONE_REPLICA = {"committed", "revealed"}


def tag_labels(tag: int | str) -> list[str]:
    value = int(tag, 16) if isinstance(tag, str) else tag
    names = [name for bit, name in TAG_NAMES.items() if value & bit]
    rest = value & ~sum(TAG_NAMES)
    if rest:
        names.append(hex(rest))
    return names


def parse_tag(raw: str) -> int | None:
    """A tag filter as typed: "gpu", "tee,gpu", "0x2" or "2"; None when blank or unreadable."""
    raw = raw.strip().lower()
    if not raw:
        return None
    names = {v.lower(): k for k, v in TAG_NAMES.items()}
    tag = 0
    for part in filter(None, (p.strip() for p in raw.replace("+", ",").split(","))):
        if part in names:
            tag |= names[part]
        elif re.fullmatch(r"0x[0-9a-f]{1,64}", part):
            tag |= int(part, 16)
        elif part.isdigit() and len(part) <= 78:
            tag |= int(part)
        else:
            return None
    return tag


@dataclass
class BookFilters:
    category: int | None = None
    kind: str | None = None
    tag: str = ""
    min_trust: int | None = None
    max_price: int | None = None

    @property
    def tag_value(self) -> int | None:
        return parse_tag(self.tag)


@dataclass
class TaskRow:
    """One task as the deal page shows it: chain record plus the scheduler's view."""

    record: TaskRecord
    replicas: list[dict[str, Any]]
    failure: str | None
    scheduler_status: str | None = None  # from the scheduler's task view, when it has one

    @property
    def commitments(self) -> int:
        onchain = len(self.record.contributions)
        return max(onchain, sum(1 for r in self.replicas if r.get("status") in _DONE_REPLICA))

    @property
    def consensus(self) -> str:
        t = self.record
        if t.status == "settled":
            return "reached"
        if t.status == "refunded":
            return "none (refunded)"
        if t.consensus or t.scheduler_status in ("revealing", "ready"):
            return "reached, revealing" if t.scheduler_status != "ready" else "reached"
        return "pending"


def failure_text(view: dict[str, Any]) -> str | None:
    """The reason a task failed, in words, from the scheduler's task view."""
    failure = view.get("failure")
    if isinstance(failure, dict):
        status = str(failure.get("status", "failed"))[:40]
        code = failure.get("exit_code")
        return f"{status} (exit code {code})" if code is not None else status
    if view.get("status") == "abandoned":
        errors = [str(r.get("error")) for r in view.get("replicas") or [] if r.get("error")]
        return ("abandoned: " + errors[-1][:160]) if errors else "abandoned"
    return None


class Views:
    def __init__(self, book: OrderBook, index: ChainIndex | None, client: ChainClient | None):
        self.book = book
        self.index = index
        self.client = client

    # ------------------------------------------------------------ market

    def asset_name(self, asset: int) -> str:
        found = self.index.assets.get(asset) if self.index else None
        return found.name if found else f"#{asset}"

    def category_name(self, category: int) -> str:
        found = self.index.categories.get(category) if self.index else None
        return found.name if found else f"#{category}"

    def categories(self) -> list[tuple[int, str]]:
        if self.index and self.index.categories:
            return [(c.category, c.name) for c in sorted(self.index.categories.values(), key=_cat)]
        return []

    async def orders(self, f: BookFilters) -> tuple[list[OrderRecord], int]:
        page = await self.book.list_orders(
            OrderQuery(
                kind=f.kind,
                category=f.category,
                tag=f.tag_value,
                min_trust=f.min_trust,
                max_price=f.max_price,
                limit=ORDERS_SHOWN,
            )
        )
        return page.orders, page.total

    async def chart(self, category: int, interval: int | None) -> tuple[list[OHLC], int]:
        if interval is None:
            minutes = await self.book.candles(category, INTERVALS[0])
            interval = pick_interval(minutes[0].start if minutes else None)
        return await self.book.candles(category, interval), interval

    async def prices(self) -> dict[int, tuple[int, int]]:
        """Per category: (latest price, deals)."""
        return {d.category: (d.price, n) for d, n in await self.book.latest_prices()}

    async def default_category(self) -> int:
        prices = await self.book.latest_prices()
        if prices:
            return max(prices, key=lambda p: p[0].timestamp)[0].category
        cats = self.categories()
        return cats[0][0] if cats else 0

    # ------------------------------------------------------------ deals and tasks

    async def task_rows(self, deal: DealRecord, page: int) -> list[TaskRow]:
        first = page * TASKS_PER_PAGE
        indices = range(first, min(first + TASKS_PER_PAGE, deal.volume))
        records = [deal.task(i) for i in indices]
        views = await asyncio.gather(*(self.scheduler_task(deal, t) for t in records))
        return [
            TaskRow(
                t,
                list(v.get("replicas") or [])[:100],
                failure_text(v),
                str(v["status"])[:32] if v.get("status") else None,
            )
            for t, v in zip(records, views, strict=True)
        ]

    async def scheduler_task(self, deal: DealRecord, task: TaskRecord) -> dict[str, Any]:
        if self.index is None:
            return {}
        view = await self.index.scheduler_get(deal.workerpool, f"/v1/tasks/{task.task_id}")
        return view if isinstance(view, dict) else {}

    # ------------------------------------------------------------ pools, workers, catalogue

    async def _chain(self, fn: Any, *args: Any) -> Any:
        """A live chain view; None when the node does not answer."""
        try:
            return await asyncio.to_thread(fn, *args)
        except Exception:
            return None

    async def pools(self) -> list[dict[str, Any]]:
        if self.index is None:
            return []
        out = []
        for pool in sorted(self.index.assets.values(), key=lambda a: a.asset):
            if pool.kind != "workerpool":
                continue
            status = await self.index.scheduler_get(pool.asset, "/v1/status")
            policy = (pool.worker_stake_ratio, pool.scheduler_reward_ratio)
            if policy[0] is None and self.client is not None:
                policy = await self._chain(self.client.workerpool_policy, pool.asset) or policy
            orders = await self.book.list_orders(
                OrderQuery(kind="workerpool", workerpool=pool.asset, limit=100)
            )
            out.append(
                {
                    "asset": pool,
                    "policy": policy,
                    "orders": orders.orders,
                    "price": min((o.price for o in orders.orders), default=None),
                    "online": status.get("workers_online") if isinstance(status, dict) else None,
                    "active": status.get("deals_active") if isinstance(status, dict) else None,
                    "throughput": self.index.throughput(pool.asset),
                    "scheduler_known": isinstance(status, dict),
                }
            )
        return out

    async def workers(self) -> list[dict[str, Any]]:
        if self.index is None:
            return []
        seen: dict[str, dict[str, Any]] = {}
        for pool in [a for a in self.index.assets.values() if a.kind == "workerpool"]:
            listed = await self.index.scheduler_get(pool.asset, "/v1/workers")
            for w in listed if isinstance(listed, list) else []:
                if isinstance(w, dict) and HEX40.match(str(w.get("address", ""))):
                    address = str(to_checksum_address(w["address"]))
                    seen[address] = {"pool": pool, "online": bool(w.get("online"))}
        for address in self.index.workers:
            seen.setdefault(address, {"pool": None, "online": None})
        rows = []
        for address, info in sorted(seen.items()):
            rows.append({"address": address, **info, **await self.reputation(address)})
        return rows

    async def reputation(self, address: str) -> dict[str, Any]:
        record = self.index.workers.get(address) if self.index else None
        score = await self._chain(self.client.score, address) if self.client else None
        stake = await self._chain(self.client.balance, address) if self.client else None
        weight = min(max(score // 3, 3) - 1, 1000) if score is not None else None
        return {"score": score, "weight": weight, "stake": stake, "record": record}

    async def catalogue(self, kind: str) -> list[dict[str, Any]]:
        if self.index is None:
            return []
        assets = [a for a in self.index.assets.values() if a.kind == kind]
        return [await self.asset(a) for a in sorted(assets, key=lambda a: -a.asset)]

    async def asset(self, a: AssetRecord) -> dict[str, Any]:
        query = OrderQuery(kind=a.kind, limit=100, **{a.kind: a.asset})  # type: ignore[arg-type]
        orders = (await self.book.list_orders(query)).orders
        settled = 0
        if self.index is not None:
            settled = sum(
                1
                for d in self.index.deals.values()
                if a.asset in (d.app, d.dataset, d.workerpool)
                for t in d.tasks.values()
                if t.status == "settled"
            )
        cheapest = min(orders, key=lambda o: o.price) if orders else None
        return {"asset": a, "orders": orders, "cheapest": cheapest, "settled": settled}

    # ------------------------------------------------------------ accounts

    async def address(self, address: str) -> dict[str, Any]:
        a = to_checksum_address(address)
        client, index = self.client, self.index
        wallet = await self._chain(client.token_balance, a) if client else None
        free = await self._chain(client.balance, a) if client else None
        eth = await self._chain(client.eth_balance, a) if client else None
        deals = index.deals_of(a) if index else []
        locked = spent = 0
        for d in deals:
            if d.requester == a:
                spent += sum(1 for t in d.tasks.values() if t.status == "settled") * d.task_price
            open_tasks = d.volume - d.settled
            if d.requester == a:
                locked += open_tasks * d.task_price
            if d.scheduler == a:
                locked += open_tasks * d.scheduler_stake
        return {
            "address": a,
            "wallet": wallet,
            "free": free,
            "locked": locked,
            "spent": spent,
            "eth": eth,
            "deals": deals[:100],
            "assets": index.assets_of(a) if index else [],
            "earnings": index.earnings(a) if index else {},
            "flows": index.flows.get(a) if index else None,
            "reputation": await self.reputation(a),
        }

    # ------------------------------------------------------------ search

    async def search(self, q: str) -> tuple[str | None, list[tuple[str, str]]]:
        """Where the query leads: a page URL when one thing matches, else the candidates."""
        q = q.strip()[:200]
        index = self.index
        if HEX40.match(q):
            return f"/explorer/address/{to_checksum_address(q)}", []
        if HEX64.match(q):
            key = q.lower()
            if index and key in index.deals:
                return f"/explorer/deals/{key}", []
            if index and index.deal_of_task(key):
                return f"/explorer/tasks/{key}", []
            try:
                order = await self.book.get(key)
            except Exception:
                order = None
            if order is not None:
                return f"/explorer/orders/{key}", []
            return None, []
        if q.isdigit() and index and int(q) in index.assets:
            return f"/explorer/assets/{int(q)}", []
        if not q or index is None:
            return None, []
        low = q.lower()
        hits = [
            (f"/explorer/assets/{a.asset}", f"{a.kind} {a.name} (#{a.asset})")
            for a in index.assets.values()
            if low in a.name.lower()
        ]
        if len(hits) == 1:
            return hits[0][0], []
        return None, hits[:50]


def _cat(c: Any) -> int:
    return int(c.category)
