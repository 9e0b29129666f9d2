"""Wire types of the Market API (pydantic): what clients send and what they get back.

uint256 values are accepted as JSON integers or decimal strings (JavaScript clients cannot
hold 2**256 - 1 in a number) and are always returned as JSON integers; addresses and
bytes32 values are 0x-prefixed hex.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from comptoir.chain.types import (
    AppOrder,
    DatasetOrder,
    RequestOrder,
    WorkerpoolOrder,
    _Struct,
    checksummed,
)

MAX_UINT256 = 2**256 - 1
MAX_PARAMS_BYTES = 512  # String[512] in orders.vy

OrderKind = Literal["app", "dataset", "workerpool", "request"]
OrderStatus = Literal["open", "filled", "cancelled", "dead"]

_HEX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX_BYTES32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_HEX_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")


def parse_uint256(value: Any) -> int:
    """An int or a decimal string in [0, 2**256 - 1]; bools and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be an integer or a decimal string")
    if isinstance(value, str):
        if not value.isascii() or not value.isdigit():
            raise ValueError("must be a non-negative decimal integer")
        value = int(value)
    if not 0 <= value <= MAX_UINT256:
        raise ValueError("must be between 0 and 2**256 - 1")
    return value


def parse_address(value: Any) -> str:
    if not isinstance(value, str) or not _HEX_ADDRESS.match(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    try:
        return checksummed(value)
    except ValueError as e:  # pragma: no cover - the regex already guarantees the shape
        raise ValueError("must be a 0x-prefixed 20-byte hex address") from e


def parse_bytes32(value: Any) -> str:
    if not isinstance(value, str) or not _HEX_BYTES32.match(value):
        raise ValueError("must be 0x followed by 64 hex digits")
    return value.lower()


def parse_signature(value: Any) -> str:
    if not isinstance(value, str) or not _HEX_SIGNATURE.match(value):
        raise ValueError("must be a 65-byte signature as 0x followed by 130 hex digits")
    return value.lower()


def parse_params(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if len(value.encode()) > MAX_PARAMS_BYTES:
        raise ValueError(f"must be at most {MAX_PARAMS_BYTES} bytes of UTF-8")
    return value


_UINT_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "maximum": MAX_UINT256},
        {"type": "string", "pattern": "^[0-9]{1,78}$"},
    ],
    "description": "uint256, as an integer or a decimal string",
}

Uint256 = Annotated[
    int,
    BeforeValidator(parse_uint256),
    WithJsonSchema(_UINT_SCHEMA, mode="validation"),
    WithJsonSchema({"type": "integer", "minimum": 0}, mode="serialization"),
]
_VOLUME_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_UINT256},
        {"type": "string", "pattern": "^0*[1-9][0-9]{0,77}$"},
    ],
    "description": "uint256 of at least 1, as an integer or a decimal string",
}
Volume = Annotated[
    int,
    BeforeValidator(parse_uint256),
    Field(ge=1),
    WithJsonSchema(_VOLUME_SCHEMA, mode="validation"),
    WithJsonSchema({"type": "integer", "minimum": 1}, mode="serialization"),
]
Address = Annotated[
    str,
    BeforeValidator(parse_address),
    WithJsonSchema(
        {"type": "string", "pattern": _HEX_ADDRESS.pattern, "example": "0x" + "ab" * 20}
    ),
]
Bytes32 = Annotated[
    str,
    BeforeValidator(parse_bytes32),
    WithJsonSchema(
        {"type": "string", "pattern": _HEX_BYTES32.pattern, "example": "0x" + "00" * 32}
    ),
]
Signature = Annotated[
    str,
    BeforeValidator(parse_signature),
    WithJsonSchema({"type": "string", "pattern": _HEX_SIGNATURE.pattern}),
]
Params = Annotated[str, BeforeValidator(parse_params), Field(max_length=MAX_PARAMS_BYTES)]
# Unix timestamps as floats (seconds)
Timestamp = Annotated[float, PlainSerializer(float)]


class _OrderModel(BaseModel):
    """Every field is required: the salt and the tag are part of the signed hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_struct(self) -> _Struct:
        cls: type[_Struct] = STRUCTS[type(self)]
        return cls.from_json(self.model_dump())


class AppOrderModel(_OrderModel):
    """An app owner's offer: its app may run at `app_price` per task, `volume` times."""

    app: Uint256
    app_price: Uint256
    volume: Volume
    tag: Bytes32
    dataset_restrict: Uint256
    workerpool_restrict: Uint256
    requester_restrict: Address
    salt: Bytes32


class DatasetOrderModel(_OrderModel):
    """A dataset owner's offer."""

    dataset: Uint256
    dataset_price: Uint256
    volume: Volume
    tag: Bytes32
    app_restrict: Uint256
    workerpool_restrict: Uint256
    requester_restrict: Address
    salt: Bytes32


class WorkerpoolOrderModel(_OrderModel):
    """A workerpool's offer of `volume` tasks of `category` at `trust`, with the `tag` features."""

    workerpool: Uint256
    workerpool_price: Uint256
    volume: Volume
    tag: Bytes32
    category: Uint256
    trust: Uint256
    app_restrict: Uint256
    dataset_restrict: Uint256
    requester_restrict: Address
    salt: Bytes32


