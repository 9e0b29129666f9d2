"""The network's index: the market follows the protocol's events incrementally.

One pass: check the cursor (last indexed block and its hash) against the chain, roll back
to the fork when the chain changed under it, then read the logs of the Hub, Registry and
Contributions from the cursor to the block final at the network's confirmation depth, in
`logscan` chunks (at most `max_range` blocks, halved when a provider refuses), each chunk
written with the new cursor in one transaction: a restart resumes after the last chunk
written, and nothing above the final block is ever stored. Logs from any other address
are ignored even when a provider returns them.

Reading (RPC) and writing (SQL) are separate steps so the market can run the first in a
worker thread and the second on its database thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Engine
from web3 import Web3

from comptoir.chain import events as ev
from comptoir.chain import logscan
from comptoir.market import indexstore as ix

log = structlog.get_logger("comptoir.market.indexer")

CURSOR_BLOCK, CURSOR_HASH = "cursor_block", "cursor_hash"
FORK_CANDIDATES = 256  # journal blocks probed for the fork before re-reading everything
# which contract may emit which event: a log of the right shape from elsewhere is forged
HUB_EVENTS = {
    "DealCreated",
    "OrderCancelled",
    "TaskFinalized",
    "TaskClaimed",
    "WorkerRewarded",
    "WorkerPenalized",
}
REGISTRY_EVENTS = {"AssetRegistered", "AssetTransferred", "AssetLocationUpdated"}
CONTRIBUTION_EVENTS = {"Contributed", "ConsensusReached", "Revealed", "Reopened"}

_ONCHAIN_PATH_ABI = [
    {
        "type": "function",
        "name": "onchain_path",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "address"}],
    }
]


def contributions_of(w3: Web3, hub: str) -> str:
    """The Contributions contract the hub settles through (Hub.onchain_path)."""
    hub_contract = w3.eth.contract(address=to_checksum_address(hub), abi=_ONCHAIN_PATH_ABI)
    return str(hub_contract.functions.onchain_path().call())


@dataclass(frozen=True)
class Cursor:
    block: int  # last block indexed (start block - 1 before the first chunk)
    block_hash: str | None


@dataclass(frozen=True)
class Chunk:
    """Logs read for blocks (cursor, to_block], with to_block's hash."""

    to_block: int
    block_hash: str
    logs: list[dict[str, Any]]
    timestamps: dict[int, float]


@dataclass
class PassReport:
    head: int = 0
    final: int = 0
    cursor: int = 0
    events: int = 0
    blocks: int = 0
    rolled_back_to: int | None = None
    changes: ix.Changes = field(default_factory=ix.Changes.empty)


