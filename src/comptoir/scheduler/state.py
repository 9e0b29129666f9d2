"""State transitions of the scheduler: each function is one database transaction.

They run on the database thread (:meth:`Database.run`) and never touch the network, so a
transition is atomic and a restarted scheduler finds every deal, task and replica where
it was left. Chain reads and transactions happen in :mod:`comptoir.scheduler.service`,
around these functions.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils import keccak
from sqlalchemy import bindparam, func, insert, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from comptoir.chain.client import AssetInfo, SignedContribution, TaskOutcome
from comptoir.chain.events import DealCreated
from comptoir.chain.types import TAG_GPU, TAG_TEE, Deal, result_hash, result_seal
from comptoir.exceptions import SchedulerError
from comptoir.scheduler import consensus, opendeals, stakelock, trustpolicy
from comptoir.scheduler.db import (
    ABANDONED,
    ACTIVE,
    CANCELLED,
    CLAIMED,
    COMMITTED,
    FAILED,
    FINALIZED,
    INVALID,
    LOST,
    ONCHAIN,
    OPEN,
    READY,
    RELEASED,
    REVEALED,
    REVEALING,
    RUNNING,
    SETTLED,
    UNREVEALED,
    UNSETTLED,
    assignments,
    challenges,
    cursor,
    deals,
    recount_replicas,
    recount_running,
    tasks,
    workers,
)
from comptoir.scheduler.prepared import Prepared, insert_row, update_row
from comptoir.scheduler.settings import SchedulerSettings

MAX_BATCH = 32  # hub: tasks per finalize
MAX_WINNER_SIGS = 128
MAX_LOSER_SIGS = 32
STARTED_SCAN = 512  # tasks with replicas in flight looked at per deal and dispatch
FRESH_TRIES = 8  # untouched tasks tried per deal when concurrent dispatchers race
# failures a worker reports that say nothing about the task (an outage it waited out):
# the replica is released, not counted against the task, and may go back to that worker
TRANSIENT_FAILURES = frozenset({"ChainUnreachable", "StorageUnavailable"})
# why an assignment became unrevealed: its worker was offline (it may come back and
# reveal while the task is still open), or it stayed silent past the deadline margin
UNREVEALED_OFFLINE = "offline when asked to reveal"
UNREVEALED_LATE = "did not reveal before the deadline margin"
REDISPATCHABLE = (RELEASED,)  # never committed: the same worker may take the task again


# Statements of the per-request path: compiled once per dialect and run on the DBAPI
# cursor (prepared.py), since SQLAlchemy's own execution was most of a request's CPU
_ASSIGNMENT_BY_ID = Prepared(select(assignments).where(assignments.c.id == bindparam("aid")))
_TASK_BY_ID = Prepared(select(tasks).where(tasks.c.task_id == bindparam("task_id")))
_WORKER_BY_ADDRESS = stakelock.WORKER_BY_ADDRESS
_WORKER_BY_TOKEN = Prepared(
    select(workers.c.address).where(workers.c.token_hash == bindparam("token_hash"))
)
_WEIGHT = Prepared(select(workers.c.weight).where(workers.c.address == bindparam("a")))
_DEAL_TRUST = Prepared(select(deals.c.trust).where(deals.c.deal_id == bindparam("d")))
_CLAIM = Prepared(
    update(tasks)
    .where(tasks.c.task_id == bindparam("tid"), tasks.c.version == bindparam("seen"))
    .values(version=tasks.c.version + 1)
)
_live = (assignments.c.task_id == tasks.c.task_id, assignments.c.status.in_(ACTIVE))
_RECOUNT_ONE = Prepared(
    update(tasks)
    .where(tasks.c.task_id == bindparam("tid"))
    .values(
        active=select(func.count()).where(*_live).scalar_subquery(),
        hashes=select(func.count(func.distinct(assignments.c.result_hash)))
        .where(*_live)
        .scalar_subquery(),
    )
)
# a worker's running counter (see _recount_running)
_LOCK_WORKER = Prepared(
    select(workers.c.address).where(workers.c.address == bindparam("a")).with_for_update()
)
_RECOUNT_RUNNING = Prepared(
    update(workers)
    .where(workers.c.address == bindparam("a"))
    .values(
        running=select(func.count())
        .where(assignments.c.worker == workers.c.address, assignments.c.status == RUNNING)
        .scalar_subquery()
    )
)
# a slot taken atomically: concurrent pulls of one worker queue on its row, and the one
# that finds no slot left gets nothing
_TAKE_SLOT = Prepared(
    update(workers)
    .where(
        workers.c.address == bindparam("a"),
        or_(workers.c.slots.is_(None), workers.c.running < workers.c.slots),
    )
    .values(running=workers.c.running + 1)
)
_GIVE_SLOT = Prepared(
    update(workers)
    .where(workers.c.address == bindparam("a"), workers.c.running > 0)
    .values(running=workers.c.running - 1)
)
_HEAVIEST_ONLINE = Prepared(
    select(workers.c.address, workers.c.weight)
    .where(workers.c.online.is_(True))
    .order_by(workers.c.weight.desc())
    .limit(bindparam("n"))
)
# never twice the same worker on a task: one probe of the (task, worker) unique index per
# candidate row, whatever the worker's history
_not_mine = ~(
    select(assignments.c.id)
    .where(
        assignments.c.task_id == tasks.c.task_id,
        assignments.c.worker == bindparam("me"),
        assignments.c.status.not_in(REDISPATCHABLE),
    )
    .exists()
)
_open_of_deal = (tasks.c.deal_id == bindparam("deal"), tasks.c.status == OPEN, _not_mine)
_UNDER_REPLICATED = Prepared(
    select(tasks)
    .where(*_open_of_deal, tasks.c.active >= 1, tasks.c.active < bindparam("quorum"))
    .order_by(tasks.c.active, tasks.c.idx)
    .limit(STARTED_SCAN)
)
_SPLIT = Prepared(
    select(tasks)
    .where(*_open_of_deal, tasks.c.hashes > 1)
    .order_by(tasks.c.idx)
    .limit(STARTED_SCAN)
)
_fresh = select(tasks).where(*_open_of_deal, tasks.c.active == 0).order_by(tasks.c.idx)
_FRESH = Prepared(_fresh.limit(FRESH_TRIES))
# on PostgreSQL concurrent API processes skip the fresh rows another one is taking instead
# of racing for them (the version compare-and-set still decides)
_FRESH_SHARED = Prepared(_fresh.limit(1).with_for_update(skip_locked=True))
_RELEASED_BEFORE = Prepared(
    select(assignments.c.id).where(
        assignments.c.task_id == bindparam("tid"),
        assignments.c.worker == bindparam("w"),
        assignments.c.status.in_(REDISPATCHABLE),
    )
)
_RUN_AGAIN = Prepared(
    update(assignments)
    .where(assignments.c.id == bindparam("aid"))
    .values(
        status=RUNNING,
        authorization=bindparam("auth"),
        assigned_at=bindparam("now"),
        updated_at=bindparam("now"),
        error=None,
    )
)
_NEW_ASSIGNMENT = Prepared(
    insert(assignments)
    .values(
        task_id=bindparam("tid"),
        deal_id=bindparam("deal"),
        worker=bindparam("w"),
        status=RUNNING,
        authorization=bindparam("auth"),
        assigned_at=bindparam("now"),
        updated_at=bindparam("now"),
    )
    .returning(assignments.c.id)
)
_COMMIT = Prepared(
    update(assignments)
    .where(assignments.c.id == bindparam("aid"))
    .values(
        status=COMMITTED,
        result_hash=bindparam("rh"),
        result_seal=bindparam("rs"),
        r=bindparam("sig_r"),
        vs=bindparam("sig_vs"),
        updated_at=bindparam("now"),
    )
)
_COMMITTED_ON_TASK = Prepared(
    select(assignments).where(
        assignments.c.task_id == bindparam("tid"),
        assignments.c.status.in_((COMMITTED, REVEALED)),
    )
)
_START_REVEAL = Prepared(  # only an open task: with its row read before another
    # process's commitment to it took the lock, the status seen may be stale
    update(tasks)
    .where(tasks.c.task_id == bindparam("tid"), tasks.c.status == OPEN)
    .values(
        status=REVEALING,
        consensus_hash=bindparam("win"),
        digest=bindparam("dg"),
        result_blob=bindparam("blob"),
        reveal_started=bindparam("now"),
        updated_at=bindparam("now"),
    )
)
_CANCEL_RUNNING = Prepared(
    update(assignments)
    .where(assignments.c.task_id == bindparam("tid"), assignments.c.status == RUNNING)
    .values(status=CANCELLED, updated_at=bindparam("now"))
    .returning(assignments.c.worker)
)
_REVEAL = Prepared(
    update(assignments)
    .where(assignments.c.id == bindparam("aid"))
    .values(
        status=REVEALED,
        digest=bindparam("dg"),
        result_blob=bindparam("blob"),
        updated_at=bindparam("now"),
    )
)
_GROUP_COMMITTED = Prepared(
    select(assignments).where(
        assignments.c.task_id == bindparam("tid"),
        assignments.c.status == COMMITTED,
        assignments.c.result_hash == bindparam("rh"),
    )
)
_STILL_TO_REVEAL = Prepared(
    select(func.count())
    .select_from(assignments)
    .where(
        assignments.c.task_id == bindparam("tid"),
        assignments.c.status == COMMITTED,
        assignments.c.result_hash == bindparam("rh"),
        assignments.c.id != bindparam("aid"),
    )
)
_HEARTBEAT = Prepared(
    update(workers)
    .where(workers.c.address == bindparam("a"))
    .values(last_heartbeat=bindparam("now"), online=True, cached=bindparam("cached"))
)
_RUNNING_OF_WORKER = Prepared(
    select(assignments.c.id, assignments.c.task_id, assignments.c.assigned_at).where(
        assignments.c.worker == bindparam("w"), assignments.c.status == RUNNING
    )
)
_RELEASE = Prepared(  # a running replica given back, by its worker or for it
    update(assignments)
    .where(assignments.c.id == bindparam("aid"), assignments.c.status == RUNNING)
    .values(status=RELEASED, updated_at=bindparam("now"), error=bindparam("why"))
)


_EXPIRED_CHALLENGES = Prepared(challenges.delete().where(challenges.c.expires < bindparam("now")))
_NEW_CHALLENGE = Prepared(
    insert(challenges).values(
        nonce=bindparam("nonce"), address=bindparam("a"), expires=bindparam("until")
    )
)


class NotFound(SchedulerError):
    """No such assignment, task or deal (HTTP 404)."""


class Conflict(SchedulerError):
    """The request does not fit the current state (HTTP 409)."""


class Invalid(SchedulerError):
    """A malformed or unverifiable request (HTTP 400)."""


def hx(value: bytes) -> str:
    return "0x" + value.hex()


def unhx(value: str) -> bytes:
    return bytes.fromhex(value.removeprefix("0x"))


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def registration_message(workerpool: int, address: str, nonce: str) -> str:
    """What a worker signs (EIP-191) to prove it holds its key; bound to this pool."""
    return (
        "Comptoir: register worker\n"
        f"workerpool: {workerpool}\n"
        f"worker: {address.lower()}\n"
        f"nonce: {nonce}"
    )


DATABASE_DOWN = (
    "The scheduler cannot write its database (disk full, read-only or database server "
    "down); free space or restore the database, then retry."
)


# ---------------------------------------------------------------- cursor


def get_cursor(conn: Connection, name: str = "block") -> int | None:
    value = conn.execute(select(cursor.c.value).where(cursor.c.name == name)).scalar()
    return None if value is None else int(value)


def set_cursor(conn: Connection, value: int, name: str = "block") -> None:
    if conn.execute(update(cursor).where(cursor.c.name == name).values(value=value)).rowcount:
        return
    conn.execute(insert(cursor).values(name=name, value=value))


def health_probe(conn: Connection) -> None:
    """One small write: what fails first when the disk is full or the database is gone."""
    set_cursor(conn, int(time.time()), name="health")


# ---------------------------------------------------------------- deals


@dataclass(frozen=True)
class DealInfo:
    """A DealCreated event and what the registry says about its assets."""

    event: DealCreated
    time_ref: int
    app: AssetInfo
    dataset: AssetInfo | None


def add_deal(conn: Connection, info: DealInfo, now: float) -> bool:
    """Record a deal and its tasks once; False when it was already known."""
    ev = info.event
    deal_id = hx(ev.deal_id)
    if conn.execute(select(deals.c.deal_id).where(deals.c.deal_id == deal_id)).first():
        return False
    deal = ev.deal
    conn.execute(
        insert(deals).values(
            deal_id=deal_id,
            deal_json=json.dumps(deal.to_json()),
            app=str(ev.app),
            dataset=str(ev.dataset),
            category=ev.category,
            time_ref=info.time_ref,
            tag=hx(ev.tag),
            params=ev.params,
            beneficiary=ev.beneficiary,
            block=ev.block_number,
            app_location=info.app.location,
            app_checksum=info.app.checksum.hex(),
            app_type=info.app.app_type,
            dataset_location=info.dataset.location if info.dataset else "",
            dataset_checksum=info.dataset.checksum.hex() if info.dataset else "",
            trust=deal.trust,
            volume=deal.volume,
            contribution_deadline=deal.contribution_deadline,
            final_deadline=deal.final_deadline,
            callback=int(deal.callback, 16) != 0,
            status="active",
            created_at=now,
        )
    )
    rows = [
        {
            "task_id": hx(deal.task_id(i)),
            "deal_id": deal_id,
            "idx": i,
            "status": OPEN,
            "failures": 0,
            "updated_at": now,
        }
        for i in range(deal.volume)
    ]
    for start in range(0, len(rows), 1000):
        conn.execute(insert(tasks), rows[start : start + 1000])
    if conn.dialect.name == "postgresql" and deal.volume >= ANALYZE_VOLUME:
        # the planner's statistics are refreshed now, not at autovacuum's next pass: with
        # a bag this size they predate it, and each pull scanned the bag (2.7 -> 34 ms at
        # 100 000 tasks, bench/scale.py's probe)
        conn.exec_driver_sql("ANALYZE scheduler_tasks")
    opendeals.forget(conn)
    return True


ANALYZE_VOLUME = 1000  # tasks in a deal past which PostgreSQL's statistics are refreshed


def deal_known(conn: Connection, deal_id: str) -> bool:
    return (
        conn.execute(select(deals.c.deal_id).where(deals.c.deal_id == deal_id)).first() is not None
    )


def load_deal(row: Row[Any] | Any) -> Deal:
    return Deal.from_json(json.loads(row.deal_json))


# ---------------------------------------------------------------- workers


def _challenge_mac(conn: Connection, address: str, issued: str, salt: str) -> str:
    # keyed by the pool's recorded secret (shared by every process on this database),
    # domain-separated from its audit draws
    key = hmac.new(trustpolicy.load(conn).secret, b"registration challenge", hashlib.sha256)
    message = f"{address.lower()}|{issued}|{salt}".encode()
    return hmac.new(key.digest(), message, hashlib.sha256).hexdigest()[:32]


def issue_challenge(conn: Connection, address: str, now: float) -> str:
    """A registration nonce that keeps no state: ``<issued ms>-<salt>-<HMAC>``. Anyone may
    ask for one without signing anything, so asking writes nothing (no table to fill, and
    no worker's nonce pushed out); `consume_challenge` checks the HMAC and the age."""
    issued, salt = str(int(now * 1000)), secrets.token_hex(8)
    return f"{issued}-{salt}-{_challenge_mac(conn, address, issued, salt)}"


def consume_challenge(conn: Connection, address: str, nonce: str, now: float, ttl: float) -> bool:
    """True once for a nonce this pool issued to `address` less than `ttl` seconds ago.
    Only a nonce spent by a registration whose signature checked is remembered (until it
    expires), so the table holds at most the registrations of the last `ttl` seconds."""
    parts = nonce.split("-") if len(nonce) <= 80 else []
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 16:
        return False
    issued, salt, mac = parts
    if not hmac.compare_digest(mac, _challenge_mac(conn, address, issued, salt)):
        return False
    issued_at = int(issued) / 1000
    if issued_at > now + 1 or issued_at + ttl < now:
        return False
    _EXPIRED_CHALLENGES.rowcount(conn, {"now": now})
    try:
        # the unique key is the replay check, for a nonce spent before and for one sent
        # twice at once alike; the savepoint keeps the transaction usable after a refusal
        with conn.begin_nested():
            _NEW_CHALLENGE.rowcount(
                conn, {"nonce": nonce, "a": address.lower(), "until": issued_at + ttl}
            )
    except IntegrityError:
        return False  # replayed
    return True


def register_worker(
    conn: Connection,
    address: str,
    gpu: bool,
    cpus: int,
    memory: int,
    score: int,
    now: float,
    balance: int | None = None,
    locked_until: int = 0,
    slots: int | None = None,
) -> str:
    """(Re-)register a worker; returns a fresh bearer token (the old one stops working).
    `balance` and `locked_until` as read from the chain (None: unread, and what an earlier
    registration read is kept: a lock only grows); `slots` caps the replicas it runs at
    once (None: no cap)."""
    token = secrets.token_urlsafe(32)
    read: dict[str, Any] = (
        {}
        if balance is None
        else {"balance": str(balance), "locked_until": locked_until, "standing_at": now}
    )
    values = {
        **read,
        "slots": slots,
        "token_hash": token_hash(token),
        "gpu": gpu,
        "cpus": cpus,
        "memory": memory,
        "score": score,
        "weight": consensus.weight(score),
        "online": True,
        "last_heartbeat": now,
    }
    if update_row(conn, workers, "address", address, values):
        return token
    insert_row(conn, workers, {"address": address, "registered_at": now, "cached": "[]", **values})
    return token


def worker_by_token(conn: Connection, token: str) -> str | None:
    found = _WORKER_BY_TOKEN.scalar(conn, {"token_hash": token_hash(token)})
    return None if found is None else str(found)


UNLISTED_GRACE_S = 15.0  # a replica this recent may still be on its way to its worker


def heartbeat(
    conn: Connection,
    address: str,
    cached: Sequence[str],
    now: float,
    running: Iterable[int] | None = None,
) -> list[int]:
    """Record a heartbeat. `running`: the assignments the worker says it is computing;
    a running replica of its dispatched over UNLISTED_GRACE_S ago that it does not list
    never reached it (the answer that handed it out was lost: a scheduler killed before
    sending it, a dropped connection) and is released at once rather than at its
    deadline, as BOINC resends the results a client does not report. Returns those ids."""
    _HEARTBEAT.rowcount(
        conn, {"a": address, "now": now, "cached": json.dumps(sorted(set(cached))[:10_000])}
    )
    if running is None:  # a worker that does not say (an older one): nothing is assumed
        return []
    listed = set(running)
    unlisted = [
        r
        for r in _RUNNING_OF_WORKER.all(conn, {"w": address})
        if int(r.id) not in listed and r.assigned_at < now - UNLISTED_GRACE_S
    ]
    for r in unlisted:
        why = "never reached its worker (not in its heartbeat)"
        _RELEASE.rowcount(conn, {"aid": int(r.id), "now": now, "why": why})
    if unlisted:
        _recount(conn, [r.task_id for r in unlisted], holders=[address])
    return [int(r.id) for r in unlisted]


def set_scores(
    conn: Connection, scores: dict[str, int], balances: dict[str, int] | None = None
) -> None:
    """On-chain scores (hence weights) and free escrow balances of workers. Only the rows
    that changed are written: a pass over thousands of online workers mostly reads."""
    known: dict[str, tuple[int, str | None]] = {}
    addresses = list(scores)
    for start in range(0, len(addresses), 500):
        for a, score, balance in conn.execute(
            select(workers.c.address, workers.c.score, workers.c.balance).where(
                workers.c.address.in_(addresses[start : start + 500])
            )
        ):
            known[str(a)] = (int(score), balance)
    for address, score in scores.items():
        if address not in known:
            continue
        old_score, old_balance = known[address]
        balance = old_balance
        if balances is not None and address in balances:
            balance = str(balances[address])
        if (score, balance) == (old_score, old_balance):
            continue
        conn.execute(
            update(workers)
            .where(workers.c.address == address)
            .values(score=score, weight=consensus.weight(score), balance=balance)
        )


def worker_addresses(
    conn: Connection, online_only: bool = True, stalest: int | None = None
) -> list[str]:
    """Registered workers (online ones by default); with `stalest`, at most that many,
    those whose chain standing was read longest ago first."""
    q = select(workers.c.address)
    if online_only:
        q = q.where(workers.c.online.is_(True))
    if stalest is not None:
        q = q.order_by(workers.c.standing_at, workers.c.address).limit(stalest)
    return [str(a) for a in conn.execute(q).scalars()]


def restart_clocks(conn: Connection, now: float) -> int:
    """At scheduler start: time it was down counts against nobody. Reveal windows start
    again and online workers get a fresh lease to reach the restarted API; returns the
    reveal phases restarted."""
    restarted = conn.execute(
        update(tasks).where(tasks.c.status == REVEALING).values(reveal_started=now)
    ).rowcount
    conn.execute(
        update(workers)
        .where(workers.c.online.is_(True), workers.c.last_heartbeat < now)
        .values(last_heartbeat=now)
    )
    return int(restarted or 0)


def expire_leases(conn: Connection, now: float, lease: float, grace: float) -> list[int]:
    """Workers silent for `lease` go offline and lose their running replicas; replicas
    running longer than the category time plus `grace` are lost too. Returns the lost
    assignment ids (their tasks get new replicas at the next dispatch)."""
    silent = [
        str(a)
        for a in conn.execute(
            select(workers.c.address).where(
                workers.c.online.is_(True), workers.c.last_heartbeat < now - lease
            )
        ).scalars()
    ]
    if silent:
        conn.execute(update(workers).where(workers.c.address.in_(silent)).values(online=False))
    rows = conn.execute(
        select(assignments.c.id, assignments.c.task_id, assignments.c.worker)
        .select_from(assignments.join(deals, deals.c.deal_id == assignments.c.deal_id))
        .where(
            assignments.c.status == RUNNING,
            (assignments.c.worker.in_(silent))
            | (assignments.c.assigned_at < now - grace - deals.c.time_ref),
        )
    ).all()
    lost = [int(i) for i, _, _ in rows]
    if lost:
        conn.execute(
            update(assignments)
            # still running: another API process may have recorded its commitment since
            .where(assignments.c.id.in_(lost), assignments.c.status == RUNNING)
            .values(status=LOST, updated_at=now, error="worker lost (no heartbeat or overdue)")
        )
        _recount(conn, [str(t) for _, t, _ in rows], holders={str(w) for _, _, w in rows})
    return lost


# ---------------------------------------------------------------- dispatch


def _weights(conn: Connection, addresses: Iterable[str]) -> dict[str, int]:
    addresses = list(set(addresses))
    if not addresses:
        return {}
    if len(addresses) <= _FEW:  # the request path: a task's few replicas
        found = {a: _WEIGHT.scalar(conn, {"a": a}) for a in addresses}
        return {a: int(w) for a, w in found.items() if w is not None}
    rows = conn.execute(
        select(workers.c.address, workers.c.weight).where(workers.c.address.in_(addresses))
    )
    return {str(a): int(w) for a, w in rows}


_FEW = 8  # addresses read one prepared statement each rather than in one IN list
_FEW_TASKS = 2  # started tasks likewise (and looked at before the others are read)
_REPLICAS_OF_TASK = Prepared(select(assignments).where(assignments.c.task_id == bindparam("tid")))


def _task_replicas(conn: Connection, task_ids: Sequence[str]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {t: [] for t in task_ids}
    if not task_ids:
        return out
    if len(task_ids) <= _FEW_TASKS:  # the request path: prepared, one task each
        for t in task_ids:
            out[t] = _REPLICAS_OF_TASK.all(conn, {"tid": t})
        return out
    for row in conn.execute(select(assignments).where(assignments.c.task_id.in_(task_ids))):
        out[row.task_id].append(row)
    return out


def _recount(
    conn: Connection, task_ids: Iterable[str], holders: Iterable[str] | None = None
) -> None:
    """Every change of a replica's status is followed by this, in the same transaction:
    the task's counters are what dispatch finds tasks by, the workers' running counters
    what it caps slots by. `holders`: the workers whose replicas changed (None: every
    worker holding a replica of these tasks)."""
    ids = sorted(set(task_ids))
    if len(ids) == 1:  # the request path: one task
        _RECOUNT_ONE.rowcount(conn, {"tid": ids[0]})
    else:
        for start in range(0, len(ids), 500):
            recount_replicas(conn, ids[start : start + 500])
    if holders is None:
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            found.update(
                str(w)
                for w in conn.execute(
                    select(assignments.c.worker)
                    .where(assignments.c.task_id.in_(ids[start : start + 500]))
                    .distinct()
                ).scalars()
            )
        holders = found
    _recount_running(conn, sorted(set(holders)))


def _recount_running(conn: Connection, addresses: list[str]) -> None:
    """The running counters of these workers, from their assignments. On PostgreSQL their
    rows are locked first, in a statement of their own: the count then runs on a snapshot
    taken after any concurrent pull of theirs committed (a count in the statement that
    waited for it would miss that pull's new replica, and free a slot that is taken)."""
    shared = conn.dialect.name == "postgresql"
    if len(addresses) <= _FEW:
        for a in addresses:
            if shared:
                _LOCK_WORKER.all(conn, {"a": a})
            _RECOUNT_RUNNING.rowcount(conn, {"a": a})
        return
    for start in range(0, len(addresses), 500):
        chunk = addresses[start : start + 500]
        if shared:
            conn.execute(
                select(workers.c.address)
                .where(workers.c.address.in_(chunk))
                .order_by(workers.c.address)
                .with_for_update()
            ).all()
        recount_running(conn, chunk)


def _extra_needed(
    conn: Connection,
    policy: trustpolicy.TrustPolicy,
    task_id: str,
    trust: int,
    replicas: Sequence[Any],
    weights: dict[str, int],
    online: dict[str, int],
    limit: int,
) -> int:
    committed = [r for r in replicas if r.status in (COMMITTED, REVEALED)]
    running = [r for r in replicas if r.status == RUNNING]
    pairs = [(unhx(r.result_hash), str(r.worker)) for r in committed]
    groups = consensus.group_weights(pairs, weights)
    min_members, best_members = trustpolicy.plan(
        conn, policy, task_id, trust, pairs, [str(r.worker) for r in running], weights
    )
    involved = {r.worker for r in replicas}
    candidates = [w for a, w in online.items() if a not in involved]
    return consensus.extra_replicas(
        trust,
        groups,
        len(committed),
        [weights.get(r.worker, consensus.DEFAULT_WEIGHT) for r in running],
        candidates,
        limit,
        min_members=min_members,
        best_members=best_members,
    )


def _min_agreeing(trust: int, limit: int) -> int:
    """Agreeing replicas that reach `trust` whatever their weights (each weighs at least
    DEFAULT_WEIGHT); `limit` + 1 when even `limit` of them may not."""
    for k in range(1, limit + 1):
        if consensus.reached(consensus.DEFAULT_WEIGHT**k, 0, trust):
            return k
    return limit + 1


def tag_allows(tag_hex: str, gpu: bool) -> bool:
    tag = int(tag_hex, 16)
    if tag & TAG_TEE:
        return False  # no TEE workers yet: such deals wait for their claim
    return not (tag & TAG_GPU) or gpu


def next_work(
    conn: Connection,
    settings: SchedulerSettings,
    address: str,
    chain_now: int,
    now: float,
    authorize: Callable[[str, bytes], bytes],
) -> dict[str, Any] | None:
    """Hand `address` one replica, or None.

    Prefers deals whose app and dataset the worker already caches (data locality),
    then older deals, then lower task indices. A task gets a replica only while its
    committed and running replicas cannot reach the deal's trust even if they all agree
    (consensus.extra_replicas), and never twice the same worker. A worker already
    running as many replicas as its advertised slots gets nothing more: the slot is taken
    on its running counter by a conditional update before any task is claimed, so two
    concurrent pulls of one worker (two API processes) cannot both take its last slot.
    """
    me = _WORKER_BY_ADDRESS.first(conn, {"address": address})
    if me is None:
        raise NotFound("This worker is not registered; register again.")
    if me.slots is not None and int(me.running) >= int(me.slots):
        return None
    # a worker whose stake is not there, or could leave before the deal settles, could
    # lie for free
    candidates = [
        d
        for d in opendeals.open_deals(conn, chain_now, now)
        if tag_allows(d.tag, bool(me.gpu)) and stakelock.may_dispatch(d, me)
    ]
    if not candidates:
        return None
    cached = set(json.loads(me.cached)) if me.cached != "[]" else set()

    def locality(d: Any) -> int:
        hits = int(d.app_checksum in cached)
        if d.dataset_checksum:
            hits += int(d.dataset_checksum in cached)
        return hits

    if cached:
        candidates.sort(key=lambda d: -locality(d))  # stable: age order within a level
    slot = _Slot(conn, address)
    try:
        found = _find_replica(conn, settings, me, candidates, slot)
    except _NoSlot:
        return None
    if found is None:
        slot.give_back()
        return None
    d, t = found
    return _assign(conn, d, t, address, now, authorize)


class _Slot:
    """The slot a pull takes on its worker's running counter, at most once, just before
    it claims a task (an empty pull writes nothing)."""

    def __init__(self, conn: Connection, address: str) -> None:
        self.conn, self.address, self.taken = conn, address, False

    def take(self) -> bool:
        if not self.taken:
            self.taken = _TAKE_SLOT.rowcount(self.conn, {"a": self.address}) > 0
        return self.taken

    def give_back(self) -> None:
        if self.taken:
            _GIVE_SLOT.rowcount(self.conn, {"a": self.address})
            self.taken = False


class _NoSlot(Exception):
    """A concurrent pull of the same worker took its last slot."""


def _find_replica(
    conn: Connection,
    settings: SchedulerSettings,
    me: Any,
    candidates: list[Any],
    slot: _Slot,
) -> tuple[Any, Any] | None:
    """(deal row, task row) of the replica claimed for worker `me`, or None."""
    address = str(me.address)
    policy = trustpolicy.load(conn)
    online: dict[str, int] | None = None
    shared = conn.dialect.name == "postgresql"
    for d in candidates:
        params = {"deal": d.deal_id, "me": address}
        # started tasks first (finish what is under way), then the first untouched task,
        # which always wants a replica. Both are found through the replica counters
        # (ix_tasks_dispatch, ix_tasks_split): a started task whose active replicas all
        # agree and would reach the trust even at the minimum weight needs nothing
        # more, so only the others (too few replicas, or disagreeing ones) are loaded
        # replica by replica. No query aggregates the replicas in flight or scans the bag.
        # Above trust 1 the trust policy may refuse a lone result (score, audits): then
        # two agreeing replicas at least.
        quorum = _min_agreeing(d.trust, settings.max_replicas)
        if int(d.trust) > 1 and (policy.lone_score > 0 or policy.audit_rate > 0):
            quorum = max(quorum, 2)
        started: list[Any] = []
        if quorum > 1:
            started += _UNDER_REPLICATED.all(conn, {**params, "quorum": quorum})
        seen = {t.task_id for t in started}
        started += [t for t in _SPLIT.all(conn, params) if t.task_id not in seen]
        if started:
            if online is None:
                # replica planning looks at most at the max_replicas heaviest workers not
                # yet on a task (at most max_replicas are): the top 2 * max_replicas + 1
                # online weights suffice, whatever the number of workers online
                n = 2 * settings.max_replicas + 1
                online = {str(a): int(w) for a, w in _HEAVIEST_ONLINE.all(conn, {"n": n})}
                online[address] = int(me.weight)
            # the first few one by one (the first usually takes the replica), the rest
            # in one read: a long list of started tasks that need nothing more is rare
            for chunk in (started[:_FEW_TASKS], started[_FEW_TASKS:]):
                found = _first_wanting(conn, settings, policy, d, chunk, online, slot)
                if found is not None:
                    return d, found
        # first replicas to workers whose result may stand alone, while one is idle
        if settings.max_replicas <= 0 or not trustpolicy.may_start(
            conn, policy, int(d.trust), address, int(me.score)
        ):
            continue
        for fresh in (_FRESH_SHARED if shared else _FRESH).all(conn, params):
            if _claimed(conn, fresh, slot):
                return d, fresh
    return None


def _first_wanting(
    conn: Connection,
    settings: SchedulerSettings,
    policy: trustpolicy.TrustPolicy,
    d: Any,
    started: list[Any],
    online: dict[str, int],
    slot: _Slot,
) -> Any:
    """The first of the `started` tasks of deal `d` that wants another replica, claimed
    for the pulling worker (its slot taken); None when none does."""
    if not started:
        return None
    replicas = _task_replicas(conn, [t.task_id for t in started])
    weights = _weights(conn, [r.worker for rs in replicas.values() for r in rs])
    for t in started:
        extra = _extra_needed(
            conn,
            policy,
            t.task_id,
            d.trust,
            replicas[t.task_id],
            weights,
            online,
            settings.max_replicas,
        )
        if extra and _claimed(conn, t, slot):
            return t
    return None


def _claimed(conn: Connection, task_row: Any, slot: _Slot) -> bool:
    """The worker's slot, then the task (compare-and-set on its version): False when a
    concurrent dispatch took the task; raises _NoSlot when no slot is left."""
    if not slot.take():
        raise _NoSlot
    return _claim(conn, task_row)


def running_replicas(conn: Connection, address: str) -> int:
    """Replicas `address` is computing now (committed ones no longer hold a slot), as its
    running counter holds them."""
    found = _WORKER_BY_ADDRESS.first(conn, {"address": address})
    return 0 if found is None else int(found.running)


def _claim(conn: Connection, task_row: Any) -> bool:
    """Compare-and-set on the task's version: False when another scheduler process
    dispatched a replica of it since we read it (several API processes on one PostgreSQL
    never hand out the same replica twice; the loser just moves on to another task)."""
    return _CLAIM.rowcount(conn, {"tid": task_row.task_id, "seen": task_row.version}) > 0


def _assign(
    conn: Connection,
    deal_row: Any,
    task_row: Any,
    address: str,
    now: float,
    authorize: Callable[[str, bytes], bytes],
) -> dict[str, Any]:
    """Record the replica claimed (its slot is already counted on the worker)."""
    auth = hx(authorize(address, unhx(task_row.task_id)))
    tid = task_row.task_id
    again = _RELEASED_BEFORE.scalar(conn, {"tid": tid, "w": address})
    if again is not None:  # one row per (task, worker): the released one runs again
        _RUN_AGAIN.rowcount(conn, {"aid": again, "auth": auth, "now": now})
        aid = again
    else:
        params = {"tid": tid, "deal": deal_row.deal_id, "w": address, "auth": auth, "now": now}
        aid = _NEW_ASSIGNMENT.scalar(conn, params)
    _recount(conn, [tid], holders=())
    return assignment_payload(deal_row, task_row, _Assigned(int(aid), RUNNING, auth))


@dataclass(frozen=True)
class _Assigned:
    """What the payload needs of a replica just written (no read back)."""

    id: int
    status: str
    authorization: str


def assignment_payload(d: Any, t: Any, a: Any) -> dict[str, Any]:
    return {
        "id": int(a.id),
        "status": a.status,
        "deal_id": d.deal_id,
        "deal": opendeals.terms(d).deal,
        "block": int(d.block),
        "index": int(t.idx),
        "task_id": t.task_id,
        "app": {
            "id": d.app,
            "location": d.app_location,
            "checksum": d.app_checksum,
            "type": int(d.app_type),
        },
        "dataset": (
            {"id": d.dataset, "location": d.dataset_location, "checksum": d.dataset_checksum}
            if int(d.dataset)
            else None
        ),
        "category": int(d.category),
        "time_ref": int(d.time_ref),
        "params": d.params,
        "tag": d.tag,
        "beneficiary": d.beneficiary,
        "trust": int(d.trust),
        "callback": bool(d.callback),
        "contribution_deadline": int(d.contribution_deadline),
        "final_deadline": int(d.final_deadline),
        "authorization": a.authorization,
    }


# ---------------------------------------------------------------- commit / reveal


def _own(conn: Connection, aid: int, address: str) -> tuple[Any, Any]:
    a = _ASSIGNMENT_BY_ID.first(conn, {"aid": aid})
    if a is None or a.worker != address:
        raise NotFound(f"Assignment {aid} is not one of this worker's.")
    t = _TASK_BY_ID.first(conn, {"task_id": a.task_id})
    if t is None:  # a forgotten deal takes its assignments with it: never reached
        raise NotFound(f"The task of assignment {aid} is gone.")
    return a, t


_deal_trust: dict[str, int] = {}  # a deal's trust never changes (its id hashes it)
_DEAL_TRUST_CACHE = 10_000


def _trust(conn: Connection, deal_id: str) -> int:
    found = _deal_trust.get(deal_id)
    if found is None:
        found = int(_DEAL_TRUST.scalar(conn, {"d": deal_id}))
        if len(_deal_trust) >= _DEAL_TRUST_CACHE:
            _deal_trust.clear()
        _deal_trust[deal_id] = found
    return found


def commit(
    conn: Connection, aid: int, address: str, c: SignedContribution, now: float
) -> dict[str, Any]:
    """Store a verified contribution and check whether its task reached consensus."""
    a, t = _own(conn, aid, address)
    return _store_commitment(conn, a, t, address, c, now) or {"status": a.status}


def commit_verified(
    conn: Connection,
    aid: int,
    address: str,
    contribution: Callable[[bytes], SignedContribution],
    now: float,
) -> tuple[dict[str, Any], bool]:
    """:func:`commit` for the API: ``contribution(task_id)`` builds the worker's signed
    contribution for the task the assignment is for and checks its signature (raising
    Invalid). Answers the assignment's view (:func:`assignment_state`) after the commit
    (``action`` is ``reveal`` when this commitment made the task's consensus), and whether
    it was stored now (False: the same commitment was already)."""
    a, t = _own(conn, aid, address)
    if a.status == UNREVEALED:  # back from offline: its commitment may count again
        assignment_state(conn, aid, address)
        a, t = _own(conn, aid, address)
    c = contribution(unhx(a.task_id))
    if _store_commitment(conn, a, t, address, c, now) is None:  # a repeat: as it stands
        return _view(*_own(conn, aid, address)), False
    # stored: the assignment is committed with this hash; the task as evaluated now
    t = _TASK_BY_ID.first(conn, {"task_id": a.task_id})
    return _view(a._replace(status=COMMITTED, result_hash=hx(c.result_hash)), t), True


def _store_commitment(
    conn: Connection, a: Any, t: Any, address: str, c: SignedContribution, now: float
) -> dict[str, Any] | None:
    """Store the commitment (None: the same one was stored already)."""
    aid = int(a.id)
    if hx(c.task_id) != a.task_id:
        raise Invalid("The contribution is signed for another task.")
    if a.status in (COMMITTED, REVEALED):
        if a.result_hash == hx(c.result_hash):
            return None
        raise Conflict("This assignment already holds another commitment.")
    # a worker presumed lost that comes back in time still counts while the task is open
    if a.status not in (RUNNING, LOST) or t.status != OPEN:
        raise Conflict(f"The assignment is {a.status} and its task {t.status}: not accepted.")
    _COMMIT.rowcount(
        conn,
        {
            "aid": aid,
            "rh": hx(c.result_hash),
            "rs": hx(c.result_seal),
            "sig_r": hx(c.r),
            "sig_vs": hx(c.vs),
            "now": now,
        },
    )
    _recount(conn, [a.task_id], holders=[address])
    evaluate(conn, a.task_id, now, task=t)
    return {"status": COMMITTED}


def evaluate(conn: Connection, task_id: str, now: float, task: Any = None) -> None:
    """An open task whose committed groups reached credibility starts its reveal phase.
    `task`: its row, read in this transaction (its status and deal are what is used)."""
    t = task if task is not None else _TASK_BY_ID.first(conn, {"task_id": task_id})
    if t is None or t.status != OPEN:
        return
    committed = _COMMITTED_ON_TASK.all(conn, {"tid": task_id})
    if not committed:
        return
    weights = _weights(conn, [r.worker for r in committed])
    pairs = [(unhx(r.result_hash), str(r.worker)) for r in committed]
    win = trustpolicy.winner(
        conn, trustpolicy.load(conn), task_id, _trust(conn, t.deal_id), pairs, weights
    )
    if win is None:
        return
    revealed = next(
        (r for r in committed if r.status == REVEALED and r.result_hash == hx(win)), None
    )
    started = _START_REVEAL.rowcount(
        conn,
        {
            "tid": task_id,
            "win": hx(win),
            "dg": revealed.digest if revealed else None,
            "blob": revealed.result_blob if revealed else None,
            "now": now,
        },
    )
    if started:
        _cancel_running(conn, task_id, now)


def _cancel_running(conn: Connection, task_id: str, now: float) -> None:
    cancelled = _CANCEL_RUNNING.all(conn, {"tid": task_id, "now": now})
    if cancelled:
        _recount(conn, [task_id], holders=[str(r.worker) for r in cancelled])


def reveal(
    conn: Connection,
    aid: int,
    address: str,
    digest: bytes,
    result_blob: str | None,
    failure: str | None,
    callback_data: str | None,
    now: float,
) -> dict[str, Any]:
    a, t = _own(conn, aid, address)
    if a.status == REVEALED:
        return {"status": REVEALED}
    if a.status != COMMITTED or (t.status not in (REVEALING, READY) and not _wants_upload(t)):
        raise Conflict(f"The assignment is {a.status} and its task {t.status}: no reveal expected.")
    if a.result_hash != t.consensus_hash:
        raise Conflict("This contribution is not in the consensus group; nothing to reveal.")
    task = unhx(t.task_id)
    if hx(result_hash(task, digest)) != a.result_hash:
        raise Invalid("The digest does not match the committed result hash.")
    if hx(result_seal(address, task, digest)) != a.result_seal:
        raise Invalid("The digest does not match the committed result seal.")
    if failure is not None and digest not in (
        hashlib.sha256(failure.encode()).digest(),
        keccak(failure.encode()),  # callback deals: the hub checks keccak256(data)
    ):
        raise Invalid("The failure record does not hash to the revealed digest.")
    if callback_data is not None and keccak(unhx(callback_data)) != digest:
        raise Invalid("The callback data does not hash (keccak256) to the revealed digest.")
    _REVEAL.rowcount(conn, {"aid": aid, "dg": hx(digest), "blob": result_blob, "now": now})
    # members of the group whose seal does not bind them to this digest copied the hash
    # without knowing the result: out of the group (and of its weight) for good
    copiers = [
        int(r.id)
        for r in _GROUP_COMMITTED.all(conn, {"tid": t.task_id, "rh": a.result_hash})
        if hx(result_seal(r.worker, task, digest)) != r.result_seal
    ]
    if copiers:
        conn.execute(
            update(assignments)
            .where(assignments.c.id.in_(copiers))
            .values(status=INVALID, error="seal does not match the revealed digest", updated_at=now)
        )
        _recount(conn, [t.task_id], holders=())  # committed ones: no slot changes
        evaluate_reopen = True
    else:
        evaluate_reopen = False
    values: dict[str, Any] = {"updated_at": now}
    if t.digest is None:
        values.update(
            digest=hx(digest),
            result_blob=result_blob,
            failure=failure,
            callback_data=callback_data,
        )
    elif t.result_blob is None and result_blob:
        values["result_blob"] = result_blob
    pending = _STILL_TO_REVEAL.scalar(conn, {"tid": t.task_id, "rh": t.consensus_hash, "aid": aid})
    if pending == 0 and t.status == REVEALING:
        values["status"] = READY
    update_row(conn, tasks, "task_id", t.task_id, values)
    if evaluate_reopen:
        _recheck(conn, t.task_id, now)
    return {"status": REVEALED}


def _recheck(conn: Connection, task_id: str, now: float) -> None:
    """After members left a winning group: back to open unless it still wins."""
    conn.execute(
        update(tasks)
        .where(tasks.c.task_id == task_id, tasks.c.status.in_((REVEALING, READY)))
        .values(status=OPEN, consensus_hash=None, reveal_started=None, updated_at=now)
    )
    opendeals.forget(conn)
    evaluate(conn, task_id, now)


def reveal_tick(
    conn: Connection, now: float, reveal_wait: float, lease: float, chain_now: int
) -> None:
    """Reveal phases past their wait: ready with the digest we have, or back to open.

    While a member of the winning group still heartbeats (blocked on an upload, say), the
    phase waits on, up to two category times before the final deadline (room left to
    replace them); members that are offline become unrevealed and may still reveal if
    they come back while the task is open (:func:`assignment_state`)."""
    for t in conn.execute(
        select(tasks).where(tasks.c.status == REVEALING, tasks.c.reveal_started < now - reveal_wait)
    ).all():
        if t.digest is not None:
            conn.execute(
                update(tasks)
                .where(tasks.c.task_id == t.task_id)
                .values(status=READY, updated_at=now)
            )
            continue
        d = conn.execute(
            select(deals.c.final_deadline, deals.c.time_ref).where(deals.c.deal_id == t.deal_id)
        ).one()
        margin_left = chain_now < int(d.final_deadline) - 2 * int(d.time_ref)
        pending = conn.execute(
            select(assignments.c.id, workers.c.last_heartbeat, workers.c.online)
            .select_from(assignments.join(workers, workers.c.address == assignments.c.worker))
            .where(
                assignments.c.task_id == t.task_id,
                assignments.c.status == COMMITTED,
                assignments.c.result_hash == t.consensus_hash,
            )
        ).all()
        alive = [p for p in pending if p.online and p.last_heartbeat >= now - lease]
        if alive and margin_left:
            continue  # blocked, not gone: give it the time the deadline allows
        # nobody in the winning group revealed: drop them, look for replicas again
        for p in pending:
            conn.execute(
                update(assignments)
                .where(assignments.c.id == p.id)
                .values(
                    status=UNREVEALED,
                    updated_at=now,
                    error=UNREVEALED_OFFLINE if margin_left else UNREVEALED_LATE,
                )
            )
        _recount(conn, [t.task_id], holders=())  # committed ones: no slot changes
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id == t.task_id)
            .values(status=OPEN, consensus_hash=None, reveal_started=None, updated_at=now)
        )
        opendeals.forget(conn)
        evaluate(conn, t.task_id, now)