class RequestOrderModel(_OrderModel):
    """A requester's demand: run `app` on `dataset` (0: none) on `workerpool` (0: any)."""

    app: Uint256
    app_max_price: Uint256
    dataset: Uint256
    dataset_max_price: Uint256
    workerpool: Uint256
    workerpool_max_price: Uint256
    requester: Address
    volume: Volume
    tag: Bytes32
    category: Uint256
    trust: Uint256
    min_worker_stake: Uint256
    beneficiary: Address
    callback: Address
    params: Params
    salt: Bytes32


STRUCTS: dict[type[_OrderModel], type[_Struct]] = {
    AppOrderModel: AppOrder,
    DatasetOrderModel: DatasetOrder,
    WorkerpoolOrderModel: WorkerpoolOrder,
    RequestOrderModel: RequestOrder,
}
MODELS: dict[str, type[_OrderModel]] = {
    "app": AppOrderModel,
    "dataset": DatasetOrderModel,
    "workerpool": WorkerpoolOrderModel,
    "request": RequestOrderModel,
}
KIND_OF_STRUCT: dict[type[_Struct], str] = {
    AppOrder: "app",
    DatasetOrder: "dataset",
    WorkerpoolOrder: "workerpool",
    RequestOrder: "request",
}

AnyOrder = AppOrderModel | DatasetOrderModel | WorkerpoolOrderModel | RequestOrderModel


# ---------------------------------------------------------------- requests


class _Publish(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signature: Signature = Field(
        description="EIP-712 signature (65 bytes r, s, v) by the order owner."
    )


class PublishApp(_Publish):
    kind: Literal["app"]
    order: AppOrderModel


class PublishDataset(_Publish):
    kind: Literal["dataset"]
    order: DatasetOrderModel


class PublishWorkerpool(_Publish):
    kind: Literal["workerpool"]
    order: WorkerpoolOrderModel


class PublishRequest(_Publish):
    kind: Literal["request"]
    order: RequestOrderModel


PublishBody = Annotated[
    PublishApp | PublishDataset | PublishWorkerpool | PublishRequest,
    Field(discriminator="kind"),
]


class CancelBody(BaseModel):
    """An EIP-191 (personal_sign) signature of `cancel_message(hash, chain_id, hub)`."""

    model_config = ConfigDict(extra="forbid")
    signature: Signature


# ---------------------------------------------------------------- responses


class OrderRecord(BaseModel):
    """A listed order and what the market knows of it."""

    hash: Bytes32 = Field(description="EIP-712 hash of the order, as the hub computes it.")
    kind: OrderKind
    order: AnyOrder
    signature: Signature
    owner: Address = Field(description="Who signed: the asset owner, or the requester.")
    status: OrderStatus
    status_reason: str | None = Field(
        None, description="Why an order is cancelled or dead (e.g. 'cancelled on-chain')."
    )
    volume: Uint256
    remaining: Uint256 = Field(description="Volume not yet consumed on-chain.")
    price: Uint256 = Field(
        description=(
            "Price per task: the asset price, or for a request the most it can pay per task "
            "(the sum of its maxima, each counted at most 2**128 - 1, what a deal can pay)."
        )
    )
    published_at: Timestamp
    updated_at: Timestamp


class OrderPage(BaseModel):
    orders: list[OrderRecord]
    total: int = Field(
        description="Orders matching the filters, over all pages (counted up to 200: "
        "see total_exact)."
    )
    total_exact: bool = Field(
        default=True, description="False when more orders match than `total` says."
    )
    limit: int
    offset: int
    next: str | None = Field(
        default=None,
        description="Pass as `after` for the next page (keyset pagination); null on the last page.",
    )


class BatchItem(BaseModel):
    status: int = Field(description="201 listed, 200 already listed, else why not (4xx).")
    order: OrderRecord | None = None
    detail: str | None = Field(default=None, description="Why it was refused.")


class BatchResult(BaseModel):
    results: list[BatchItem] = Field(description="One per order sent, in the same order.")


class Candle(BaseModel):
    """Workerpool prices of the deals made in [start, start + interval)."""

    start: int = Field(description="Unix time the candle starts at (a multiple of the interval).")
    open: Uint256
    high: Uint256
    low: Uint256
    close: Uint256
    volume: Uint256 = Field(description="Tasks bought (sum of deal volumes).")
    deals: int


class CandleSeries(BaseModel):
    category: Uint256
    interval: int
    candles: list[Candle]


class LatestPrice(BaseModel):
    category: Uint256
    price: Uint256 = Field(description="Workerpool price of the latest deal.")
    timestamp: Timestamp
    deals: int = Field(description="Deals recorded in this category.")


class SyncReport(BaseModel):
    block: int
    checked: int = Field(description="Open orders whose consumed volume was read.")
    updated: int = Field(description="Orders whose status or remaining volume changed.")
    deals: int = Field(description="New deals recorded from DealCreated events.")


class MarketInfo(BaseModel):
    chain_id: int
    hub: Address
    version: str = "v1"


class ErrorBody(BaseModel):
    detail: str
