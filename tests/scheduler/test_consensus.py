"""Credibility arithmetic: the same numbers as the hub's poco module."""

from __future__ import annotations

import pytest

from comptoir.scheduler.consensus import (
    extra_replicas,
    group_weights,
    reached,
    weight,
    winning_group,
)


@pytest.mark.parametrize(
    ("score", "w"),
    [(0, 2), (2, 2), (3, 2), (11, 2), (12, 3), (15, 4), (3000, 999), (3003, 1000), (10**9, 1000)],
)
def test_weight_matches_the_contract_formula(score: int, w: int) -> None:
    assert weight(score) == w == min(max(score // 3, 3) - 1, 1000)


def test_trust_one_is_met_by_any_lone_contribution() -> None:
    assert reached(1, 0, 1)
    assert reached(2, 100, 1)


@pytest.mark.parametrize(
    ("trust", "fresh_workers_needed"),
    [(1, 1), (2, 1), (3, 2), (4, 2), (5, 3), (8, 3), (9, 4), (16, 4), (17, 5)],
)
def test_fresh_workers_needed_per_trust(trust: int, fresh_workers_needed: int) -> None:
    # fresh workers weigh 2: n agreeing replicas weigh 2**n
    n = next(n for n in range(1, 20) if reached(2**n, 0, trust))
    assert n == fresh_workers_needed
    assert extra_replicas(trust, {}, 0, [], [2] * 10, 16) == fresh_workers_needed


def test_rivals_raise_the_bar() -> None:
    # trust 3: two agreeing fresh workers win alone (12 > 10) but not against a liar
    assert reached(4, 0, 3)
    assert not reached(4, 2, 3)  # 12 > (1 + 4 + 2) * 2 = 14 is false
    assert reached(8, 2, 3)  # 24 > 22


def test_group_weights_multiply_within_a_group() -> None:
    a, b = b"\x01" * 32, b"\x02" * 32
    groups = group_weights([(a, "w1"), (a, "w2"), (b, "w3")], {"w1": 2, "w2": 5, "w3": 3})
    assert groups == {a: 10, b: 3}
    assert winning_group(groups, 2) == a  # 20 > 14
    assert winning_group({a: 2, b: 2}, 3) is None


def test_extra_replicas_counts_running_replicas_as_hopeful() -> None:
    # trust 5 (needs G > 8 * ... i.e. G >= 8 for fresh workers): two running, one more needed
    assert extra_replicas(5, {}, 0, [2, 2], [2, 2], 16) == 1
    # three running already: enough if they agree
    assert extra_replicas(5, {}, 0, [2, 2, 2], [2], 16) == 0
    # one committed group of 2 vs a liar of 2, trust 3: needs G > 6, two more honest
    a, b = b"\x01" * 32, b"\x02" * 32
    assert extra_replicas(3, {a: 2, b: 2}, 2, [], [2, 2, 2], 16) == 2


def test_heavy_workers_mean_fewer_replicas() -> None:
    # trust 5 with a score-30 worker (weight 9): 9 * 5 > 10 * 4 on its own
    assert extra_replicas(5, {}, 0, [], [9, 2, 2], 16) == 1
    assert extra_replicas(5, {}, 0, [], [2, 2, 2], 16) == 3


def test_limit_caps_replicas() -> None:
    assert extra_replicas(10**6, {}, 0, [], [2] * 40, 16) == 16
    assert extra_replicas(10**6, {}, 0, [2] * 15, [2] * 40, 16) == 1
    assert extra_replicas(10**6, {}, 0, [2] * 16, [2] * 40, 16) == 0