def fail(
    conn: Connection, aid: int, address: str, kind: str, message: str, now: float, max_attempts: int
) -> dict[str, Any]:
    """A non-deterministic failure: the replica goes elsewhere, up to `max_attempts`."""
    a, t = _own(conn, aid, address)
    if a.status != RUNNING:
        return {"status": a.status}
    if kind in TRANSIENT_FAILURES:  # an outage, not the task: release, count nothing
        conn.execute(
            update(assignments)
            .where(assignments.c.id == aid)
            .values(status=RELEASED, error=f"{kind}: {message}"[:2000], updated_at=now)
        )
        _recount(conn, [t.task_id], holders=[address])
        return {"status": RELEASED}
    conn.execute(
        update(assignments)
        .where(assignments.c.id == aid)
        .values(status=FAILED, error=f"{kind}: {message}"[:2000], updated_at=now)
    )
    _recount(conn, [t.task_id], holders=[address])
    failures = int(t.failures) + 1
    values: dict[str, Any] = {"failures": failures, "updated_at": now}
    if failures >= max_attempts and t.status == OPEN:
        values["status"] = ABANDONED
    conn.execute(update(tasks).where(tasks.c.task_id == t.task_id).values(**values))
    if values.get("status") == ABANDONED:
        _cancel_running(conn, t.task_id, now)
    return {"status": FAILED}


