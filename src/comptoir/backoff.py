"""Exponential back-off with full jitter, for retrying what a transient fault interrupted.

Many workers retrying a scheduler, a storage server or a chain node that just came back
must not hit it in lockstep: each delay is drawn uniformly in ``[base/2, min(cap, base *
2**attempt)]`` ("full jitter" with a floor, so a retry never spins).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays for successive attempts; `reset` after a success."""

    base_s: float = 0.5
    cap_s: float = 30.0
    attempt: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def next_delay(self) -> float:
        """The delay before the next attempt (and count this one)."""
        high = min(self.cap_s, self.base_s * (2**self.attempt))
        self.attempt += 1
        low = min(self.base_s / 2, high)
        return self._rng.uniform(low, high)

    def reset(self) -> None:
        self.attempt = 0
