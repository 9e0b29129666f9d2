"""Client of the market (order book) API, sync and async (``a``-prefixed twins)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from eth_account.signers.local import LocalAccount

from comptoir.chain.types import ORDER_TYPES, AppOrder, DatasetOrder, RequestOrder, WorkerpoolOrder
from comptoir.chain.types import _Struct as Order
from comptoir.exceptions import ForgedSignature, InvalidOrder, MarketError, OrderNotFound
from comptoir.httpclients import LazyHttpClients

KIND_OF: dict[type[Order], str] = {
    AppOrder: "app",
    DatasetOrder: "dataset",
    WorkerpoolOrder: "workerpool",
    RequestOrder: "request",
}
STRUCT_OF: dict[str, type[Order]] = {v: k for k, v in KIND_OF.items()}
assert set(ORDER_TYPES.values()) == set(KIND_OF)


@dataclass(frozen=True)
class ListedOrder:
    """An order as the market lists it."""

    hash: str
    kind: str
    order: Any  # AppOrder | DatasetOrder | WorkerpoolOrder | RequestOrder
    signature: bytes
    owner: str
    status: str
    remaining: int
    price: int
    volume: int
    published_at: float

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> ListedOrder:
        struct = STRUCT_OF[rec["kind"]]
        return cls(
            hash=str(rec["hash"]),
            kind=str(rec["kind"]),
            order=struct.from_json(rec["order"]),
            signature=bytes.fromhex(str(rec["signature"]).removeprefix("0x")),
            owner=str(rec["owner"]),
            status=str(rec["status"]),
            remaining=int(rec["remaining"]),
            price=int(rec["price"]),
            volume=int(rec["volume"]),
            published_at=float(rec["published_at"]),
        )

    @property
    def asset(self) -> int:
        """The app, dataset or workerpool id (the app for requests)."""
        return int(getattr(self.order, self.kind if self.kind != "request" else "app"))


def _filters(filters: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in filters.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = str(value).lower()
        out[key] = value
    return out


class MarketClient(LazyHttpClients):
    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        super().__init__(base_url=base_url.rstrip("/"), timeout=timeout)
        self.base_url = base_url.rstrip("/")

    @contextmanager
    def _net(self) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPError as exc:
            raise MarketError(
                f"The market API at {self.base_url} is unreachable ({type(exc).__name__}); "
                "start the local stack with 'comptoir devnet up --workers 3' or set "
                "COMPTOIR_MARKET_URL."
            ) from None

    def _check(self, resp: httpx.Response) -> Any:
        if resp.status_code < 400:
            return resp.json()
        try:
            detail = str(resp.json().get("detail", resp.text))
        except ValueError:
            detail = resp.text[:200]
        cls = {404: OrderNotFound, 422: InvalidOrder, 400: ForgedSignature}.get(
            resp.status_code, MarketError
        )
        if resp.status_code == 400 and "signature" not in detail.lower():
            cls = MarketError
        raise cls(detail if detail.endswith(".") else detail + ".")

    @staticmethod
    def _publish_body(order: Order, signature: bytes) -> dict[str, Any]:
        return {
            "kind": KIND_OF[type(order)],
            "order": order.to_json(),
            "signature": "0x" + signature.hex(),
        }

    # ------------------------------------------------------------ sync

    def info(self) -> dict[str, Any]:
        with self._net():
            return dict(self._check(self.http.get("/v1/info")))

    def publish(self, order: Order, signature: bytes) -> ListedOrder:
        with self._net():
            rec = self._check(
                self.http.post("/v1/orders", json=self._publish_body(order, signature))
            )
        return ListedOrder.from_record(rec)

    def orders(self, **filters: Any) -> list[ListedOrder]:
        """Orders matching the API's filters (kind, status, category, app...), cheapest first."""
        with self._net():
            page = self._check(self.http.get("/v1/orders", params=_filters(filters)))
        return [ListedOrder.from_record(r) for r in page["orders"]]

    def get(self, order_hash: str) -> ListedOrder:
        with self._net():
            return ListedOrder.from_record(self._check(self.http.get(f"/v1/orders/{order_hash}")))

    def cancel(
        self, order_hash: str, account: LocalAccount, chain_id: int, hub: str
    ) -> ListedOrder:
        from comptoir.market.orderbook import sign_cancel

        sig = sign_cancel(order_hash, account, chain_id, hub)
        with self._net():
            resp = self.http.request("DELETE", f"/v1/orders/{order_hash}", json={"signature": sig})
            return ListedOrder.from_record(self._check(resp))

    def prices(self) -> list[dict[str, Any]]:
        with self._net():
            return list(self._check(self.http.get("/v1/prices")))

    # ------------------------------------------------------------ async

    async def ainfo(self) -> dict[str, Any]:
        with self._net():
            return dict(self._check(await self.ahttp.get("/v1/info")))

    async def apublish(self, order: Order, signature: bytes) -> ListedOrder:
        with self._net():
            resp = await self.ahttp.post("/v1/orders", json=self._publish_body(order, signature))
            return ListedOrder.from_record(self._check(resp))

    async def aorders(self, **filters: Any) -> list[ListedOrder]:
        with self._net():
            page = self._check(await self.ahttp.get("/v1/orders", params=_filters(filters)))
        return [ListedOrder.from_record(r) for r in page["orders"]]

    # ------------------------------------------------------------ async: one order

    async def aget(self, order_hash: str) -> ListedOrder:
        with self._net():
            resp = await self.ahttp.get(f"/v1/orders/{order_hash}")
            return ListedOrder.from_record(self._check(resp))

    async def acancel(
        self, order_hash: str, account: LocalAccount, chain_id: int, hub: str
    ) -> ListedOrder:
        """Delist an order with its owner's signed cancel message (the hub may still match
        it: cancel it on-chain too, as :meth:`Comptoir.cancel_order` does)."""
        from comptoir.market.orderbook import sign_cancel

        sig = sign_cancel(order_hash, account, chain_id, hub)
        with self._net():
            resp = await self.ahttp.request(
                "DELETE", f"/v1/orders/{order_hash}", json={"signature": sig}
            )
            return ListedOrder.from_record(self._check(resp))