def release(conn: Connection, aid: int, address: str, now: float) -> dict[str, Any]:
    a, _ = _own(conn, aid, address)
    if a.status == RUNNING:
        _RELEASE.rowcount(conn, {"aid": aid, "now": now, "why": "released by the worker"})
        _recount(conn, [a.task_id], holders=[address])
        return {"status": RELEASED}
    return {"status": a.status}


_DONE_TASK = (FINALIZED, CLAIMED, SETTLED)


def _wants_upload(t: Any) -> bool:
    """A task settled with a digest but no result blob (its revealer could not upload):
    the other members of its group are asked to reveal, so one of them uploads it."""
    return (
        t.status in (FINALIZED, SETTLED)
        and t.digest is not None
        and t.result_blob is None
        and t.failure is None
    )


def assignment_state(conn: Connection, aid: int, address: str) -> dict[str, Any]:
    """What the worker should do next with an assignment: run, wait, reveal, abort, done.

    A commitment dropped as unrevealed because its worker was offline counts again when
    the worker comes back and asks while its task is still open (after a crash, a
    restart, a partition): its work is not lost and the task need not expire."""
    a, t = _own(conn, aid, address)
    if a.status == UNREVEALED and a.error == UNREVEALED_OFFLINE and t.status == OPEN:
        conn.execute(
            update(assignments)
            .where(assignments.c.id == aid)
            .values(status=COMMITTED, error=None, updated_at=time.time())
        )
        _recount(conn, [t.task_id], holders=())
        evaluate(conn, t.task_id, time.time())
        a, t = _own(conn, aid, address)
    return _view(a, t)


