"""GET /v1/orders renders its page from the stored rows (market/listing.py): it must say
exactly what the pydantic records of GET /v1/orders/{hash} say, in OrderPage's schema, and
a row it cannot render is retired instead of breaking the page."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select, update

from comptoir.market.schemas import MAX_UINT256, OrderPage
from comptoir.market.store import orders as orders_table

from .support import app_order, dataset_order, pool_order, publish, request_order

CAP = 2**128 - 1  # the largest price the hub matches


async def test_the_page_says_what_each_record_says(client: httpx.AsyncClient) -> None:
    listed = [
        await publish(client, app_order(app_price=CAP, volume=MAX_UINT256)),
        await publish(client, dataset_order(dataset_price=0)),
        await publish(client, pool_order(workerpool_price=7, trust=MAX_UINT256, tag=b"\x01" * 32)),
        await publish(
            client,
            request_order(app_max_price=MAX_UINT256, params='{"args": "a \\"quoted\\" é"}'),
        ),
    ]
    r = await client.get("/v1/orders", params={"status": "any", "limit": 3})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    page = OrderPage.model_validate_json(r.content)  # the schema the OpenAPI document gives
    assert (page.total, page.total_exact, page.limit, page.offset) == (4, True, 3, 0)
    rest = (await client.get("/v1/orders", params={"status": "any", "after": page.next})).json()
    rendered = r.json()["orders"] + rest["orders"]
    assert sorted(o["hash"] for o in rendered) == sorted(o["hash"] for o in listed)
    assert rest["next"] is None and len(rest["orders"]) == 1
    for order in rendered:
        one = (await client.get(f"/v1/orders/{order['hash']}")).json()
        assert order == one


@pytest.mark.parametrize(
    "column, value",
    [
        ("remaining", "12a"),
        ("kind", "nonsense"),
        ("order_json", "[1, 2]"),
        ("signature", '0x"}'),
        ("published_at", None),
    ],
)
@pytest.mark.parametrize("listed_before", [False, True], ids=["fresh", "rendered-before"])
async def test_a_row_the_page_cannot_render_is_retired(
    client: httpx.AsyncClient, column: str, value: object, listed_before: bool
) -> None:
    good = await publish(client, app_order())
    bad = await publish(client, app_order(app_price=6))
    if listed_before:  # its good text is kept now: the broken row must not reuse it
        assert len((await client.get("/v1/orders")).json()["orders"]) == 2
    store = client.app.state.market.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # as an older version or a bad migration left it
        if column == "published_at":  # NOT NULL (and SQLite stores NaN as NULL)
            value = float("inf")
        conn.execute(
            update(orders_table).where(orders_table.c.hash == bad["hash"]).values(**{column: value})
        )
    r = await client.get("/v1/orders")
    assert r.status_code == 200
    page = r.json()
    assert [o["hash"] for o in page["orders"]] == [good["hash"]] and page["total"] == 1
    with store.engine.connect() as conn:
        raw = conn.execute(
            select(orders_table.c.status, orders_table.c.status_reason).where(
                orders_table.c.hash == bad["hash"]
            )
        ).one()
    assert tuple(raw) == ("dead", "unreadable listing")


async def test_a_listing_changed_after_a_page_showed_it_shows_its_new_values(
    client: httpx.AsyncClient,
) -> None:
    listed = await publish(client, app_order(volume=9))
    assert (await client.get("/v1/orders")).json()["orders"][0]["remaining"] == 9
    store = client.app.state.market.store  # type: ignore[attr-defined]
    with store.engine.begin() as conn:  # another market process of the same book
        conn.execute(
            update(orders_table)
            .where(orders_table.c.hash == listed["hash"])
            .values(remaining="0" * 77 + "4")  # updated_at left as it was
        )
    page = (await client.get("/v1/orders")).json()
    assert page["orders"][0]["remaining"] == 4
    assert page["orders"][0] == (await client.get(f"/v1/orders/{listed['hash']}")).json()


def test_the_rendered_rows_kept_are_bounded_and_checked_against_the_whole_row() -> None:
    from collections import namedtuple

    from comptoir.market.listing import RenderedRecords, record_json
    from comptoir.market.store import PAGE_COLUMNS

    Row = namedtuple("Row", PAGE_COLUMNS)  # type: ignore[misc]
    order_json = json.dumps(app_order().to_json())

    def row(n: int, remaining: int = 5) -> Row:
        return Row(
            hash=f"0x{n:064x}",
            kind="app",
            order_json=order_json,
            signature="0x" + "ab" * 65,
            owner="0x" + "cd" * 20,
            status="open",
            status_reason=None,
            volume=f"{5:078d}",
            remaining=f"{remaining:078d}",
            price=f"{3:078d}",
            published_at=1.0,
            updated_at=1.0,
        )

    kept = RenderedRecords(size=2)
    texts = [kept.render(row(n)) for n in range(3)]
    assert texts == [record_json(row(n)) for n in range(3)] and None not in texts
    assert len(kept._rows) == 2 and f"0x{0:064x}" not in kept._rows  # oldest out
    changed = kept.render(row(2, remaining=1))
    assert changed is not None and '"remaining":1,' in changed and changed != texts[2]
