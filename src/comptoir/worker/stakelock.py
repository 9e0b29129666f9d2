"""The worker's side of stake locking: keep its escrow balance locked past the final
deadline of the deals it may work on, so its scheduler dispatches to it.

Locked once at start for `lock_horizon_s` (a long lock: one transaction a day rather than
one per task), and extended when the scheduler's 204 names a later lock it needs, with
`lock_margin_s` to spare. A lock is never shortened and lasts at most a year (the hub's
bound, pre-checked): a worker that stops can withdraw once its last lock ends.

Before each commitment the lock is read again from the chain (`confirm`): a rollback deep
enough to drop the lock transaction would otherwise leave the result unpayable (the hub
refuses a winner whose stake is not locked past the deal's final deadline), while the
cached end still said it was locked.
"""

from __future__ import annotations

import threading

import structlog

from comptoir.chain.client import LOCK_MAX_SECONDS, ChainClient
from comptoir.exceptions import TransactionRejected

log = structlog.get_logger("comptoir.worker")

LOCK_MAX_SLACK_S = 600  # stay this far under the hub's one-year bound (blocks move on)
# what a scheduler's 204 may ask is the scheduler's word only: a lock it names further
# ahead than this is refused (a hostile pool would tie the stake up for a year), and an
# extension it asks for reaches half the horizon past its need, so a need that creeps up
# poll after poll costs a lock transaction per half horizon, not one per poll (gas)
LOCK_MAX_AHEAD_S = 90 * 86_400


def lock_target(chain_now: int, needed: int, horizon_s: int, margin_s: int) -> int:
    """Until when to lock: the horizon from now, or what the scheduler needs plus a margin,
    whichever is later, never past the hub's one-year bound."""
    wanted = max(chain_now + horizon_s, needed + margin_s if needed else 0)
    return min(wanted, chain_now + LOCK_MAX_SECONDS - LOCK_MAX_SLACK_S)


class StakeLocker:
    """Locks `chain`'s account's balance (the worker's own key) as far as needed."""

    def __init__(self, chain: ChainClient, horizon_s: int, margin_s: int) -> None:
        self.chain = chain
        self.horizon_s = horizon_s
        self.margin_s = margin_s
        self.locked_until = 0  # as last read or set: locks only grow
        # slots check and extend from several threads: one lock transaction at a time
        self._serial = threading.RLock()

    def ensure(self, needed: int = 0) -> int:
        """Lock until the target if the current lock ends sooner; returns the lock's end.
        Blocking (chain calls): run it in a thread. Raises a ComptoirError when the lock
        transaction cannot be sent (no ether for gas, chain down)."""
        with self._serial:
            return self._ensure(needed)

    def _ensure(self, needed: int) -> int:
        if self.horizon_s <= 0 and not needed:
            return self.locked_until
        if needed and needed <= self.locked_until:
            return self.locked_until
        now = self.chain.timestamp()
        if needed > now + LOCK_MAX_AHEAD_S:
            raise TransactionRejected(
                f"The scheduler asks for the stake locked until {needed}, more than "
                f"{LOCK_MAX_AHEAD_S // 86_400} days ahead; this worker does not lock that long.",
                reason="escrow: lock too long",
            )
        margin = max(self.margin_s, self.horizon_s // 2) if needed else self.margin_s
        target = lock_target(now, needed, self.horizon_s, margin)
        current = self.chain.locked_until()
        # re-lock once half the horizon is spent, not at every call
        if current >= max(needed, now + self.horizon_s // 2):
            self.locked_until = current
            return current
        if needed > target:
            raise TransactionRejected(
                f"The scheduler needs the stake locked until {needed}, past the hub's "
                "one-year bound; this worker cannot take that pool's deals.",
                reason="escrow: lock too long",
            )
        self.chain.lock(target)
        self.locked_until = max(current, target)
        log.info("worker.stake_locked", until=self.locked_until, needed=needed or None)
        return self.locked_until

    def confirm(self, needed: int) -> int:
        """The lock as the chain has it now, locked again until `needed` (and the usual
        margin) when it ends sooner: the cached end may be a lock a rollback dropped.
        Blocking; raises a ComptoirError when the lock transaction cannot be sent."""
        with self._serial:
            current = self.chain.locked_until()
            if current < self.locked_until:
                log.warning("worker.stake_lock_lost", chain=current, expected=self.locked_until)
            self.locked_until = current  # locks only grow, unless the chain went back
            if current >= needed:
                return current
            return self._ensure(needed)