def _view(a: Any, t: Any) -> dict[str, Any]:
    """An assignment as its worker sees it, with what to do next."""
    if a.status == RUNNING:
        action = "run" if t.status == OPEN else "abort"
    elif a.status == COMMITTED:
        if a.result_hash == t.consensus_hash and (
            t.status in (REVEALING, READY) or _wants_upload(t)
        ):
            action = "reveal"
        elif t.status in (*_DONE_TASK, ABANDONED):
            action = "done"
        else:
            action = "wait"
    elif a.status == REVEALED:
        action = "done"
    else:  # failed, lost, released, cancelled, unrevealed
        action = "abort"
    return {
        "id": int(a.id),
        "status": a.status,
        "task_id": t.task_id,
        "task_status": t.status,
        "action": action,
    }


# ---------------------------------------------------------------- finalize


@dataclass
class Batch:
    deal_id: str
    deal: Deal
    outcomes: list[TaskOutcome] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    callback_data: bytes = b""

    @property
    def workers(self) -> set[str]:
        return {c.worker for o in self.outcomes for c in o.contributions}


def _contribution(a: Any) -> SignedContribution:
    return SignedContribution(
        a.worker, unhx(a.task_id), unhx(a.result_hash), unhx(a.result_seal), unhx(a.r), unhx(a.vs)
    )


