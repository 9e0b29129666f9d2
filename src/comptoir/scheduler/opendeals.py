"""The deals that take replicas, as one process last read them (shared by dispatch and by
the stake check of an empty ``work/next``), and the terms parsed from each deal once."""

from __future__ import annotations

import functools
import json
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from comptoir.scheduler.db import open_deals as dispatchable_deals

DEAL_SCAN = 64  # deals with open tasks looked at per dispatch
# the deals with open tasks, per engine, reused this long by every dispatch of the process:
# a deal matched meanwhile waits at most that long, a finished one is skipped at once
OPEN_DEALS_S = 1.0
_open_deals: weakref.WeakKeyDictionary[Any, tuple[float, list[Any]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class DealTerms:
    """What dispatch reads from a deal's JSON at every request, parsed once."""

    worker_stake: int
    deal: dict[str, Any]  # the deal as the payload carries it (shared: never mutated)


@functools.lru_cache(maxsize=1024)
def _terms(deal_json: str) -> DealTerms:
    deal = json.loads(deal_json)
    return DealTerms(int(deal["worker_stake"]), deal)


def terms(deal_row: Any) -> DealTerms:
    """The parsed terms of a scheduler_deals row (a deal's JSON never changes)."""
    return _terms(str(deal_row.deal_json))


def open_deals(conn: Connection, chain_now: int, now: float) -> list[Any]:
    """Active deals with an open task, still with time for one more run of their category,
    oldest first (at most DEAL_SCAN), as read at most OPEN_DEALS_S ago by this process."""
    hit = _open_deals.get(conn.engine)
    if hit is not None and 0 <= now - hit[0] < OPEN_DEALS_S:
        rows = hit[1]
    else:
        rows = list(conn.execute(dispatchable_deals(chain_now).limit(DEAL_SCAN)).all())
        _open_deals[conn.engine] = (now, rows)
    return [d for d in rows if int(d.final_deadline) > chain_now + int(d.time_ref)]


def forget(conn: Connection) -> None:
    """The next dispatch reads the open deals again (a deal was just recorded or reopened)."""
    _open_deals.pop(conn.engine, None)
