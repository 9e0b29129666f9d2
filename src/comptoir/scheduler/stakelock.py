"""Stakes that back a replica: a worker gets a replica of a deal only while its free escrow
balance covers the deal's worker stake and is locked (``escrow.lock``) until the deal's
final deadline.

Why: the fast path holds no stake between a commitment and its settlement, so a liar that
could withdraw before the batch settles would keep its stake. The hub refuses a withdrawal
before ``locked_until`` and settles a deal only before its final deadline: a lock reaching
that deadline keeps the stake seizable for as long as the commitment can be settled. The
hub also refuses a winner whose lock ends sooner (``poco: winner stake not locked``), so a
replica given to such a worker could never be paid: this check is what keeps it from
being handed out.
A lock is never shortened, so a cached ``locked_until`` can only understate it; the
balance is re-read at least every ``standing_ttl_s`` before a dispatch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Connection

from comptoir.chain.client import WorkerStanding
from comptoir.scheduler import consensus, opendeals
from comptoir.scheduler.db import workers
from comptoir.scheduler.prepared import Prepared

WORKER_BY_ADDRESS = Prepared(select(workers).where(workers.c.address == bindparam("address")))
STORE_CHUNK = 500  # workers read and stamped per statement when standings are stored
_STORE_STANDING = Prepared(
    update(workers)
    .where(workers.c.address == bindparam("a"))
    .values(
        score=bindparam("score"),
        weight=bindparam("weight"),
        balance=bindparam("balance"),
        locked_until=bindparam("locked"),
        standing_at=bindparam("now"),
    )
)
_STANDING_AT = Prepared(select(workers.c.standing_at).where(workers.c.address == bindparam("a")))
# headers of a 204 from /v1/work/next when the worker's stake keeps it from open deals
LOCK_HEADER = "Comptoir-Lock-Until"  # the lock it needs (unix time; 0: its lock is enough)
STAKE_HEADER = "Comptoir-Stake-Needed"  # the free balance it needs (0: enough)
WAIT_HEADER = "Comptoir-Wait-Reason"  # one sentence for its logs


@dataclass(frozen=True)
class Shortfall:
    """What a worker lacks for the open deals it could otherwise work on."""

    lock_until: int  # the lock it needs (0: its lock is enough)
    stake: int  # the free balance it needs (0: its balance is enough)

    @property
    def reason(self) -> str:
        if self.stake:
            return (
                f"Your free balance on the hub does not cover the worker stake of the open "
                f"deals; deposit at least {self.stake} token units to get work."
            )
        return (
            f"Your free balance is not locked long enough to back the open deals; lock it "
            f"until at least {self.lock_until} (unix time) with the hub's escrow to get work."
        )


def refusal(
    worker_stake: int,
    final_deadline: int,
    balance: int | None,
    locked_until: int,
) -> str | None:
    """Why a worker may not take a replica of a deal ("stake", "lock"), or None when it may.
    A deal without worker stake has nothing to seize; an unknown balance (the chain was
    unreachable when the worker registered) is not held against it, an unknown lock is."""
    if worker_stake == 0:
        return None
    if balance is not None and balance < worker_stake:
        return "stake"
    if locked_until < final_deadline:
        return "lock"
    return None


def may_dispatch(deal_row: Any, worker_row: Any) -> bool:
    """Whether `worker_row` (scheduler_workers) may take a replica of `deal_row`."""
    balance = None if worker_row.balance is None else int(worker_row.balance)
    stake = opendeals.terms(deal_row).worker_stake
    deadline, locked_until = int(deal_row.final_deadline), int(worker_row.locked_until)
    return refusal(stake, deadline, balance, locked_until) is None


def shortfall(
    conn: Connection, address: str, chain_now: int, now: float | None = None
) -> Shortfall | None:
    """What `address` lacks for the open deals its stake or lock keeps it from, or None.
    The open deals are dispatch's own (read at most once a second per process), so an
    empty poll costs no query unless one of them asks for a stake."""
    open_deals = opendeals.open_deals(conn, chain_now, time.time() if now is None else now)
    staked = [(d, opendeals.terms(d).worker_stake) for d in open_deals]
    staked = [(d, stake) for d, stake in staked if stake > 0]
    if not staked:
        return None
    me = WORKER_BY_ADDRESS.first(conn, {"address": address})
    if me is None:
        return None
    balance = None if me.balance is None else int(me.balance)
    lock_until = stake = 0
    for d, worker_stake in staked:
        why = refusal(worker_stake, int(d.final_deadline), balance, int(me.locked_until))
        if why == "stake":
            stake = max(stake, worker_stake)
        elif why == "lock":
            lock_until = max(lock_until, int(d.final_deadline))
    if not lock_until and not stake:
        return None
    return Shortfall(lock_until, stake)


def standing_age(conn: Connection, address: str, now: float) -> float | None:
    """Seconds since the worker's balance and lock were read from the chain (None: unknown
    worker)."""
    at = _STANDING_AT.scalar(conn, {"a": address})
    return None if at is None else now - float(at)


def store_standings(conn: Connection, standings: dict[str, WorkerStanding], now: float) -> None:
    """Record scores (hence weights), balances and locks read from the chain. A pass over
    thousands of online workers mostly finds them unchanged: only the rows that changed
    are rewritten, the read time of the others is set in bulk."""
    addresses = list(standings)
    for start in range(0, len(addresses), STORE_CHUNK):
        chunk = addresses[start : start + STORE_CHUNK]
        known = {
            str(a): (int(score), balance, int(locked))
            for a, score, balance, locked in conn.execute(
                select(
                    workers.c.address, workers.c.score, workers.c.balance, workers.c.locked_until
                ).where(workers.c.address.in_(chunk))
            )
        }
        for address in chunk:
            s = standings[address]
            if known.get(address) == (s.score, str(s.balance), s.locked_until):
                continue
            _STORE_STANDING.rowcount(
                conn,
                {
                    "a": address,
                    "score": s.score,
                    "weight": consensus.weight(s.score),
                    "balance": str(s.balance),
                    "locked": s.locked_until,
                    "now": now,
                },
            )
        conn.execute(update(workers).where(workers.c.address.in_(chunk)).values(standing_at=now))


def mark_read(conn: Connection, address: str, now: float) -> None:
    """A read of the worker's standing was tried at `now` (even if it failed)."""
    conn.execute(update(workers).where(workers.c.address == address).values(standing_at=now))