def task_outcome(conn: Connection, t: Any, max_contributors: int = 16) -> TaskOutcome:
    """Winners (consensus hash with a seal matching the revealed digest: they knew the
    result) and losers (another hash: they get penalized). A winner hash with a wrong
    seal copied someone's hash without knowing the result: left out."""
    digest = unhx(t.digest)
    task = unhx(t.task_id)
    picked: list[SignedContribution] = []
    for a in conn.execute(
        select(assignments)
        .where(
            assignments.c.task_id == t.task_id,
            assignments.c.status.in_((COMMITTED, REVEALED, UNREVEALED)),
        )
        .order_by(assignments.c.id)
    ):
        if a.result_hash == t.consensus_hash:
            if a.status == UNREVEALED or hx(result_seal(a.worker, task, digest)) != a.result_seal:
                continue
        elif a.status == UNREVEALED:
            continue
        picked.append(_contribution(a))
    return TaskOutcome(int(t.idx), digest, picked[:max_contributors])


def ready_batches(
    conn: Connection, chain_now: int, now: float | None = None, window: float = 0.0
) -> list[Batch]:
    """Ready tasks grouped per deal into finalize batches the hub accepts.

    With a `window`, a deal's last, partly filled batch waits until its oldest task has
    been ready for `window` seconds, so a bag settles in few transactions (gas per task
    falls with the batch size); it goes at once when no other task of the deal could
    still join it (a lone task is not delayed) or when the deal nears its deadline."""
    out: list[Batch] = []
    ready_deals = conn.execute(
        select(deals)
        .where(
            deals.c.final_deadline > chain_now,
            select(tasks.c.task_id)
            .where(tasks.c.deal_id == deals.c.deal_id, tasks.c.status == READY)
            .exists(),
        )
        .order_by(deals.c.created_at)
    ).all()
    for d in ready_deals:
        deal = load_deal(d)
        batch = Batch(d.deal_id, deal)
        wins = losses = 0
        ready = conn.execute(
            select(tasks)
            .where(tasks.c.deal_id == d.deal_id, tasks.c.status == READY)
            .order_by(tasks.c.idx)
            .limit(MAX_BATCH * 8)
        ).all()
        since = min(float(t.updated_at) for t in ready)
        if _hold(conn, d, len(ready), chain_now, now, window, since):
            continue  # decided before any outcome is built: holding costs one query
        for t in ready:
            outcome = task_outcome(conn, t)
            consensus_hash = unhx(t.consensus_hash)
            w = sum(1 for c in outcome.contributions if c.result_hash == consensus_hash)
            lost = len(outcome.contributions) - w
            full = (
                len(batch.outcomes) >= MAX_BATCH
                or wins + w > MAX_WINNER_SIGS
                or losses + lost > MAX_LOSER_SIGS
                or (d.callback and batch.outcomes)
            )
            if full:
                out.append(batch)
                batch, wins, losses = Batch(d.deal_id, deal), 0, 0
            batch.outcomes.append(outcome)
            batch.task_ids.append(t.task_id)
            if d.callback:
                batch.callback_data = unhx(t.callback_data or "0x")
            wins, losses = wins + w, losses + lost
        if batch.outcomes:
            out.append(batch)
    return out


