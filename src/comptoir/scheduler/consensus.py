"""Credibility arithmetic, identical to the hub's (modules/poco.vy).

A worker of on-chain score s weighs ``w = min(max(s // 3, 3) - 1, 1000)``; a result group
weighs the product of its members' weights; a task reaches consensus on group G when
``G * trust > (1 + sum of all groups) * (trust - 1)``. The scheduler uses the same rule to
decide how many replicas to ask for and when to stop, so what it submits never reverts
for want of credibility (unless scores moved in between, which the finalizer re-checks).

On top of the hub's rule the scheduler applies its own, stricter policy against saboteurs
who farm reputation and then lie (measured by ``bench/trust.py``): a result stands alone
only when its worker's score shows a long clean record (``LONE_SCORE``; the hub wipes a
score on any wrong contribution, so the score is the run of correct replicated ones since
the last), and a lone result that would stand is audited, with probability
``AUDIT_RATE``, by one more replica that nobody can predict (a keyed hash of the task,
drawn after the commitment).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence
from math import prod

MAX_WEIGHT = 1000
DEFAULT_WEIGHT = 2  # weight of a worker with score 0 (any unknown worker)

# The hub's score rules (modules/poco.vy): +1 per correct replicated contribution whose
# deal put at least the hub's score_stake_floor of worker stake at risk (a deployment
# parameter, 1 unit by default); any wrong contribution wipes the score.
SCORE_STAKE_FLOOR = 1

# Scheduler policy. LONE_SCORE: a saboteur that farms its score and then lies alone is
# caught by an audit after about 1 / AUDIT_RATE lies, loses everything and needs
# LONE_SCORE audited contributions to lie alone again, which bounds the wrong results
# it gets through per result it computes (bench/trust.py measures it).
LONE_SCORE = 10_000
AUDIT_RATE = 0.2
AUDIT_SCALE = 2**64


def score_after(
    score: int, won: bool, replicated: bool, worker_stake: int, floor: int = SCORE_STAKE_FLOOR
) -> int:
    """A worker's hub score after a settlement it took part in (same rule as the hub)."""
    if not won:
        return 0
    if replicated and worker_stake >= floor:
        return score + 1
    return score


def stands_alone(score: int, trust: int, lone_score: int = LONE_SCORE) -> bool:
    """Whether one contribution of a worker with this score may decide a task alone."""
    if trust <= 1:
        return True  # the requester asked for no verification
    return score >= lone_score and reached(weight(score), 0, trust)


def audit_drawn(secret: bytes, task_id: bytes, rate: float = AUDIT_RATE) -> bool:
    """Whether a task whose lone result would stand gets one more replica first.

    A keyed hash: the scheduler's secret makes it unpredictable to workers, yet the same
    after a restart. Workers cannot tell an audit replica from any other.
    """
    draw = int.from_bytes(hmac.new(secret, task_id, hashlib.sha256).digest()[:8], "big")
    return draw < int(rate * AUDIT_SCALE)


def weight(score: int) -> int:
    return min(max(score // 3, 3) - 1, MAX_WEIGHT)


def reached(group: int, others: int, trust: int) -> bool:
    """Whether a group of weight `group` wins against rival groups summing to `others`."""
    trust = max(trust, 1)
    return group * trust > (1 + group + others) * (trust - 1)


def group_weights(
    commitments: Iterable[tuple[bytes, str]], weights: Mapping[str, int]
) -> dict[bytes, int]:
    """result hash -> product of its contributors' weights, from (result hash, worker) pairs."""
    groups: dict[bytes, int] = {}
    for result_hash, worker in commitments:
        groups[result_hash] = groups.get(result_hash, 1) * weights.get(worker, DEFAULT_WEIGHT)
    return groups


def group_sizes(commitments: Iterable[tuple[bytes, str]]) -> dict[bytes, int]:
    """result hash -> number of contributors, from (result hash, worker) pairs."""
    sizes: dict[bytes, int] = {}
    for result_hash, _ in commitments:
        sizes[result_hash] = sizes.get(result_hash, 0) + 1
    return sizes


def winning_group(
    groups: Mapping[bytes, int],
    trust: int,
    sizes: Mapping[bytes, int] | None = None,
    min_members: int = 1,
) -> bytes | None:
    """The result hash whose group reached consensus, or None.

    With `sizes`, a group also needs `min_members` contributors (the scheduler's policy:
    2 when a lone result may not stand or is audited).
    """
    total = sum(groups.values())
    for result_hash, g in sorted(groups.items(), key=lambda kv: -kv[1]):
        if sizes is not None and sizes.get(result_hash, 0) < min_members:
            continue
        if reached(g, total - g, trust):
            return result_hash
    return None


def extra_replicas(
    trust: int,
    groups: Mapping[bytes, int],
    committed: int,
    in_flight: Sequence[int],
    candidates: Sequence[int],
    limit: int,
    min_members: int = 1,
    best_members: int = 1,
) -> int:
    """How many more replicas to dispatch so that consensus becomes possible.

    Optimistic: assumes every replica still running, and every new one, agrees with the
    heaviest committed group; new replicas go to the heaviest `candidates` first (then weigh
    DEFAULT_WEIGHT). `committed` counts the committed replicas; `limit` caps the replicas of
    the task (committed + running + new); `min_members` is the smallest group the scheduler
    accepts and `best_members` the size of the heaviest committed group. Returns 0 when the
    running replicas may already suffice.
    """
    best = max(groups.values(), default=1)
    rivals = sum(groups.values()) - (best if groups else 0)
    members = (best_members if groups else 0) + len(in_flight)
    g = best * prod(in_flight)
    extra = 0
    pool = sorted(candidates, reverse=True)
    while not (members >= max(min_members, 1) and reached(g, rivals, trust)):
        if committed + len(in_flight) + extra >= limit:
            break
        w = pool[extra] if extra < len(pool) else DEFAULT_WEIGHT
        g *= w
        members += 1
        extra += 1
    return extra
