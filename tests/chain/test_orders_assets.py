"""Order cancellation, presigning, partial fills and asset transfer through the client."""

from __future__ import annotations

import pytest

from comptoir.chain.types import DatasetOrder
from comptoir.exceptions import TransactionRejected

from .conftest import APP_PRICE, Market


def test_presigned_request_matches_without_signature(market: Market) -> None:
    app_order, pool_order, request = market.orders()
    market["requester"].presign_order(request)
    assert market["stranger"].is_presigned(request)
    deal = market["stranger"].match_orders(
        app_order,
        market["app_dev"].sign_order(app_order),
        DatasetOrder.none(),
        b"",
        pool_order,
        market["scheduler"].sign_order(pool_order),
        request,
        b"",
    )
    assert deal.requester == market["requester"].address


def test_cancelled_order_cannot_be_matched(market: Market) -> None:
    app_order, pool_order, request = market.orders()
    market["app_dev"].cancel_order(app_order)
    assert market["stranger"].remaining(app_order) == 0
    with pytest.raises(TransactionRejected) as info:
        market["stranger"].match_orders(
            app_order,
            market["app_dev"].sign_order(app_order),
            None,
            b"",
            pool_order,
            market["scheduler"].sign_order(pool_order),
            request,
            market["requester"].sign_order(request),
        )
    assert info.value.reason == "poco: an order is cancelled or fully consumed"
    with pytest.raises(TransactionRejected) as info:
        market["stranger"].cancel_order(pool_order)  # not the pool's owner
    assert info.value.reason == "orders: caller is not the order owner"


def test_partial_fills_and_asset_transfer(market: Market) -> None:
    app_order, pool_order, request = market.orders(volume=5)
    sigs = [
        market[r].sign_order(o)
        for r, o in (("app_dev", app_order), ("scheduler", pool_order), ("requester", request))
    ]
    small = request.replace(volume=2, salt=b"\x05" * 32)
    first = market["stranger"].match_orders(
        app_order,
        sigs[0],
        None,
        b"",
        pool_order,
        sigs[1],
        small,
        market["requester"].sign_order(small),
    )
    assert first.volume == 2 and market["stranger"].remaining(app_order) == 3

    market["app_dev"].transfer_asset(market.app, market["stranger"].address)
    assert market["stranger"].asset(market.app).owner == market["stranger"].address
    # the app order was signed by the previous owner: no longer valid
    with pytest.raises(TransactionRejected) as info:
        market["requester"].match_orders(
            app_order, sigs[0], None, b"", pool_order, sigs[1], request, sigs[2]
        )
    assert info.value.reason == "poco: invalid app order signature"
    new_app_order = app_order.replace(salt=b"\x06" * 32)
    second = market["requester"].match_orders(
        new_app_order,
        market["stranger"].sign_order(new_app_order),
        None,
        b"",
        pool_order,
        sigs[1],
        request,
        sigs[2],
    )
    assert second.volume == 3 and second.app_owner == market["stranger"].address
    assert second.app_price == APP_PRICE