class ChainIndexer:
    """Indexes final protocol events into the market's database."""

    def __init__(
        self,
        engine: Engine,
        w3: Web3,
        hub: str,
        registry: str,
        contributions: str,
        start_block: int = 0,
        confirmations: int = 0,
        max_range: int = 2000,
    ) -> None:
        self.engine, self.w3 = engine, w3
        self.hub = str(to_checksum_address(hub))
        self.registry = str(to_checksum_address(registry))
        self.contributions = str(to_checksum_address(contributions))
        self.allowed = {
            self.hub: HUB_EVENTS,
            self.registry: REGISTRY_EVENTS,
            self.contributions: CONTRIBUTION_EVENTS,
        }
        self.start_block = start_block
        self.confirmations = confirmations
        self.max_range = max(1, max_range)
        self.head = 0

    def create_tables(self) -> None:
        ix.index_metadata.create_all(self.engine)

    # ------------------------------------------------------------ cursor (SQL)

    def cursor(self) -> Cursor:
        with self.engine.connect() as conn:
            block = ix.get_state(conn, CURSOR_BLOCK)
            block_hash = ix.get_state(conn, CURSOR_HASH)
        if block is None:
            return Cursor(self.start_block - 1, None)
        return Cursor(int(block), block_hash or None)

    # ------------------------------------------------------------ reading (RPC)

    def final_block(self) -> int:
        self.head = int(self.w3.eth.block_number)
        return self.head - self.confirmations

    def block_hash(self, number: int) -> str | None:
        if number < 0:
            return None
        block = self.w3.eth.get_block(number)
        return None if block is None else "0x" + bytes(HexBytes(block["hash"])).hex()

    def still_on_chain(self, cursor: Cursor) -> bool:
        if cursor.block_hash is None:
            return True
        try:
            return self.block_hash(cursor.block) == cursor.block_hash
        except Exception:  # a block the node no longer has (a rollback below it)
            return False

    def read_chunk(self, after: int, final: int) -> Chunk | None:
        """The logs of the next chunk after `after`, up to `final`; None when caught up."""
        first = after + 1
        if first > final:
            return None
        last = min(first + self.max_range - 1, final)
        addresses = {"address": [self.hub, self.registry, self.contributions]}
        # `last`'s hash before and after the logs: a reorg between the reads would store
        # the old fork's events under the new fork's hash, never to be rolled back
        before = self.block_hash(last)
        raw = logscan.get_logs(self.w3, addresses, first, last, self.max_range)
        deal_topic = ev.event_topic("DealCreated")
        times: dict[int, float] = {}
        for entry in raw:
            number = int(entry["blockNumber"])
            topics = entry["topics"]
            if topics and bytes(topics[0]) == deal_topic and number not in times:
                times[number] = float(self.w3.eth.get_block(number)["timestamp"])
        block_hash = self.block_hash(last)
        assert block_hash is not None  # final <= head: the node has it
        if block_hash != before:
            raise RuntimeError(
                f"block {last} changed while its logs were read (a reorg); the next pass "
                "reads them again"
            )
        return Chunk(last, block_hash, [dict(e) for e in raw], times)

    def _accepted(self, entry: dict[str, Any]) -> ev.ChainEvent | None:
        event = ev.decode_log(entry)
        if event is None:
            return None
        allowed = self.allowed.get(str(to_checksum_address(entry["address"])), set())
        return event if event.event_name in allowed else None

    # ------------------------------------------------------------ writing (SQL)

    def apply_chunk(self, expected: Cursor, chunk: Chunk) -> ix.Changes | None:
        """Writes the chunk and moves the cursor, in one transaction; refuses when the cursor
        moved meanwhile (another pass wrote first)."""
        out = ix.Changes.empty()
        with self.engine.begin() as conn:
            now = ix.get_state(conn, CURSOR_BLOCK)
            current = self.start_block - 1 if now is None else int(now)
            if current != expected.block:
                return None
            for entry in chunk.logs:
                event = self._accepted(entry)
                if event is None:
                    continue
                stamp = chunk.timestamps.get(event.block_number)
                conn.execute(insert(ix.journal).values(**ix.journal_row(entry, stamp)))
                ix.apply_event(conn, event, stamp, out)
            ix.set_state(conn, CURSOR_BLOCK, str(chunk.to_block))
            ix.set_state(conn, CURSOR_HASH, chunk.block_hash)
        return out

    def fork_candidates(self, cursor: Cursor) -> list[tuple[int, str]]:
        with self.engine.connect() as conn:
            return ix.fork_point(conn, cursor.block + 1, FORK_CANDIDATES)

    def roll_back(self, to_block: int, block_hash: str | None) -> ix.Changes:
        """Deletes the journal above `to_block`, rebuilds the derived tables from the rest,
        and puts the cursor there."""
        with self.engine.begin() as conn:
            conn.execute(delete(ix.journal).where(ix.journal.c.block > to_block))
            changes = ix.replay(conn)
            if block_hash is None:
                conn.execute(delete(ix.state).where(ix.state.c.key.in_([CURSOR_HASH])))
            else:
                ix.set_state(conn, CURSOR_HASH, block_hash)
            ix.set_state(conn, CURSOR_BLOCK, str(to_block))
        log.warning("index.rolled_back", to_block=to_block)
        return changes

    def find_fork(self, cursor: Cursor) -> tuple[int, str | None]:
        """The newest indexed block the chain still holds (hash equal), else before start."""
        for number, block_hash in self.fork_candidates(cursor):
            if self.still_on_chain(Cursor(number, block_hash)):
                return number, block_hash
        return self.start_block - 1, None

    # ------------------------------------------------------------ one pass

    async def run(self, read: Step | None = None, write: Step | None = None) -> PassReport:
        """One pass; `read(fn, *args)` runs the RPC steps and `write(fn, *args)` the SQL steps
        (the market puts them on a worker thread and on its database thread; by default
        they run inline)."""
        return await run_pass(self, read or _inline, write or _inline)

    def run_once(self) -> PassReport:
        """One blocking pass, outside any event loop (scripts, benchmarks)."""
        return asyncio.run(self.run())


Step = Callable[..., Awaitable[Any]]


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


async def run_pass(indexer: ChainIndexer, read: Step, write: Step) -> PassReport:
    report = PassReport()
    cursor: Cursor = await write(indexer.cursor)
    if not await read(indexer.still_on_chain, cursor):
        fork, fork_hash = await read(indexer.find_fork, cursor)
        report.changes = await write(indexer.roll_back, fork, fork_hash)
        report.rolled_back_to = fork
        cursor = Cursor(fork, fork_hash)
    final = await read(indexer.final_block)
    report.head, report.final = indexer.head, final
    while (chunk := await read(indexer.read_chunk, cursor.block, final)) is not None:
        got: ix.Changes | None = await write(indexer.apply_chunk, cursor, chunk)
        if got is None:  # another pass moved the cursor: the next pass resumes from it
            break
        report.changes.orders |= got.orders
        report.changes.assets |= got.assets
        report.changes.deals += got.deals
        report.events += len(chunk.logs)
        report.blocks += chunk.to_block - cursor.block
        cursor = Cursor(chunk.to_block, chunk.block_hash)
    report.cursor = cursor.block
    return report


def caught_up(report: PassReport) -> bool:
    return report.cursor >= report.final


def select_cursor(engine: Engine) -> tuple[int | None, str | None]:
    """The stored cursor, for the API (None before the first chunk)."""
    with engine.connect() as conn:
        rows = dict(conn.execute(select(ix.state.c.key, ix.state.c.value)).all())
    block = rows.get(CURSOR_BLOCK)
    return (int(block) if block is not None else None), rows.get(CURSOR_HASH)
