"""Decode the protocol's events, from receipts or from block ranges, into dataclasses.

Every event of the compiled ABIs decodes: the known ones into their own dataclass
(DealCreated carries the full :class:`Deal`), any other into :class:`GenericEvent`.
The decoder works from the ABI alone (eth-abi), so it needs no web3 contract object.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import keccak, to_checksum_address
from web3 import Web3

from comptoir.chain.build import artifacts
from comptoir.chain.types import Deal

# ---------------------------------------------------------------- dataclasses


@dataclass(frozen=True, kw_only=True)
class ChainEvent:
    """Where an event was emitted; subclasses add its arguments."""

    address: str = ""
    block_number: int = 0
    tx_hash: bytes = b""
    log_index: int = 0

    @property
    def event_name(self) -> str:
        return type(self).__name__


@dataclass(frozen=True)
class GenericEvent(ChainEvent):
    event: str = ""
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def event_name(self) -> str:
        return self.event


# hub: escrow
@dataclass(frozen=True)
class Deposit(ChainEvent):
    account: str
    payer: str
    amount: int


@dataclass(frozen=True)
class Withdraw(ChainEvent):
    account: str
    recipient: str
    amount: int


# hub: orders
@dataclass(frozen=True)
class OrderCancelled(ChainEvent):
    order_hash: bytes
    owner: str


@dataclass(frozen=True)
class OrderPresigned(ChainEvent):
    order_hash: bytes
    owner: str


# hub: poco
@dataclass(frozen=True)
class DealCreated(ChainEvent):
    deal_id: bytes
    workerpool: int
    requester: str
    deal: Deal
    app: int
    dataset: int
    category: int
    tag: bytes
    beneficiary: str
    params: str
    app_order_hash: bytes
    dataset_order_hash: bytes
    workerpool_order_hash: bytes


@dataclass(frozen=True)
class TaskFinalized(ChainEvent):
    task_id: bytes
    deal_id: bytes
    index: int
    digest: bytes


@dataclass(frozen=True)
class TaskClaimed(ChainEvent):
    task_id: bytes
    deal_id: bytes
    index: int


@dataclass(frozen=True)
class WorkerRewarded(ChainEvent):
    task_id: bytes
    worker: str
    amount: int


@dataclass(frozen=True)
class WorkerPenalized(ChainEvent):
    task_id: bytes
    worker: str
    seized: int


@dataclass(frozen=True)
class CallbackFailed(ChainEvent):
    task_id: bytes
    callback: str


# contributions
@dataclass(frozen=True)
class Contributed(ChainEvent):
    task_id: bytes
    worker: str
    result_hash: bytes


@dataclass(frozen=True)
class ConsensusReached(ChainEvent):
    task_id: bytes
    result_hash: bytes
    reveal_deadline: int


@dataclass(frozen=True)
class Revealed(ChainEvent):
    task_id: bytes
    worker: str
    digest: bytes


@dataclass(frozen=True)
class Reopened(ChainEvent):
    task_id: bytes


# registry
@dataclass(frozen=True)
class AssetRegistered(ChainEvent):
    asset: int
    kind: int
    owner: str
    name: str
    location: str
    checksum: bytes


@dataclass(frozen=True)
class AssetTransferred(ChainEvent):
    asset: int
    previous_owner: str
    new_owner: str


@dataclass(frozen=True)
class WorkerpoolPolicyUpdated(ChainEvent):
    workerpool: int
    worker_stake_ratio: int
    scheduler_reward_ratio: int


@dataclass(frozen=True)
class CategoryCreated(ChainEvent):
    category: int
    name: str
    time_ref: int


# token
@dataclass(frozen=True)
class Transfer(ChainEvent):
    sender: str
    receiver: str
    value: int


@dataclass(frozen=True)
class Approval(ChainEvent):
    owner: str
    spender: str
    value: int


EVENT_CLASSES: dict[str, type[ChainEvent]] = {
    cls.__name__: cls
    for cls in (
        Deposit,
        Withdraw,
        OrderCancelled,
        OrderPresigned,
        DealCreated,
        TaskFinalized,
        TaskClaimed,
        WorkerRewarded,
        WorkerPenalized,
        CallbackFailed,
        Contributed,
        ConsensusReached,
        Revealed,
        Reopened,
        AssetRegistered,
        AssetTransferred,
        WorkerpoolPolicyUpdated,
        CategoryCreated,
        Transfer,
        Approval,
    )
}

# ---------------------------------------------------------------- ABI decoding


def _abi_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){kind[len('tuple') :]}"
    return kind


@dataclass(frozen=True)
class _EventSpec:
    name: str
    inputs: tuple[dict[str, Any], ...]

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(_abi_type(i) for i in self.inputs)})"

    @property
    def topic(self) -> bytes:
        return keccak(text=self.signature)


@cache
def _specs() -> dict[bytes, _EventSpec]:
    out: dict[bytes, _EventSpec] = {}
    for art in artifacts().values():
        for item in art.abi:
            if item.get("type") == "event":
                spec = _EventSpec(item["name"], tuple(item["inputs"]))
                out[spec.topic] = spec
    return out


def event_topic(name: str) -> bytes:
    """topic0 of an event of the protocol, by name."""
    for topic, spec in _specs().items():
        if spec.name == name:
            return topic
    raise KeyError(name)


def _normalize(value: Any, abi_type: str) -> Any:
    if abi_type == "address":
        return to_checksum_address(value)
    if abi_type.startswith("(") and isinstance(value, tuple):
        return value
    return value


def _as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


def decode_log(log: Any) -> ChainEvent | None:
    """Decode one log entry (a web3 log dict); None when it is not a protocol event."""
    topics = [_as_bytes(t) for t in log["topics"]]
    if not topics:
        return None
    spec = _specs().get(topics[0])
    if spec is None:
        return None
    indexed = [i for i in spec.inputs if i.get("indexed")]
    plain = [i for i in spec.inputs if not i.get("indexed")]
    values: dict[str, Any] = {}
    for param, topic in zip(indexed, topics[1:], strict=True):
        abi_type = _abi_type(param)
        # dynamic indexed values are only their hash; ours are all static
        values[param["name"]] = _normalize(abi_decode([abi_type], topic)[0], abi_type)
    decoded = abi_decode([_abi_type(p) for p in plain], _as_bytes(log["data"]))
    for param, value in zip(plain, decoded, strict=True):
        values[param["name"]] = _normalize(value, _abi_type(param))
    meta: dict[str, Any] = {
        "address": to_checksum_address(log["address"]),
        "block_number": int(log["blockNumber"]),
        "tx_hash": _as_bytes(log["transactionHash"]),
        "log_index": int(log["logIndex"]),
    }
    cls = EVENT_CLASSES.get(spec.name)
    if cls is None:
        return GenericEvent(event=spec.name, args=values, **meta)
    if "deal" in values:
        values["deal"] = Deal(*values["deal"])
        values["deal"] = values["deal"].replace(
            requester=to_checksum_address(values["deal"].requester),
            app_owner=to_checksum_address(values["deal"].app_owner),
            dataset_owner=to_checksum_address(values["deal"].dataset_owner),
            scheduler=to_checksum_address(values["deal"].scheduler),
            callback=to_checksum_address(values["deal"].callback),
        )
    return cls(**values, **meta)


def decode_logs(logs: Iterable[Any]) -> list[ChainEvent]:
    return [e for e in (decode_log(log) for log in logs) if e is not None]


def from_receipt(receipt: Any, kind: type[ChainEvent] | None = None) -> list[Any]:
    """Events of a receipt, optionally only those of one class."""
    events = decode_logs(receipt["logs"])
    return [e for e in events if kind is None or isinstance(e, kind)]


def get_events(
    w3: Web3,
    addresses: str | list[str],
    from_block: int,
    to_block: int | str = "latest",
    kinds: Iterable[type[ChainEvent]] | None = None,
    chunk: int = 10_000,
) -> list[ChainEvent]:
    """Events of the given contracts over a block range, in chain order.

    Queries in chunks of `chunk` blocks because public endpoints cap log ranges.
    """
    if isinstance(addresses, str):
        addresses = [addresses]
    topics: list[Any] = []
    if kinds is not None:
        topics = [["0x" + event_topic(k.__name__).hex() for k in kinds]]
    end = w3.eth.block_number if to_block == "latest" else int(to_block)
    out: list[ChainEvent] = []
    for start in _chunks(from_block, end, chunk):
        params: dict[str, Any] = {
            "address": [to_checksum_address(a) for a in addresses],
            "fromBlock": start[0],
            "toBlock": start[1],
        }
        if topics:
            params["topics"] = topics
        out.extend(decode_logs(w3.eth.get_logs(params)))  # type: ignore[arg-type]
    return out


def _chunks(start: int, end: int, size: int) -> Iterator[tuple[int, int]]:
    while start <= end:
        yield start, min(start + size - 1, end)
        start += size
