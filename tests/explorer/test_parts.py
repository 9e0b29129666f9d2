"""The price chart drawing, the parsers behind the filters, failure reasons in words."""

from __future__ import annotations

import re

from comptoir.explorer.chart import MAX_SHOWN, candles_svg, pick_interval
from comptoir.explorer.views import failure_text, parse_tag, tag_labels
from comptoir.market.prices import OHLC


def _bar(start: int, o: int, h: int, low: int, c: int, v: int = 1) -> OHLC:
    return OHLC(start, o, h, low, c, v, 1)


def test_candles_carry_their_figures_and_colour() -> None:
    svg = candles_svg([_bar(0, 10, 14, 8, 12), _bar(60, 12, 13, 5, 6, 4)], 60, "TEST")
    candles = re.findall(r'<g class="candle (up|down)"[^>]*data-close="(\d+)"', svg)
    assert candles == [("up", "12"), ("down", "6")]
    assert 'data-last="6"' in svg and 'role="img"' in svg and "<title" in svg
    # the higher price is drawn higher (smaller y) on the same scale
    wicks = [float(y) for y in re.findall(r'class="wick"[^>]* y1="([\d.]+)"', svg)]
    assert wicks[0] < wicks[1]


def test_empty_and_long_histories() -> None:
    assert "No deal in this category yet" in candles_svg([], 60, "XL")
    many = [_bar(i * 60, 5, 6, 4, 5) for i in range(MAX_SHOWN + 25)]
    svg = candles_svg(many, 60, "TEST")
    assert svg.count('<g class="candle') == MAX_SHOWN
    narrow = candles_svg(many, 60, "TEST", width=400, shown=24, variant="narrow")
    assert narrow.count('<g class="candle') == 24 and 'class="chart narrow"' in narrow


def test_labels_are_escaped() -> None:
    assert "<script>" not in candles_svg([_bar(0, 1, 1, 1, 1)], 60, "<script>x</script>")


def test_interval_fits_the_history() -> None:
    now = 1_000_000.0
    assert pick_interval(None, now) == 60
    assert pick_interval(now - 30 * 60, now) == 60
    assert pick_interval(now - 5 * 3600, now) == 300
    assert pick_interval(now - 6 * 3600, now) == 900
    assert pick_interval(now - 10 * 86400, now) == 4 * 3600


def test_tags() -> None:
    assert parse_tag("gpu") == 2 and parse_tag("TEE, gpu") == 3 and parse_tag("0x4") == 4
    assert parse_tag("") is None and parse_tag("purple") is None and parse_tag("9" * 80) is None
    assert tag_labels("0x" + "0" * 63 + "3") == ["TEE", "GPU"] and tag_labels(8) == ["0x8"]


def test_failure_reasons_in_words() -> None:
    record = {"kind": "comptoir-task-failure", "status": "TIMEOUT", "version": 1}
    assert failure_text({"status": "finalized", "failure": record}) == "TIMEOUT"
    failed = {**record, "status": "APP_FAILED", "exit_code": 3}
    assert failure_text({"failure": failed}) == "APP_FAILED (exit code 3)"
    abandoned = {
        "status": "abandoned",
        "replicas": [{"error": "download: checksum mismatch"}, {"error": None}],
    }
    assert failure_text(abandoned) == "abandoned: download: checksum mismatch"
    assert failure_text({"status": "finalized", "failure": None}) is None
    # a hostile scheduler cannot flood the page
    assert len(failure_text({"failure": {"status": "X" * 10_000}}) or "") == 40
