"""Tables of the network index the market keeps (deals, tasks, assets, order fills).

Every row is derived from `index_journal`, the raw logs the indexer accepted as final, in
chain order: a reorg below the cursor deletes the journal above the fork and rebuilds the
derived tables by replaying what remains (no RPC needed), so a rolled-back event never
survives in a derived row. uint256 values are zero-padded decimal strings, as in the
order book's tables, so string order is numeric order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from comptoir.chain import events as ev
from comptoir.market.store import WIDTH, pad

index_metadata = MetaData()

journal = Table(
    "index_journal",
    index_metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("block", BigInteger, nullable=False),
    Column("block_hash", String(66), nullable=False),
    Column("log_index", Integer, nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("address", String(42), nullable=False),
    Column("topics", Text, nullable=False),  # JSON list of 0x-hex
    Column("data", Text, nullable=False),  # 0x-hex
    Column("timestamp", Float),  # block time, read for DealCreated only
    Index("ix_index_journal_block", "block", "log_index", unique=True),
)

state = Table(
    "index_state",
    index_metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

deals = Table(
    "index_deals",
    index_metadata,
    Column("deal_id", String(66), primary_key=True),
    Column("seq", BigInteger, nullable=False),  # block << 20 | log index: chain order
    Column("block", BigInteger, nullable=False),
    Column("tx_hash", String(66), nullable=False),
    Column("timestamp", Float),
    Column("requester", String(42), nullable=False),
    Column("beneficiary", String(42), nullable=False),
    Column("scheduler", String(42), nullable=False),
    Column("app", String(WIDTH), nullable=False),
    Column("dataset", String(WIDTH), nullable=False),
    Column("workerpool", String(WIDTH), nullable=False),
    Column("category", String(WIDTH), nullable=False),
    Column("volume", String(WIDTH), nullable=False),
    Column("params", Text, nullable=False),
    Column("tag", String(66), nullable=False),
    Column("order_hashes", Text, nullable=False),  # JSON: app, dataset, workerpool order hashes
    Column("deal_json", Text, nullable=False),  # the full Deal struct
    Index("ix_index_deals_seq", "seq", unique=True),
    Index("ix_index_deals_requester", "requester", "seq"),
    Index("ix_index_deals_scheduler", "scheduler", "seq"),
    Index("ix_index_deals_workerpool", "workerpool", "seq"),
)

tasks = Table(
    "index_tasks",
    index_metadata,
    Column("task_id", String(66), primary_key=True),
    Column("deal_id", String(66)),  # known once settled (Contributed names the task only)
    Column("idx", BigInteger),
    Column("status", String(16), nullable=False),
    Column("digest", String(66)),
    Column("result_hash", String(66)),
    Column("contributions", Integer, nullable=False),
    Column("reveals", Integer, nullable=False),
    Column("block", BigInteger, nullable=False),  # of the last change
    Column("tx_hash", String(66)),  # of the settlement
    Index("ix_index_tasks_deal", "deal_id", "idx"),
)

task_workers = Table(
    "index_task_workers",
    index_metadata,
    Column("task_id", String(66), primary_key=True),
    Column("worker", String(42), primary_key=True),
    Column("outcome", String(16), primary_key=True),  # rewarded / penalized
    Column("amount", String(WIDTH), nullable=False),
    Index("ix_index_task_workers_worker", "worker"),
)

assets = Table(
    "index_assets",
    index_metadata,
    Column("asset", String(WIDTH), primary_key=True),
    Column("kind", Integer, nullable=False),
    Column("owner", String(42), nullable=False),
    Column("name", Text, nullable=False),
    Column("location", Text, nullable=False),
    Column("checksum", String(66), nullable=False),
    Column("block", BigInteger, nullable=False),
    Index("ix_index_assets_kind", "kind", "asset"),
    Index("ix_index_assets_owner", "owner", "kind"),
    Index("ix_index_assets_name", "name"),
)

order_fills = Table(
    "index_orders",
    index_metadata,
    Column("hash", String(66), primary_key=True),
    Column("consumed", String(WIDTH), nullable=False),
    Column("cancelled", Integer, nullable=False),
    Column("block", BigInteger, nullable=False),
)

DERIVED = (deals, tasks, task_workers, assets, order_fills)
SETTLED = ("finalized", "claimed")
MAX_NAME = 256  # longer names are kept cut: a hostile registrant cannot bloat the index


def hx(data: bytes) -> str:
    return "0x" + data.hex()


def deal_seq(block: int, log_index: int) -> int:
    return (block << 20) | (log_index & 0xFFFFF)


@dataclass
class Changes:
    """What one applied batch touched, for the order book's sync."""

    orders: set[str]
    assets: set[int]
    deals: list[tuple[ev.DealCreated, float | None]]

    @classmethod
    def empty(cls) -> Changes:
        return cls(set(), set(), [])


