"""The cloud price index as an OHLC candlestick chart with volume, drawn as SVG on the server.

No charting library and no script: the page gets a scalable picture that prints, zooms and
reads without JavaScript, with a title and description for screen readers and one
`<g class="candle">` per interval carrying its figures as data attributes and a tooltip.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from markupsafe import Markup, escape

from comptoir.market.prices import OHLC

# candle lengths offered, seconds; `pick_interval` chooses one that fits the history
INTERVALS = (60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)
INTERVAL_NAMES = {60: "1m", 300: "5m", 900: "15m", 3600: "1h", 14400: "4h", 86400: "1d"}
INTERVAL_NAMES[7 * 86400] = "1w"
MAX_SHOWN = 60


def pick_interval(first: float | None, now: float | None = None) -> int:
    """The shortest candle length that shows the whole history in at most MAX_SHOWN candles."""
    if first is None:
        return INTERVALS[0]
    span = max((now or time.time()) - first, 1.0)
    for interval in INTERVALS:
        if span / interval <= MAX_SHOWN:
            return interval
    return INTERVALS[-1]


def _ticks(low: int, high: int, count: int = 4) -> list[int]:
    """Round price levels spanning [low, high]."""
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    step = max(int(step), 1)
    first = (low // step) * step
    return [v for v in range(first, high + step, step) if low <= v <= high] or [low]


def _clock(ts: int, interval: int) -> str:
    fmt = "%H:%M" if interval < 86400 else "%d %b"
    return time.strftime(fmt, time.gmtime(ts))


def candles_svg(
    bars: Sequence[OHLC],
    interval: int,
    label: str,
    width: int = 760,
    height: int = 320,
    shown: int = MAX_SHOWN,
    variant: str = "wide",
) -> Markup:
    """The chart of the latest `shown` of `bars` (oldest first); an empty chart says there
    is no deal yet. `variant` names the layout (a phone gets a narrower picture with fewer
    candles, so its text stays legible)."""
    bars = list(bars)[-shown:]
    title = f"Price index, {label}: price per task by {INTERVAL_NAMES.get(interval, interval)}"
    ident = f"chart-{variant}"
    left, right, top = 48, 52, 16
    price_h = int(height * 0.66)
    vol_top = top + price_h + 22
    vol_h = height - vol_top - 24
    plot_w = width - left - right
    parts: list[str] = [
        f'<svg class="chart {variant}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" preserveAspectRatio="xMidYMid meet" '
        f'data-interval="{interval}" data-candles="{len(bars)}">',
        f'<title id="{ident}-title">{escape(title)}</title>',
    ]
    if not bars:
        parts.append(f'<desc id="{ident}-desc">No deal was matched in this category yet.</desc>')
        parts.append(
            f'<text class="empty" x="{width / 2}" y="{height / 2}" text-anchor="middle">'
            "No deal in this category yet</text></svg>"
        )
        return Markup("".join(parts))
    last = bars[-1]
    lo, hi = min(b.low for b in bars), max(b.high for b in bars)
    pad = max((hi - lo) // 10, 1)
    lo, hi = max(lo - pad, 0), hi + pad
    vmax = max(b.volume for b in bars) or 1

    def y(price: int) -> float:
        return top + price_h - (price - lo) / (hi - lo) * price_h

    parts.append(
        f'<desc id="{ident}-desc">{len(bars)} candles; last close {last.close}, '
        f"high {max(b.high for b in bars)}, low {min(b.low for b in bars)}, "
        f"{sum(b.volume for b in bars)} tasks bought.</desc>"
    )
    for level in _ticks(lo, hi):
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(level):.1f}" '
            f'y2="{y(level):.1f}"/><text class="axis" x="{left - 8}" y="{y(level) + 4:.1f}" '
            f'text-anchor="end">{level}</text>'
        )
    slot = plot_w / max(len(bars), min(shown, 24))  # a short history keeps candles slim
    body_w = max(min(slot * 0.6, 18), 3)
    x0 = left + plot_w - slot * len(bars)  # newest candle at the right edge
    labelled = max(len(bars) // (6 if variant == "wide" else 3), 1)
    last_label = -1e9  # x of the last time label drawn: labels never overlap
    for i, b in enumerate(bars):
        cx = x0 + slot * (i + 0.5)
        up = b.close >= b.open
        y_open, y_close = y(b.open), y(b.close)
        body_top, body_h = min(y_open, y_close), max(abs(y_open - y_close), 3.0)
        vh = b.volume / vmax * vol_h
        tip = (
            f"{_clock(b.start, interval)} UTC — open {b.open}, high {b.high}, low {b.low}, "
            f"close {b.close}; {b.volume} tasks in {b.deals} deal(s)"
        )
        parts.append(
            f'<g class="candle {"up" if up else "down"}" tabindex="0" data-start="{b.start}" '
            f'data-open="{b.open}" data-high="{b.high}" data-low="{b.low}" '
            f'data-close="{b.close}" data-volume="{b.volume}" aria-label="{escape(tip)}">'
            f"<title>{escape(tip)}</title>"
            f'<line class="wick" x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(b.high):.1f}" '
            f'y2="{y(b.low):.1f}"/>'
            f'<rect class="body" x="{cx - body_w / 2:.1f}" y="{body_top:.1f}" '
            f'width="{body_w:.1f}" height="{body_h:.1f}" rx="1"/>'
            f'<rect class="vol" x="{cx - body_w / 2:.1f}" y="{vol_top + vol_h - vh:.1f}" '
            f'width="{body_w:.1f}" height="{max(vh, 1):.1f}"/></g>'
        )
        if cx - last_label >= 48 and (i % labelled == 0 or i == len(bars) - 1):
            last_label = cx
            parts.append(
                f'<text class="axis" x="{cx:.1f}" y="{height - 6}" text-anchor="middle">'
                f"{_clock(b.start, interval)}</text>"
            )
    ly = y(last.close)
    tag_w = right - 6
    parts.append(
        f'<line class="last" x1="{left}" x2="{width - right}" y1="{ly:.1f}" y2="{ly:.1f}"/>'
        f'<rect class="last-tag" x="{width - right + 2}" y="{ly - 9:.1f}" width="{tag_w}" '
        f'height="18" rx="3"/><text class="last-label" x="{width - right + 2 + tag_w / 2:.1f}" '
        f'y="{ly + 4:.1f}" text-anchor="middle" data-last="{last.close}">{last.close}</text>'
        f'<text class="axis" x="{left - 8}" y="{vol_top + 10}" text-anchor="end">vol</text>'
        f'<text class="axis" x="{left - 8}" y="{vol_top + vol_h}" text-anchor="end">{vmax}'
        "</text></svg>"
    )
    return Markup("".join(parts))
