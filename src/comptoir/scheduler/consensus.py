"""Credibility arithmetic, identical to the hub's (modules/poco.vy).

A worker of on-chain score s weighs ``w = min(max(s // 3, 3) - 1, 1000)``; a result group
weighs the product of its members' weights; a task reaches consensus on group G when
``G * trust > (1 + sum of all groups) * (trust - 1)``. The scheduler uses the same rule to
decide how many replicas to ask for and when to stop, so what it submits never reverts
for want of credibility (unless scores moved in between, which the finalizer re-checks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from math import prod

MAX_WEIGHT = 1000
DEFAULT_WEIGHT = 2  # weight of a worker with score 0 (any unknown worker)


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


def winning_group(groups: Mapping[bytes, int], trust: int) -> bytes | None:
    """The result hash whose group reached consensus, or None."""
    total = sum(groups.values())
    for result_hash, g in sorted(groups.items(), key=lambda kv: -kv[1]):
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
) -> int:
    """How many more replicas to dispatch so that consensus becomes possible.

    Optimistic: assumes every replica still running, and every new one, agrees with the
    heaviest committed group; new replicas go to the heaviest `candidates` first (then
    weigh DEFAULT_WEIGHT). `committed` counts the committed replicas; `limit` caps the
    replicas of the task (committed + running + new). Returns 0 when the running replicas
    may already suffice.
    """
    best = max(groups.values(), default=1)
    rivals = sum(groups.values()) - (best if groups else 0)
    members = (1 if groups else 0) + len(in_flight)
    g = best * prod(in_flight)
    extra = 0
    pool = sorted(candidates, reverse=True)
    while not (members > 0 and reached(g, rivals, trust)):
        if committed + len(in_flight) + extra >= limit:
            break
        w = pool[extra] if extra < len(pool) else DEFAULT_WEIGHT
        g *= w
        members += 1
        extra += 1
    return extra
