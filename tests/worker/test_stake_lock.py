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


class _Chain:
    """The chain calls StakeLocker makes, with the lock transactions counted."""

    def __init__(self) -> None:
        self.lock_until = 0
        self.locks: list[int] = []

    def timestamp(self) -> int:
        return NOW

    def locked_until(self) -> int:
        return self.lock_until

    def lock(self, until: int) -> None:
        self.locks.append(until)
        self.lock_until = max(self.lock_until, until)


def test_a_hostile_schedulers_lock_requests_are_bounded() -> None:
    """What a 204 names is the scheduler's word: a lock a year ahead is refused, and a
    need that creeps up at every poll does not cost a lock transaction at every poll."""
    import pytest

    from comptoir.exceptions import TransactionRejected
    from comptoir.worker.stakelock import StakeLocker

    chain = _Chain()
    locker = StakeLocker(chain, DAY, 600)  # type: ignore[arg-type]
    with pytest.raises(TransactionRejected, match="does not lock that long"):
        locker.ensure(NOW + LOCK_MAX_SECONDS - 2 * DAY)
    assert chain.locks == []
    locker.ensure(NOW + 2 * DAY)  # a real need: locked past it
    assert chain.lock_until >= NOW + 2 * DAY + 600
    needed = NOW + 2 * DAY
    for _ in range(1000):  # a need creeping up by more than the margin at every poll
        needed += 601
        locker.ensure(needed)
    assert len(chain.locks) <= 15  # 7 days of creep: one per half horizon, not 1000


def test_a_lock_the_chain_forgot_is_locked_again() -> None:
    """A rollback dropped the lock transaction: the cached end still says locked, the
    chain says not; confirm (before each commitment) trusts the chain and locks again."""
    from comptoir.worker.stakelock import StakeLocker

    chain = _Chain()
    locker = StakeLocker(chain, DAY, 600)  # type: ignore[arg-type]
    locker.ensure()
    assert chain.locks == [NOW + DAY] and locker.locked_until == NOW + DAY
    chain.lock_until = 0  # the rollback
    deadline = NOW + 3600
    assert locker.ensure(deadline) == NOW + DAY  # the cache alone cannot see it
    assert chain.locks == [NOW + DAY]
    assert locker.confirm(deadline) == NOW + DAY
    assert chain.locks == [NOW + DAY, NOW + DAY] and chain.lock_until == NOW + DAY


def test_a_lock_still_on_chain_costs_no_transaction() -> None:
    from comptoir.worker.stakelock import StakeLocker

    chain = _Chain()
    locker = StakeLocker(chain, DAY, 600)  # type: ignore[arg-type]
    locker.ensure()
    for _ in range(3):
        assert locker.confirm(NOW + 3600) == NOW + DAY
    assert chain.locks == [NOW + DAY]
    # a deal whose deadline is past the lock: extended past it (with the margin)
    later = NOW + 2 * DAY
    assert locker.confirm(later) >= later + 600
    assert len(chain.locks) == 2
