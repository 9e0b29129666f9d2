"""Read-only query API over the market's network index (deals, tasks, assets).

Every answer carries the index's head: `final` is the newest block whose events are all
in the index (final at the network's confirmation depth), `head` the chain's head at the
last pass. Rows are only what was final; a client that acts on money or verification
re-checks the chain (the SDK does). Lists are keyset-paginated (`cursor` from the previous
page's `next_cursor`), `limit` at most MAX_PAGE, and every filter is an indexed column.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from comptoir.exceptions import IndexNotFound
from comptoir.market import indexstore as ix
from comptoir.market.indexer import select_cursor
from comptoir.market.schemas import ErrorBody, parse_address
from comptoir.market.store import MAX_PRICE, pad

if TYPE_CHECKING:
    from comptoir.market.app import Market

MAX_PAGE = 500
MAX_NAME = ix.MAX_NAME
ADDRESS = r"^0x[0-9a-fA-F]{40}$"
BYTES32 = r"^0x[0-9a-fA-F]{64}$"
ASSET_KINDS = {"app": 1, "dataset": 2, "workerpool": 3}
KIND_NAMES = {v: k for k, v in ASSET_KINDS.items()}
MAX_ASSET = MAX_PRICE  # registry ids are a counter: far below 2**128
SEQ_CURSOR = r"^[0-9]{1,18}$"  # below 2**63: a SQL BIGINT (a longer one was a 500)


class IndexHead(BaseModel):
    enabled: bool = Field(description="False when this market keeps no index.")
    final: int | None = Field(description="Newest block whose final events are all indexed.")
    final_hash: str | None = None
    head: int | None = Field(description="The chain's head at the last index pass.")
    confirmations: int = Field(description="Depth at which a block counts as final.")


class DealEntry(BaseModel):
    deal_id: str
    block: int
    tx_hash: str
    timestamp: float | None
    requester: str
    beneficiary: str
    scheduler: str
    app: int
    dataset: int
    workerpool: int
    category: int
    volume: int
    params: str
    tag: str
    app_order_hash: str
    dataset_order_hash: str
    workerpool_order_hash: str
    finalized: int = Field(description="Tasks settled with a result (final events).")
    claimed: int = Field(description="Tasks refunded by a claim (final events).")
    deal: dict[str, Any] = Field(description="The full Deal struct DealCreated carried.")


class DealPage(BaseModel):
    deals: list[DealEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")
    index: IndexHead


class TaskEntry(BaseModel):
    task_id: str
    deal_id: str | None = Field(description="Known once the task is settled.")
    index: int | None
    status: Literal["contributed", "revealing", "finalized", "claimed", "pending"]
    digest: str | None
    result_hash: str | None
    contributions: int
    reveals: int
    block: int
    tx_hash: str | None
    workers: list[dict[str, Any]] = Field(
        description="Workers rewarded or penalized on this task (worker, outcome, amount)."
    )


class TaskPage(BaseModel):
    tasks: list[TaskEntry]
    next_cursor: str | None
    index: IndexHead


class AssetEntry(BaseModel):
    asset: int
    kind: Literal["app", "dataset", "workerpool"]
    owner: str
    name: str
    location: str
    checksum: str
    block: int


class AssetPage(BaseModel):
    assets: list[AssetEntry]
    next_cursor: str | None
    index: IndexHead


def _deal(row: Any, counts: dict[str, tuple[int, int]]) -> DealEntry:
    finalized, claimed = counts.get(row.deal_id, (0, 0))
    app_hash, dataset_hash, workerpool_hash = json.loads(row.order_hashes)
    return DealEntry(
        deal_id=row.deal_id,
        block=row.block,
        tx_hash=row.tx_hash,
        timestamp=row.timestamp,
        requester=row.requester,
        beneficiary=row.beneficiary,
        scheduler=row.scheduler,
        app=int(row.app),
        dataset=int(row.dataset),
        workerpool=int(row.workerpool),
        category=int(row.category),
        volume=int(row.volume),
        params=row.params,
        tag=row.tag,
        app_order_hash=app_hash,
        dataset_order_hash=dataset_hash,
        workerpool_order_hash=workerpool_hash,
        finalized=finalized,
        claimed=claimed,
        deal=json.loads(row.deal_json),
    )


def _task(row: Any, workers: list[dict[str, Any]]) -> TaskEntry:
    return TaskEntry(
        task_id=row.task_id,
        deal_id=row.deal_id,
        index=row.idx,
        status=row.status,
        digest=row.digest,
        result_hash=row.result_hash,
        contributions=row.contributions,
        reveals=row.reveals,
        block=row.block,
        tx_hash=row.tx_hash,
        workers=workers,
    )


def _asset(row: Any) -> AssetEntry:
    return AssetEntry(
        asset=int(row.asset),
        kind=KIND_NAMES.get(row.kind, "app"),  # type: ignore[arg-type]
        owner=row.owner,
        name=row.name,
        location=row.location,
        checksum=row.checksum,
        block=row.block,
    )


def _page(conn: Any, query: Any, limit: int) -> tuple[list[Any], bool]:
    """One page of rows, and whether more follow (one row past the page tells)."""
    rows = conn.execute(query.limit(limit + 1)).all()
    return rows[:limit], len(rows) > limit


def _settled_counts(conn: Any, deal_ids: list[str]) -> dict[str, tuple[int, int]]:
    if not deal_ids:
        return {}
    query = (
        select(ix.tasks.c.deal_id, ix.tasks.c.status, func.count())
        .where(ix.tasks.c.deal_id.in_(deal_ids), ix.tasks.c.status.in_(ix.SETTLED))
        .group_by(ix.tasks.c.deal_id, ix.tasks.c.status)
    )
    out: dict[str, list[int]] = {}
    for deal_id, status, n in conn.execute(query):
        out.setdefault(deal_id, [0, 0])[0 if status == "finalized" else 1] = int(n)
    return {k: (v[0], v[1]) for k, v in out.items()}


def _workers(conn: Any, task_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in task_ids}
    if task_ids:
        query = select(ix.task_workers).where(ix.task_workers.c.task_id.in_(task_ids))
        for row in conn.execute(query):
            out[row.task_id].append(
                {"worker": row.worker, "outcome": row.outcome, "amount": int(row.amount)}
            )
    return out


def mount_index_routes(app: FastAPI, market: Market) -> None:
    store = market.store

    @app.exception_handler(IndexNotFound)
    async def _not_found(request: Request, exc: IndexNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    def head_of(conn: Any) -> IndexHead:
        del conn
        if market.indexer is None:
            return IndexHead(enabled=False, final=None, head=None, confirmations=0)
        final, final_hash = select_cursor(market.indexer.engine)
        last = market.sync.last_index
        return IndexHead(
            enabled=True,
            final=final,
            final_hash=final_hash,
            head=last.head if last is not None else None,
            confirmations=market.indexer.confirmations,
        )

    def need_index() -> None:
        if market.indexer is None:
            raise IndexNotFound(
                "This market keeps no network index (it reads the chain through a ChainView); "
                "read the chain's logs instead."
            )

    async def read(fn: Any) -> Any:
        need_index()

        def run() -> Any:
            with store.engine.connect() as conn:
                return fn(conn)

        return await store._run(run)

    not_found: dict[int | str, dict[str, Any]] = {
        404: {"model": ErrorBody, "description": "Not in the index (or no index kept)."},
        422: {"model": ErrorBody, "description": "Malformed query; `detail` says which."},
    }

    @app.get("/v1/index", response_model=IndexHead, tags=["index"])
    async def index_head() -> IndexHead:
        """How far the network index has read the chain."""
        if market.indexer is None:
            return head_of(None)
        return await store._run(lambda: head_of(None))

    @app.get("/v1/deals", response_model=DealPage, tags=["index"], responses=not_found)
    async def list_deals(
        requester: Annotated[str | None, Query(pattern=ADDRESS)] = None,
        scheduler: Annotated[
            str | None, Query(pattern=ADDRESS, description="The pool's scheduler.")
        ] = None,
        workerpool: Annotated[int | None, Query(ge=0, le=MAX_ASSET)] = None,
        worker: Annotated[
            str | None,
            Query(pattern=ADDRESS, description="Deals where this worker was paid or fined."),
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[str | None, Query(pattern=SEQ_CURSOR, max_length=18)] = None,
    ) -> DealPage:
        """Deals, newest first, from final DealCreated events."""
        conds: list[Any] = []
        if requester is not None:
            conds.append(ix.deals.c.requester == parse_address(requester))
        if scheduler is not None:
            conds.append(ix.deals.c.scheduler == parse_address(scheduler))
        if workerpool is not None:
            conds.append(ix.deals.c.workerpool == pad(workerpool))
        if worker is not None:
            paid = (
                select(ix.tasks.c.deal_id)
                .join(ix.task_workers, ix.task_workers.c.task_id == ix.tasks.c.task_id)
                .where(ix.task_workers.c.worker == parse_address(worker))
            )
            conds.append(ix.deals.c.deal_id.in_(paid))
        if cursor is not None:
            conds.append(ix.deals.c.seq < int(cursor))

        def run(conn: Any) -> DealPage:
            query = select(ix.deals).where(*conds).order_by(ix.deals.c.seq.desc())
            rows, more = _page(conn, query, limit)
            counts = _settled_counts(conn, [r.deal_id for r in rows])
            return DealPage(
                deals=[_deal(r, counts) for r in rows],
                next_cursor=str(rows[-1].seq) if more else None,
                index=head_of(conn),
            )

        page: DealPage = await read(run)
        return page

    @app.get("/v1/deals/{deal_id}", response_model=DealEntry, tags=["index"], responses=not_found)
    async def get_deal(deal_id: Annotated[str, Path(pattern=BYTES32)]) -> DealEntry:
        """One deal, with its settled task counts."""
        key = deal_id.lower()

        def run(conn: Any) -> DealEntry | None:
            row = conn.execute(select(ix.deals).where(ix.deals.c.deal_id == key)).first()
            return None if row is None else _deal(row, _settled_counts(conn, [key]))

        found: DealEntry | None = await read(run)
        if found is None:
            raise IndexNotFound(f"No deal {key} is in the index as final yet; check the id.")
        return found

    @app.get(
        "/v1/deals/{deal_id}/tasks", response_model=TaskPage, tags=["index"], responses=not_found
    )
    async def deal_tasks(
        deal_id: Annotated[str, Path(pattern=BYTES32)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[
            str | None, Query(pattern=SEQ_CURSOR, description="Task index to start after.")
        ] = None,
    ) -> TaskPage:
        """The settled tasks of a deal, by index (tasks without a final settlement are not
        listed: their status is the scheduler's to tell)."""
        key = deal_id.lower()
        conds = [ix.tasks.c.deal_id == key]
        if cursor is not None:
            conds.append(ix.tasks.c.idx > int(cursor))

        def run(conn: Any) -> TaskPage:
            query = select(ix.tasks).where(*conds).order_by(ix.tasks.c.idx)
            rows, more = _page(conn, query, limit)
            workers = _workers(conn, [r.task_id for r in rows])
            return TaskPage(
                tasks=[_task(r, workers[r.task_id]) for r in rows],
                next_cursor=str(rows[-1].idx) if more else None,
                index=head_of(conn),
            )

        page: TaskPage = await read(run)
        return page

    @app.get("/v1/tasks/{task_id}", response_model=TaskEntry, tags=["index"], responses=not_found)
    async def get_task(task_id: Annotated[str, Path(pattern=BYTES32)]) -> TaskEntry:
        """A task with final on-chain activity (contributions, consensus, settlement)."""
        key = task_id.lower()

        def run(conn: Any) -> TaskEntry | None:
            row = conn.execute(select(ix.tasks).where(ix.tasks.c.task_id == key)).first()
            return None if row is None else _task(row, _workers(conn, [key])[key])

        found: TaskEntry | None = await read(run)
        if found is None:
            raise IndexNotFound(
                f"Task {key} has no final on-chain activity in the index; ask its scheduler."
            )
        return found

    @app.get("/v1/assets", response_model=AssetPage, tags=["index"], responses=not_found)
    async def list_assets(
        kind: Literal["app", "dataset", "workerpool"] | None = None,
        owner: Annotated[str | None, Query(pattern=ADDRESS)] = None,
        name: Annotated[str | None, Query(min_length=1, max_length=MAX_NAME)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        cursor: Annotated[
            str | None, Query(pattern=SEQ_CURSOR, description="Asset id to start after.")
        ] = None,
    ) -> AssetPage:
        """Registered apps, datasets and workerpools, oldest first, with current owner."""
        conds: list[Any] = []
        if kind is not None:
            conds.append(ix.assets.c.kind == ASSET_KINDS[kind])
        if owner is not None:
            conds.append(ix.assets.c.owner == parse_address(owner))
        if name is not None:
            conds.append(ix.assets.c.name == name)
        if cursor is not None:
            conds.append(ix.assets.c.asset > pad(int(cursor)))

        def run(conn: Any) -> AssetPage:
            query = select(ix.assets).where(*conds).order_by(ix.assets.c.asset)
            rows, more = _page(conn, query, limit)
            return AssetPage(
                assets=[_asset(r) for r in rows],
                next_cursor=str(int(rows[-1].asset)) if more else None,
                index=head_of(conn),
            )

        page: AssetPage = await read(run)
        return page

    @app.get("/v1/assets/{asset}", response_model=AssetEntry, tags=["index"], responses=not_found)
    async def get_asset(asset: Annotated[int, Path(ge=0, le=MAX_ASSET)]) -> AssetEntry:
        def run(conn: Any) -> AssetEntry | None:
            row = conn.execute(select(ix.assets).where(ix.assets.c.asset == pad(asset))).first()
            return None if row is None else _asset(row)

        found: AssetEntry | None = await read(run)
        if found is None:
            raise IndexNotFound(f"No asset {asset} is registered in the index as final yet.")
        return found
