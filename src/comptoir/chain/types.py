"""Order, deal and contribution types, mirroring the Vyper structs field for field.

Field order matters: it is the ABI tuple order and the EIP-712 member order.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from typing import Any, ClassVar, TypeVar

from eth_abi import encode as abi_encode
from eth_utils import to_checksum_address

from comptoir.chain.hashing import keccak256

ZERO_ADDRESS = "0x" + "00" * 20
ZERO_BYTES32 = b"\x00" * 32

TAG_TEE = 1 << 0
TAG_GPU = 1 << 1

T = TypeVar("T", bound="_Struct")


@lru_cache(maxsize=65_536)
def checksummed(address: str) -> str:
    """EIP-55 form of a hex address (ValueError when it is not one), memoized: each call
    is a keccak, and a market checks the same few thousand signers over and over."""
    return str(to_checksum_address(address))


def random_salt() -> bytes:
    return os.urandom(32)


def tag_bytes(tag: int | bytes) -> bytes:
    """A tag bitmask as the bytes32 the contracts take."""
    return tag if isinstance(tag, bytes) else tag.to_bytes(32, "big")


class _Struct:
    """Shared helpers: ABI tuple, dict round trip."""

    EIP712_FIELDS: ClassVar[tuple[tuple[str, str], ...]] = ()

    def as_tuple(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            out[f.name] = "0x" + value.hex() if isinstance(value, bytes) else value
        return out

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        kwargs: dict[str, Any] = {}
        for f in fields(cls):  # type: ignore[arg-type]
            value = data[f.name]
            kind = dict(cls.EIP712_FIELDS).get(f.name, "")
            if kind == "bytes32" and isinstance(value, str):
                value = bytes.fromhex(value.removeprefix("0x"))
            elif kind == "address" and isinstance(value, str):
                value = checksummed(value)
            elif kind == "uint256":
                value = int(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class AppOrder(_Struct):
    app: int
    app_price: int
    volume: int
    tag: bytes = ZERO_BYTES32
    dataset_restrict: int = 0
    workerpool_restrict: int = 0
    requester_restrict: str = ZERO_ADDRESS
    salt: bytes = field(default_factory=random_salt)

    EIP712_FIELDS = (
        ("app", "uint256"),
        ("app_price", "uint256"),
        ("volume", "uint256"),
        ("tag", "bytes32"),
        ("dataset_restrict", "uint256"),
        ("workerpool_restrict", "uint256"),
        ("requester_restrict", "address"),
        ("salt", "bytes32"),
    )


@dataclass(frozen=True)
class DatasetOrder(_Struct):
    dataset: int
    dataset_price: int
    volume: int
    tag: bytes = ZERO_BYTES32
    app_restrict: int = 0
    workerpool_restrict: int = 0
    requester_restrict: str = ZERO_ADDRESS
    salt: bytes = field(default_factory=random_salt)

    EIP712_FIELDS = (
        ("dataset", "uint256"),
        ("dataset_price", "uint256"),
        ("volume", "uint256"),
        ("tag", "bytes32"),
        ("app_restrict", "uint256"),
        ("workerpool_restrict", "uint256"),
        ("requester_restrict", "address"),
        ("salt", "bytes32"),
    )

    @classmethod
    def none(cls) -> DatasetOrder:
        """The all-zero order passed when a request uses no dataset."""
        return cls(dataset=0, dataset_price=0, volume=0, salt=ZERO_BYTES32)


@dataclass(frozen=True)
class WorkerpoolOrder(_Struct):
    workerpool: int
    workerpool_price: int
    volume: int
    tag: bytes = ZERO_BYTES32
    category: int = 0
    trust: int = 1
    app_restrict: int = 0
    dataset_restrict: int = 0
    requester_restrict: str = ZERO_ADDRESS
    salt: bytes = field(default_factory=random_salt)

    EIP712_FIELDS = (
        ("workerpool", "uint256"),
        ("workerpool_price", "uint256"),
        ("volume", "uint256"),
        ("tag", "bytes32"),
        ("category", "uint256"),
        ("trust", "uint256"),
        ("app_restrict", "uint256"),
        ("dataset_restrict", "uint256"),
        ("requester_restrict", "address"),
        ("salt", "bytes32"),
    )


@dataclass(frozen=True)
class RequestOrder(_Struct):
    app: int
    app_max_price: int
    dataset: int
    dataset_max_price: int
    workerpool: int
    workerpool_max_price: int
    requester: str
    volume: int
    tag: bytes = ZERO_BYTES32
    category: int = 0
    trust: int = 1
    # the least worker stake per contribution the requester accepts (the hub checks the
    # pool's policy at match time): every key that decides a task stakes at least this
    min_worker_stake: int = 0
    beneficiary: str = ZERO_ADDRESS
    callback: str = ZERO_ADDRESS
    params: str = ""
    salt: bytes = field(default_factory=random_salt)

    EIP712_FIELDS = (
        ("app", "uint256"),
        ("app_max_price", "uint256"),
        ("dataset", "uint256"),
        ("dataset_max_price", "uint256"),
        ("workerpool", "uint256"),
        ("workerpool_max_price", "uint256"),
        ("requester", "address"),
        ("volume", "uint256"),
        ("tag", "bytes32"),
        ("category", "uint256"),
        ("trust", "uint256"),
        ("min_worker_stake", "uint256"),
        ("beneficiary", "address"),
        ("callback", "address"),
        ("params", "string"),
        ("salt", "bytes32"),
    )


ORDER_TYPES: dict[str, type[_Struct]] = {
    "AppOrder": AppOrder,
    "DatasetOrder": DatasetOrder,
    "WorkerpoolOrder": WorkerpoolOrder,
    "RequestOrder": RequestOrder,
}

DEAL_ABI_TYPE = (
    "(bytes32,uint256,uint256,address,address,uint256,address,uint256,address,uint256,"
    "uint256,uint256,uint256,uint256,uint256,uint256,address)"
)


@dataclass(frozen=True)
class Deal(_Struct):
    """A deal as the hub commits to it: its id is keccak256(abi_encode(deal))."""

    request_hash: bytes
    first_task: int
    volume: int
    requester: str
    app_owner: str
    app_price: int
    dataset_owner: str
    dataset_price: int
    scheduler: str
    workerpool_price: int
    scheduler_stake: int
    worker_stake: int
    scheduler_reward_ratio: int
    trust: int
    contribution_deadline: int
    final_deadline: int
    callback: str

    EIP712_FIELDS = (
        ("request_hash", "bytes32"),
        ("first_task", "uint256"),
        ("volume", "uint256"),
        ("requester", "address"),
        ("app_owner", "address"),
        ("app_price", "uint256"),
        ("dataset_owner", "address"),
        ("dataset_price", "uint256"),
        ("scheduler", "address"),
        ("workerpool_price", "uint256"),
        ("scheduler_stake", "uint256"),
        ("worker_stake", "uint256"),
        ("scheduler_reward_ratio", "uint256"),
        ("trust", "uint256"),
        ("contribution_deadline", "uint256"),
        ("final_deadline", "uint256"),
        ("callback", "address"),
    )

    @functools.cached_property
    def deal_id(self) -> bytes:
        # cached: a scheduler derives task ids of the same deal thousands of times
        return keccak256(abi_encode([DEAL_ABI_TYPE], [self.as_tuple()]))

    @property
    def task_price(self) -> int:
        return self.app_price + self.dataset_price + self.workerpool_price

    def task_id(self, index: int) -> bytes:
        return task_id(self.deal_id, index)


# The three hashes every commitment and reveal computes are over static ABI types, whose
# encoding is plain concatenation: done by hand, eth_abi's generic encoder was most of
# their cost (tests/chain/test_static_encoding.py holds them equal to it).


def _word32(value: bytes) -> bytes:
    """A bytes32 ABI word: exactly 32 bytes (eth_abi pads shorter values on the right)."""
    if not isinstance(value, bytes | bytearray) or len(value) > 32:
        raise ValueError(f"a bytes32 value is at most 32 bytes, not {value!r:.80}")
    return bytes(value).ljust(32, b"\0")


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address.removeprefix("0x").removeprefix("0X"))
    if len(raw) != 20:
        raise ValueError(f"{address!r:.80} is not a 20-byte address")
    return raw.rjust(32, b"\0")


def task_id(deal_id: bytes, index: int) -> bytes:
    if not 0 <= index < 2**256:
        raise ValueError(f"a task index is a uint256, not {index}")
    return keccak256(_word32(deal_id) + index.to_bytes(32, "big"))


def result_hash(task: bytes, digest: bytes) -> bytes:
    """What a contribution commits to: groups equal results without revealing them."""
    return keccak256(_word32(task) + _word32(digest))


def result_seal(worker: str, task: bytes, digest: bytes) -> bytes:
    """Binds a result to one worker, so nobody can copy another's commitment."""
    return keccak256(_address_word(worker) + _word32(task) + _word32(digest))