def _hold(
    conn: Connection,
    d: Any,
    ready: int,
    chain_now: int,
    now: float | None,
    window: float,
    ready_since: float,
) -> bool:
    """Whether `ready` tasks of a deal (less than a batch) should wait for more."""
    if window <= 0 or now is None or ready >= MAX_BATCH or d.callback:
        return False
    if now - ready_since >= window or chain_now + 2 * int(d.time_ref) >= int(d.final_deadline):
        return False
    coming = conn.execute(
        select(tasks.c.task_id)
        .where(tasks.c.deal_id == d.deal_id, tasks.c.status.in_((OPEN, REVEALING)))
        .limit(1)
    ).first()
    return coming is not None


def mark_tasks(
    conn: Connection, task_ids: Sequence[str], status: str, now: float, tx: str | None = None
) -> None:
    if not task_ids:
        return
    values: dict[str, Any] = {"status": status, "updated_at": now}
    if tx is not None:
        values["finalize_tx"] = tx
    conn.execute(update(tasks).where(tasks.c.task_id.in_(task_ids)).values(**values))
    conn.execute(
        update(assignments)
        .where(assignments.c.task_id.in_(task_ids), assignments.c.status == RUNNING)
        .values(status=CANCELLED, updated_at=now)
    )
    _recount(conn, task_ids)
    deal_ids = {
        str(d)
        for d in conn.execute(
            select(tasks.c.deal_id).where(tasks.c.task_id.in_(task_ids))
        ).scalars()
    }
    for deal_id in deal_ids:
        left = conn.execute(
            select(func.count())
            .select_from(tasks)
            .where(tasks.c.deal_id == deal_id, tasks.c.status.in_(UNSETTLED))
        ).scalar_one()
        if left == 0:
            conn.execute(update(deals).where(deals.c.deal_id == deal_id).values(status="done"))