# ------------------------------------------------------------ state


def get_state(conn: Connection, key: str) -> str | None:
    return conn.execute(select(state.c.value).where(state.c.key == key)).scalar()


def set_state(conn: Connection, key: str, value: str) -> None:
    if conn.execute(update(state).where(state.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(state).values(key=key, value=value))


# ------------------------------------------------------------ applying events


def _task(conn: Connection, task_id: str, block: int) -> dict[str, Any]:
    row = conn.execute(select(tasks).where(tasks.c.task_id == task_id)).mappings().first()
    if row is not None:
        return dict(row)
    fresh = {
        "task_id": task_id,
        "deal_id": None,
        "idx": None,
        "status": "pending",
        "digest": None,
        "result_hash": None,
        "contributions": 0,
        "reveals": 0,
        "block": block,
        "tx_hash": None,
    }
    conn.execute(insert(tasks).values(**fresh))
    return fresh


def _save_task(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(update(tasks).where(tasks.c.task_id == row["task_id"]).values(**row))


def _fill(conn: Connection, order_hash: str, volume: int, block: int, cancel: bool) -> None:
    row = conn.execute(select(order_fills).where(order_fills.c.hash == order_hash)).first()
    if row is None:
        conn.execute(
            insert(order_fills).values(
                hash=order_hash, consumed=pad(volume), cancelled=int(cancel), block=block
            )
        )
        return
    conn.execute(
        update(order_fills)
        .where(order_fills.c.hash == order_hash)
        .values(
            consumed=pad(int(row.consumed) + volume),
            cancelled=int(cancel or bool(row.cancelled)),
            block=block,
        )
    )


def apply_event(conn: Connection, e: ev.ChainEvent, timestamp: float | None, out: Changes) -> None:
    """Folds one final event into the derived tables."""
    block = e.block_number
    if isinstance(e, ev.DealCreated):
        d = e.deal
        conn.execute(
            insert(deals).values(
                deal_id=hx(e.deal_id),
                seq=deal_seq(block, e.log_index),
                block=block,
                tx_hash=hx(e.tx_hash),
                timestamp=timestamp,
                requester=d.requester,
                beneficiary=e.beneficiary,
                scheduler=d.scheduler,
                app=pad(e.app),
                dataset=pad(e.dataset),
                workerpool=pad(e.workerpool),
                category=pad(e.category),
                volume=pad(d.volume),
                params=e.params,
                tag=hx(e.tag),
                order_hashes=json.dumps(
                    [hx(e.app_order_hash), hx(e.dataset_order_hash), hx(e.workerpool_order_hash)]
                ),
                deal_json=json.dumps(d.to_json()),
            )
        )
        hashes = [e.app_order_hash, e.workerpool_order_hash, d.request_hash]
        if e.dataset:
            hashes.append(e.dataset_order_hash)
        for h in hashes:
            _fill(conn, hx(h), d.volume, block, cancel=False)
            out.orders.add(hx(h))
        out.deals.append((e, timestamp))
    elif isinstance(e, ev.OrderCancelled):
        _fill(conn, hx(e.order_hash), 0, block, cancel=True)
        out.orders.add(hx(e.order_hash))
    elif isinstance(e, ev.TaskFinalized | ev.TaskClaimed):
        row = _task(conn, hx(e.task_id), block)
        row.update(
            deal_id=hx(e.deal_id),
            idx=e.index,
            status="finalized" if isinstance(e, ev.TaskFinalized) else "claimed",
            digest=hx(e.digest) if isinstance(e, ev.TaskFinalized) else None,
            block=block,
            tx_hash=hx(e.tx_hash),
        )
        _save_task(conn, row)
    elif isinstance(e, ev.Contributed | ev.ConsensusReached | ev.Revealed | ev.Reopened):
        row = _task(conn, hx(e.task_id), block)
        if row["status"] not in SETTLED:
            if isinstance(e, ev.Contributed):
                row.update(status="contributed", contributions=row["contributions"] + 1)
            elif isinstance(e, ev.ConsensusReached):
                row.update(status="revealing", result_hash=hx(e.result_hash))
            elif isinstance(e, ev.Revealed):
                row.update(reveals=row["reveals"] + 1)
            else:
                row.update(status="contributed", result_hash=None)
            row["block"] = block
            _save_task(conn, row)
    elif isinstance(e, ev.WorkerRewarded | ev.WorkerPenalized):
        rewarded = isinstance(e, ev.WorkerRewarded)
        amount = e.amount if isinstance(e, ev.WorkerRewarded) else e.seized
        key = {"task_id": hx(e.task_id), "worker": e.worker}
        outcome = "rewarded" if rewarded else "penalized"
        if (
            conn.execute(
                select(task_workers.c.task_id).where(
                    task_workers.c.task_id == key["task_id"],
                    task_workers.c.worker == e.worker,
                    task_workers.c.outcome == outcome,
                )
            ).first()
            is None
        ):
            conn.execute(insert(task_workers).values(**key, outcome=outcome, amount=pad(amount)))
    elif isinstance(e, ev.AssetRegistered):
        conn.execute(
            insert(assets).values(
                asset=pad(e.asset),
                kind=e.kind,
                owner=e.owner,
                name=e.name[:MAX_NAME],
                location=e.location,
                checksum=hx(e.checksum),
                block=block,
            )
        )
        out.assets.add(e.asset)
    elif isinstance(e, ev.AssetTransferred):
        conn.execute(update(assets).where(assets.c.asset == pad(e.asset)).values(owner=e.new_owner))
        out.assets.add(e.asset)
    elif isinstance(e, ev.GenericEvent) and e.event == "AssetLocationUpdated":
        conn.execute(
            update(assets)
            .where(assets.c.asset == pad(int(e.args["asset"])))
            .values(location=str(e.args["location"]))
        )


def journal_row(log: dict[str, Any], timestamp: float | None) -> dict[str, Any]:
    return {
        "block": int(log["blockNumber"]),
        "block_hash": hx(bytes(log["blockHash"])),
        "log_index": int(log["logIndex"]),
        "tx_hash": hx(bytes(log["transactionHash"])),
        "address": str(log["address"]),
        "topics": json.dumps([hx(bytes(t)) for t in log["topics"]]),
        "data": hx(bytes(log["data"])),
        "timestamp": timestamp,
    }


def log_of(row: Any) -> dict[str, Any]:
    """A journal row back as the log dict `events.decode_log` reads."""
    return {
        "address": row.address,
        "topics": [bytes.fromhex(t[2:]) for t in json.loads(row.topics)],
        "data": bytes.fromhex(row.data[2:]),
        "blockNumber": row.block,
        "transactionHash": bytes.fromhex(row.tx_hash[2:]),
        "logIndex": row.log_index,
    }


def replay(conn: Connection) -> Changes:
    """Rebuilds every derived table from the journal (after a rollback)."""
    for table in DERIVED:
        conn.execute(delete(table))
    out = Changes.empty()
    last = 0
    while True:
        rows = conn.execute(
            select(journal).where(journal.c.id > last).order_by(journal.c.id).limit(2000)
        ).all()
        if not rows:
            return out
        for row in rows:
            event = ev.decode_log(log_of(row))
            if event is not None:
                apply_event(conn, event, row.timestamp, out)
        last = rows[-1].id


# ------------------------------------------------------------ reading


def fills(conn: Connection, hashes: Sequence[str]) -> dict[str, tuple[int, bool]]:
    """(consumed, cancelled) of the given order hashes that have on-chain activity."""
    out: dict[str, tuple[int, bool]] = {}
    for start in range(0, len(hashes), 500):
        chunk = list(hashes[start : start + 500])
        for row in conn.execute(select(order_fills).where(order_fills.c.hash.in_(chunk))):
            out[row.hash] = (int(row.consumed), bool(row.cancelled))
    return out


def owners(conn: Connection, asset_ids: Iterable[int]) -> dict[int, str]:
    ids = [pad(a) for a in asset_ids]
    out: dict[int, str] = {}
    for start in range(0, len(ids), 500):
        query = select(assets.c.asset, assets.c.owner).where(
            assets.c.asset.in_(ids[start : start + 500])
        )
        for row in conn.execute(query):
            out[int(row.asset)] = row.owner
    return out


def fork_point(conn: Connection, below: int, limit: int) -> list[tuple[int, str]]:
    """Up to `limit` (block, hash) pairs the journal holds below `below`, newest first:
    the candidates for the last block the index shares with the chain."""
    query = (
        select(journal.c.block, journal.c.block_hash)
        .where(journal.c.block < below)
        .group_by(journal.c.block, journal.c.block_hash)
        .order_by(journal.c.block.desc())
        .limit(limit)
    )
    return [(int(r.block), str(r.block_hash)) for r in conn.execute(query)]
