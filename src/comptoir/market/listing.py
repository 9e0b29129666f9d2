"""A page of GET /v1/orders rendered as JSON straight from the stored rows.

Every listed order was validated when it was published and its order JSON stored then, so
a page joins the stored text instead of rebuilding and revalidating a pydantic record per
row (which cost most of a query's CPU). A row is still checked for shape before its text
is embedded: one an older version or a bad migration left unreadable is reported (None)
so the book retires it, and never breaks the page's JSON. The output has the fields and
types of `schemas.OrderPage`; tests hold it to the records GET /v1/orders/{hash} returns.

Takers ask for the same first pages again and again, so the text of recently rendered rows
is kept (`RenderedRecords`), each beside the row it came from: a row is reused only when
every column it is rendered from is equal, so any change to a listing renders it afresh.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from comptoir.market.schemas import MODELS

RENDERED_ROWS = 8192  # rows whose rendered text one market process keeps (~2 KiB each)
FIELDS = {kind: frozenset(model.model_fields) for kind, model in MODELS.items()}
_STATUSES = frozenset(("open", "filled", "cancelled", "dead"))


def _number(padded: Any) -> str | None:
    """A stored zero-padded uint256 as a JSON integer, or None when it is not one."""
    if not isinstance(padded, str) or not padded.isascii() or not padded.isdigit():
        return None
    return padded.lstrip("0") or "0"


def _hex(value: Any) -> str | None:
    """A stored 0x-hex string (hash, signature, address) as a JSON string, or None: letters
    and digits only, so it needs no escaping."""
    if not isinstance(value, str) or not value.startswith("0x") or not value.isascii():
        return None
    return f'"{value}"' if value[2:].isalnum() else None


def _time(value: Any) -> str | None:
    if not isinstance(value, float | int) or not math.isfinite(value):
        return None
    return repr(float(value))


def record_json(row: Any) -> str | None:
    """One row (`store.PAGE_COLUMNS`) as an OrderRecord's JSON, or None when unreadable."""
    fields = FIELDS.get(row.kind)
    if fields is None or row.status not in _STATUSES:
        return None
    try:
        order = json.loads(row.order_json)
    except (TypeError, ValueError):
        return None
    if not isinstance(order, dict) or order.keys() != fields:
        return None
    numbers = [_number(row.volume), _number(row.remaining), _number(row.price)]
    times = [_time(row.published_at), _time(row.updated_at)]
    hexes = [_hex(row.hash), _hex(row.signature), _hex(row.owner)]
    if None in numbers or None in times or None in hexes:
        return None
    volume, remaining, price = numbers
    published_at, updated_at = times
    order_hash, signature, owner = hexes
    reason = "null" if row.status_reason is None else json.dumps(row.status_reason)
    return (
        f'{{"hash":{order_hash},"kind":"{row.kind}","order":{row.order_json},'
        f'"signature":{signature},"owner":{owner},'
        f'"status":"{row.status}","status_reason":{reason},'
        f'"volume":{volume},"remaining":{remaining},"price":{price},'
        f'"published_at":{published_at},"updated_at":{updated_at}}}'
    )


class RenderedRecords:
    """`record_json` behind a bounded cache of rows rendered lately (least recently used
    out first), keyed by order hash and checked against the whole row."""

    def __init__(self, size: int = RENDERED_ROWS) -> None:
        self.size = size
        self._rows: OrderedDict[str, tuple[tuple[Any, ...], str]] = OrderedDict()

    def render(self, row: Any) -> str | None:
        """As `record_json(row)`; `row` is a tuple of `store.PAGE_COLUMNS` (a named one)."""
        key = row.hash
        found = self._rows.get(key)
        if found is not None and found[0] == tuple(row):
            self._rows.move_to_end(key)
            return found[1]
        text = record_json(row)
        if text is None:
            self._rows.pop(key, None)
            return None
        self._rows[key] = (tuple(row), text)
        self._rows.move_to_end(key)
        if len(self._rows) > self.size:
            self._rows.popitem(last=False)
        return text


def page_json(
    records: Sequence[str], total: int, exact: bool, limit: int, offset: int, next_: str | None
) -> bytes:
    """An OrderPage's JSON from rendered records."""
    return (
        f'{{"orders":[{",".join(records)}],"total":{total},'
        f'"total_exact":{"true" if exact else "false"},"limit":{limit},"offset":{offset},'
        f'"next":{json.dumps(next_)}}}'
    ).encode()


def batch_json(results: Sequence[tuple[int, str | None, str | None]]) -> bytes:
    """A BatchResult's JSON from (status, record JSON or None, detail or None) per order."""
    items = [
        f'{{"status":{status},"order":{record or "null"},'
        f'"detail":{"null" if detail is None else json.dumps(detail)}}}'
        for status, record, detail in results
    ]
    return f'{{"results":[{",".join(items)}]}}'.encode()