def mark_onchain(conn: Connection, task_ids: Sequence[str], now: float) -> list[str]:
    """Tasks with on-chain contributions leave the fast path; returns those newly marked."""
    found = [
        str(t)
        for t in conn.execute(
            select(tasks.c.task_id).where(
                tasks.c.task_id.in_(list(task_ids)),
                tasks.c.status.in_((OPEN, REVEALING, READY, ABANDONED)),
            )
        ).scalars()
    ]
    if found:
        conn.execute(
            update(tasks).where(tasks.c.task_id.in_(found)).values(status=ONCHAIN, updated_at=now)
        )
        conn.execute(
            update(assignments)
            .where(assignments.c.task_id.in_(found), assignments.c.status == RUNNING)
            .values(status=CANCELLED, updated_at=now)
        )
        _recount(conn, found)
    return found


def onchain_tasks(conn: Connection) -> list[tuple[str, Deal, int]]:
    """(task id, deal, index) of the tasks the on-chain path settles."""
    rows = conn.execute(
        select(tasks.c.task_id, tasks.c.idx, deals.c.deal_json)
        .select_from(tasks.join(deals, deals.c.deal_id == tasks.c.deal_id))
        .where(tasks.c.status == ONCHAIN)
    ).all()
    return [(str(r.task_id), load_deal(r), int(r.idx)) for r in rows]


