"""The scheduler's trust policy, on top of the hub's credibility rule.

The hub accepts whatever reaches credibility, including one heavy worker alone. Against
saboteurs that farm a score and then lie alone (measured by ``bench/trust.py``) the
scheduler asks more before a lone result stands:

- a result group of one member wins only when that worker's on-chain score reaches
  ``lone_score`` (``consensus.stands_alone``) and the task is not audited; otherwise the
  winning group needs two members (unless no other worker is online to add one: then the
  hub's rule decides, which is what the requester's trust asked for);
- audits: a keyed hash of the task under a secret only the scheduler holds
  (``consensus.audit_drawn``) picks ``audit_rate`` of the lone results for one more
  replica; the draw is only used once the first result is committed, and an audit
  replica looks like any other, so nobody can tell when it is safe to lie;
- first replicas of a task go to workers whose result could stand alone while one of
  them is idle; the others get second replicas (audits), which is how they earn a score.

``lone_score = 0`` and ``audit_rate = 0`` give the hub's rule alone. The policy lives in
the scheduler's database (cursor rows), so every state transition
reads the same one and a restarted scheduler keeps its audit secret.
"""

from __future__ import annotations

import secrets
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from comptoir.scheduler import consensus
from comptoir.scheduler.db import cursor, workers
from comptoir.scheduler.prepared import Prepared

_LONE, _AUDIT, _KEYS = "trust.lone_score", "trust.audit_ppm", ("trust.key0", "trust.key1")
PPM = 1_000_000
_SCORE = Prepared(select(workers.c.score).where(workers.c.address == bindparam("a")))
_IDLE_REPUTABLE = Prepared(
    select(workers.c.address)
    .where(
        workers.c.online.is_(True),
        workers.c.score >= bindparam("floor"),
        workers.c.address != bindparam("me"),
        workers.c.running == 0,
    )
    .limit(1)
)


@dataclass(frozen=True)
class TrustPolicy:
    lone_score: int
    audit_rate: float
    secret: bytes

    def lone_ok(self, task_id: str, score: int, trust: int) -> bool:
        """Whether one result of a worker with `score` may decide this task alone."""
        if not consensus.stands_alone(score, trust, self.lone_score):
            return False
        task = bytes.fromhex(task_id.removeprefix("0x"))
        return trust <= 1 or not consensus.audit_drawn(self.secret, task, self.audit_rate)

    def lone_floor(self, trust: int) -> int | None:
        """The smallest score whose result stands alone at `trust` (None: none does)."""
        if trust <= 1:
            return 0
        if not consensus.reached(consensus.MAX_WEIGHT, 0, trust):
            return None
        return max(self.lone_score, 3 * (trust + 1))  # weight(s) >= trust


def _get(conn: Connection, name: str) -> int | None:
    value = conn.execute(select(cursor.c.value).where(cursor.c.name == name)).scalar()
    return None if value is None else int(value)


def _set(conn: Connection, name: str, value: int) -> None:
    if not conn.execute(update(cursor).where(cursor.c.name == name).values(value=value)).rowcount:
        conn.execute(insert(cursor).values(name=name, value=value))


def _create(conn: Connection, name: str, value: int) -> int:
    """Insert `name` unless another scheduler process just did; the value that holds."""
    try:
        with conn.begin_nested():  # a savepoint: a lost race leaves the transaction usable
            conn.execute(insert(cursor).values(name=name, value=value))
        return value
    except IntegrityError:
        found = _get(conn, name)
        assert found is not None
        return found


def store(conn: Connection, lone_score: int, audit_rate: float) -> None:
    """Record the pool's policy (the service does it at start, from its settings)."""
    _loaded.pop(conn.engine, None)
    _set(conn, _LONE, max(lone_score, 0))
    _set(conn, _AUDIT, round(min(max(audit_rate, 0.0), 1.0) * PPM))


# The policy read once per engine (per process): every dispatch and commit needs it,
# and it only changes through store() at start, which every process of a pool does with
# the same settings (the secret, once drawn, never changes).
_loaded: weakref.WeakKeyDictionary[Engine, TrustPolicy] = weakref.WeakKeyDictionary()


def load(conn: Connection) -> TrustPolicy:
    """The recorded policy (defaults: consensus.LONE_SCORE, AUDIT_RATE); the audit secret
    is drawn on first use and kept."""
    cached = _loaded.get(conn.engine)
    if cached is not None:
        return cached
    policy = _read(conn)
    _loaded[conn.engine] = policy
    return policy


