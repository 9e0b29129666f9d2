"""Until when the worker agent locks its stake (worker/stakelock.py)."""

from __future__ import annotations

from comptoir.chain.client import LOCK_MAX_SECONDS
from comptoir.worker.stakelock import LOCK_MAX_SLACK_S, lock_target

NOW = 1_000_000
DAY = 86_400


def test_the_horizon_ahead_when_the_pool_needs_less() -> None:
    assert lock_target(NOW, 0, DAY, 600) == NOW + DAY
    assert lock_target(NOW, NOW + 3600, DAY, 600) == NOW + DAY


def test_what_the_pool_needs_plus_the_margin_when_it_is_later() -> None:
    needed = NOW + 3 * DAY
    assert lock_target(NOW, needed, DAY, 600) == needed + 600
    assert lock_target(NOW, needed, 0, 0) == needed  # no horizon: exactly as asked


def test_never_past_the_hubs_one_year_bound() -> None:
    cap = NOW + LOCK_MAX_SECONDS - LOCK_MAX_SLACK_S
    assert lock_target(NOW, NOW + 2 * LOCK_MAX_SECONDS, DAY, 600) == cap
    assert lock_target(NOW, 0, 2 * LOCK_MAX_SECONDS, 0) == cap
