"""The cloud price index: OHLC candles, known series and properties."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.market.prices import OHLC, PricePoint, candles


def test_known_series() -> None:
    points = [
        PricePoint(0, 10, 1),
        PricePoint(10, 14, 2),
        PricePoint(20, 8, 1),
        PricePoint(59, 12, 3),
        PricePoint(60, 20, 1),
        PricePoint(200, 5, 4),
        PricePoint(200, 7, 1),  # same second: given order kept
    ]
    assert candles(points, 60) == [
        OHLC(start=0, open=10, high=14, low=8, close=12, volume=7, deals=4),
        OHLC(start=60, open=20, high=20, low=20, close=20, volume=1, deals=1),
        OHLC(start=180, open=5, high=7, low=5, close=7, volume=5, deals=2),
    ]
    assert candles([], 60) == []


point = st.builds(
    PricePoint,
    timestamp=st.integers(0, 10**6).map(float),
    price=st.integers(0, 2**256 - 1),
    volume=st.integers(1, 2**64),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(point, max_size=60), st.integers(1, 10**5))
def test_candle_properties(points: list[PricePoint], interval: int) -> None:
    out = candles(points, interval)
    assert sum(c.volume for c in out) == sum(p.volume for p in points)
    assert sum(c.deals for c in out) == len(points)
    assert [c.start for c in out] == sorted(
        {int(p.timestamp // interval) * interval for p in points}
    )
    for c in out:
        inside = [p for p in points if c.start <= p.timestamp < c.start + interval]
        assert c.high >= max(c.open, c.close) and c.low <= min(c.open, c.close)
        assert (c.high, c.low) == (max(p.price for p in inside), min(p.price for p in inside))
        ordered = sorted(inside, key=lambda p: p.timestamp)
        assert (c.open, c.close) == (ordered[0].price, ordered[-1].price)


async def test_candles_endpoint(client: httpx.AsyncClient) -> None:
    market = client.app.state.market  # type: ignore[attr-defined]
    for ts, price, volume in [(3600, 10, 1), (3700, 30, 2), (5000, 20, 1), (7300, 25, 5)]:
        assert await market.record_deal(category=1, price=price, volume=volume, timestamp=ts)
    await market.record_deal(category=2, price=999, volume=1, timestamp=3600)
    r = await client.get("/v1/prices/1", params={"interval": 3600})
    assert r.status_code == 200
    assert r.json() == {
        "category": 1,
        "interval": 3600,
        "candles": [
            {
                "start": 3600,
                "open": 10,
                "high": 30,
                "low": 10,
                "close": 20,
                "volume": 4,
                "deals": 3,
            },
            {
                "start": 7200,
                "open": 25,
                "high": 25,
                "low": 25,
                "close": 25,
                "volume": 5,
                "deals": 1,
            },
        ],
    }
    ranged = await client.get("/v1/prices/1", params={"interval": 60, "start": 3700, "end": 7200})
    assert [c["start"] for c in ranged.json()["candles"]] == [3660, 4980]
    assert (await client.get("/v1/prices/3")).json()["candles"] == []
    assert (await client.get("/v1/prices/1", params={"interval": 0})).status_code == 422
    latest = (await client.get("/v1/prices")).json()
    assert latest == [
        {"category": 1, "price": 25, "timestamp": 7300.0, "deals": 4},
        {"category": 2, "price": 999, "timestamp": 3600.0, "deals": 1},
    ]


async def test_replayed_deal_counted_once(client: httpx.AsyncClient) -> None:
    book = client.app.state.market.book  # type: ignore[attr-defined]
    assert await book.record_deal(1, 10, 1, 100.0, deal_id=b"\x02" * 32)
    assert not await book.record_deal(1, 10, 1, 100.0, deal_id=b"\x02" * 32)
    assert (await client.get("/v1/prices/1")).json()["candles"][0]["deals"] == 1