def _read(conn: Connection) -> TrustPolicy:
    key = []
    for name in _KEYS:
        part = _get(conn, name)
        if part is None:
            part = _create(conn, name, secrets.randbits(62))
        key.append(part.to_bytes(8, "big"))
    lone, ppm = _get(conn, _LONE), _get(conn, _AUDIT)
    return TrustPolicy(
        lone_score=consensus.LONE_SCORE if lone is None else lone,
        audit_rate=consensus.AUDIT_RATE if ppm is None else ppm / PPM,
        secret=b"".join(key),
    )


def scores(conn: Connection, addresses: Iterable[str]) -> dict[str, int]:
    wanted = list(set(addresses))
    if not wanted:
        return {}
    if len(wanted) == 1:  # the request path: one lone member
        score = _SCORE.scalar(conn, {"a": wanted[0]})
        return {} if score is None else {wanted[0]: int(score)}
    rows = conn.execute(
        select(workers.c.address, workers.c.score).where(workers.c.address.in_(wanted))
    )
    return {str(a): int(s) for a, s in rows}


def _lone_member(groups_of: dict[bytes, list[str]], result_hash: bytes) -> str | None:
    members = groups_of.get(result_hash, [])
    return members[0] if len(members) == 1 else None


def winner(
    conn: Connection,
    policy: TrustPolicy,
    task_id: str,
    trust: int,
    committed: Sequence[tuple[bytes, str]],
    weights: dict[str, int],
) -> bytes | None:
    """The winning result hash of (result hash, worker) commitments under the policy."""
    groups = consensus.group_weights(committed, weights)
    win = consensus.winning_group(groups, trust)
    if win is None:
        return None
    groups_of: dict[bytes, list[str]] = {}
    for result_hash, worker in committed:
        groups_of.setdefault(result_hash, []).append(worker)
    lone = _lone_member(groups_of, win)
    if lone is None or policy.lone_ok(task_id, scores(conn, [lone]).get(lone, 0), trust):
        return win
    if not _others_online(conn, [w for _, w in committed]):
        return win  # nobody could add a replica: the hub's rule decides, as it promises
    sizes = consensus.group_sizes(committed)
    return consensus.winning_group(groups, trust, sizes, min_members=2)


def _others_online(conn: Connection, involved: Sequence[str]) -> bool:
    row = conn.execute(
        select(workers.c.address)
        .where(workers.c.online.is_(True), workers.c.address.not_in(list(involved)))
        .limit(1)
    ).first()
    return row is not None


def plan(
    conn: Connection,
    policy: TrustPolicy,
    task_id: str,
    trust: int,
    committed: Sequence[tuple[bytes, str]],
    running: Sequence[str],
    weights: dict[str, int],
) -> tuple[int, int]:
    """(smallest winning group to plan replicas for, members of the heaviest committed
    group): 2 when a lone result would not stand (its worker's score is too low or, once
    committed, the task is audited)."""
    if not committed:
        if len(running) != 1:
            return 1, 1
        # still running: the audit draw stays hidden until the result is committed
        score = scores(conn, running).get(running[0], 0)
        return (1 if consensus.stands_alone(score, trust, policy.lone_score) else 2), 1
    groups = consensus.group_weights(committed, weights)
    sizes = consensus.group_sizes(committed)
    best = max(groups, key=lambda h: groups[h])
    if sizes[best] != 1:
        return 1, sizes[best]
    lone = next(w for h, w in committed if h == best)
    ok = policy.lone_ok(task_id, scores(conn, [lone]).get(lone, 0), trust)
    return (1 if ok else 2), 1


def may_start(conn: Connection, policy: TrustPolicy, trust: int, address: str, score: int) -> bool:
    """Whether `address` may take the first replica of a fresh task: yes when its result
    could stand alone, or when no online worker whose result could is idle. A policy
    with lone_score 0 is the hub's rule alone: anyone may."""
    if policy.lone_score == 0:
        return True
    floor = policy.lone_floor(trust)
    if floor is None or score >= floor:
        return True
    # reputable online workers by (online, score), idle by their running counter; never a
    # scan of the running replicas
    return _IDLE_REPUTABLE.first(conn, {"floor": floor, "me": address}) is None