def reopen(conn: Connection, task_ids: Sequence[str], now: float) -> None:
    """Ready tasks whose group lost credibility (scores moved): look for more replicas."""
    for task_id in task_ids:
        _recheck(conn, task_id, now)


# ---------------------------------------------------------------- claims and reconciliation


def claimable(conn: Connection, chain_now: int) -> list[tuple[str, Deal, list[tuple[int, str]]]]:
    """Deals past their final deadline with unsettled tasks: (deal id, deal, [(index, task)])."""
    out = []
    for d in conn.execute(
        select(deals).where(deals.c.status == "active", deals.c.final_deadline <= chain_now)
    ).all():
        rows = conn.execute(
            select(tasks.c.idx, tasks.c.task_id)
            .where(tasks.c.deal_id == d.deal_id, tasks.c.status.in_(UNSETTLED))
            .order_by(tasks.c.idx)
        ).all()
        if rows:
            out.append((d.deal_id, load_deal(d), [(int(i), str(t)) for i, t in rows]))
        else:
            conn.execute(update(deals).where(deals.c.deal_id == d.deal_id).values(status="done"))
    return out


def unsettled_tasks(conn: Connection, after: str, limit: int) -> list[tuple[str, str, int]]:
    """(task id, deal id, index) of unsettled tasks, in task-id order after `after` (paging
    through them across reconciliation passes)."""
    rows = conn.execute(
        select(tasks.c.task_id, tasks.c.deal_id, tasks.c.idx)
        .where(tasks.c.status.in_(UNSETTLED), tasks.c.task_id > after)
        .order_by(tasks.c.task_id)
        .limit(limit)
    ).all()
    return [(str(t), str(d), int(i)) for t, d, i in rows]


def settled_recently(
    conn: Connection, since: int, after: str, limit: int
) -> list[tuple[str, str, int]]:
    """(task id, deal id, index) of tasks recorded as settled in deals whose final deadline
    is after `since` (chain time): those a rollback of the chain can still have undone.
    Paged in task-id order after `after`."""
    rows = conn.execute(
        select(tasks.c.task_id, tasks.c.deal_id, tasks.c.idx)
        .select_from(tasks.join(deals, deals.c.deal_id == tasks.c.deal_id))
        .where(
            tasks.c.status.in_(_DONE_TASK),
            deals.c.final_deadline > since,
            tasks.c.task_id > after,
        )
        .order_by(tasks.c.task_id)
        .limit(limit)
    ).all()
    return [(str(t), str(d), int(i)) for t, d, i in rows]


def unsettle(conn: Connection, task_ids: Sequence[str], now: float) -> None:
    """The chain no longer holds these tasks' settlement (it was rolled back): the chain
    wins. A task with a revealed consensus goes back to ready (the finalizer settles it
    again, or the claimer refunds it past the deadline), any other one to open."""
    for task_id in task_ids:
        t = conn.execute(select(tasks).where(tasks.c.task_id == task_id)).one()
        revealed = t.digest is not None and t.consensus_hash is not None
        conn.execute(
            update(tasks)
            .where(tasks.c.task_id == task_id)
            .values(status=READY if revealed else OPEN, finalize_tx=None, updated_at=now)
        )
        conn.execute(update(deals).where(deals.c.deal_id == t.deal_id).values(status="active"))
        opendeals.forget(conn)
        if not revealed:
            evaluate(conn, task_id, now)


def forget_deal(conn: Connection, deal_id: str) -> None:
    """The chain no longer knows this deal (rolled back before its match): it goes, with
    its tasks and replicas (their workers are told so and drop them); if the match is
    mined again, the watcher records it afresh."""
    holders = conn.execute(
        select(assignments.c.worker)
        .where(assignments.c.deal_id == deal_id, assignments.c.status == RUNNING)
        .distinct()
    ).scalars()
    running = sorted(str(w) for w in holders)
    conn.execute(assignments.delete().where(assignments.c.deal_id == deal_id))
    _recount_running(conn, running)
    conn.execute(tasks.delete().where(tasks.c.deal_id == deal_id))
    conn.execute(deals.delete().where(deals.c.deal_id == deal_id))


def active_deals(conn: Connection, since: int) -> list[str]:
    """Ids of deals with a final deadline after `since` (chain time)."""
    return [
        str(d)
        for d in conn.execute(
            select(deals.c.deal_id).where(deals.c.final_deadline > since)
        ).scalars()
    ]


# ---------------------------------------------------------------- views


def counts(conn: Connection) -> dict[str, Any]:
    by_status = {
        str(s): int(n)
        for s, n in conn.execute(select(tasks.c.status, func.count()).group_by(tasks.c.status))
    }
    online = conn.execute(
        select(func.count()).select_from(workers).where(workers.c.online.is_(True))
    ).scalar_one()
    running = conn.execute(
        select(func.count()).select_from(assignments).where(assignments.c.status == RUNNING)
    ).scalar_one()
    active_deals = conn.execute(
        select(func.count()).select_from(deals).where(deals.c.status == "active")
    ).scalar_one()
    return {
        "tasks": by_status,
        "workers_online": int(online),
        "assignments_running": int(running),
        "deals_active": int(active_deals),
    }


def task_view(conn: Connection, task_id: str) -> dict[str, Any]:
    t = conn.execute(select(tasks).where(tasks.c.task_id == task_id.lower())).first()
    if t is None:
        raise NotFound(f"No task {task_id} is known to this scheduler.")
    reps = conn.execute(
        select(assignments).where(assignments.c.task_id == t.task_id).order_by(assignments.c.id)
    ).all()
    return {
        "task_id": t.task_id,
        "deal_id": t.deal_id,
        "index": int(t.idx),
        "status": t.status,
        "digest": t.digest,
        "result_blob": t.result_blob,
        "failure": json.loads(t.failure) if t.failure else None,
        "failures": int(t.failures),
        "finalize_tx": t.finalize_tx,
        "replicas": [
            {
                "id": int(a.id),
                "worker": a.worker,
                "status": a.status,
                # commitments stay private until the task is settled: a published hash
                # is an invitation to copy it
                "result_hash": a.result_hash if t.status in _DONE_TASK else None,
                "error": a.error,
            }
            for a in reps
        ],
    }


def deal_view(conn: Connection, deal_id: str) -> dict[str, Any]:
    d = conn.execute(select(deals).where(deals.c.deal_id == deal_id.lower())).first()
    if d is None:
        raise NotFound(f"No deal {deal_id} is known to this scheduler.")
    rows = conn.execute(
        select(tasks.c.task_id, tasks.c.idx, tasks.c.status)
        .where(tasks.c.deal_id == d.deal_id)
        .order_by(tasks.c.idx)
        .limit(10_000)
    ).all()
    return {
        "deal_id": d.deal_id,
        "status": d.status,
        "app": d.app,
        "dataset": d.dataset,
        "category": int(d.category),
        "trust": int(d.trust),
        "volume": int(d.volume),
        "final_deadline": int(d.final_deadline),
        "tasks": [{"task_id": t, "index": int(i), "status": s} for t, i, s in rows],
    }


def deal_list(conn: Connection, status: str | None, limit: int) -> list[dict[str, Any]]:
    q = select(deals.c.deal_id, deals.c.status, deals.c.volume, deals.c.created_at)
    if status:
        q = q.where(deals.c.status == status)
    rows = conn.execute(q.order_by(deals.c.created_at.desc()).limit(limit)).all()
    return [{"deal_id": d, "status": s, "volume": int(v), "created_at": c} for d, s, v, c in rows]


def worker_list(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(workers).order_by(workers.c.address)).all()
    return [
        {
            "address": w.address,
            "online": bool(w.online),
            "gpu": bool(w.gpu),
            "cpus": int(w.cpus),
            "memory": int(w.memory),
            "slots": None if w.slots is None else int(w.slots),
            "score": int(w.score),
            "weight": int(w.weight),
            "last_heartbeat": w.last_heartbeat,
            "cached": len(json.loads(w.cached)),
        }
        for w in rows
    ]
