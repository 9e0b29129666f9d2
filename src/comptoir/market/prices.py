"""The cloud price index: OHLC candles of workerpool prices of matched deals."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class PricePoint:
    timestamp: float
    price: int
    volume: int


@dataclass(frozen=True)
class OHLC:
    start: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    deals: int


def candles(points: Iterable[PricePoint], interval: int) -> list[OHLC]:
    """Buckets [k*interval, (k+1)*interval) of points taken in time order (ties keep the
    given order); open is the first price of a bucket, close the last. Empty buckets are
    omitted rather than filled, so a quiet category does not invent prices."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    out: list[OHLC] = []
    for p in sorted(points, key=lambda p: p.timestamp):  # sorted() is stable
        start = int(p.timestamp // interval) * interval
        if out and out[-1].start == start:
            c = out[-1]
            out[-1] = OHLC(
                start,
                c.open,
                max(c.high, p.price),
                min(c.low, p.price),
                p.price,
                c.volume + p.volume,
                c.deals + 1,
            )
        else:
            out.append(OHLC(start, p.price, p.price, p.price, p.price, p.volume, 1))
    return out
