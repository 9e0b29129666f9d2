"""What the market reads from the chain, behind a small protocol.

`Web3ChainView` reads the Registry and the Hub over JSON-RPC; `InMemoryChainView` is a
stand-in chain for tests of the API logic, driven by hand.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.types import RPCEndpoint

from comptoir.chain.client import VIEW_BATCH, view_words
from comptoir.chain.types import ZERO_ADDRESS, Deal

KIND_APP, KIND_DATASET, KIND_WORKERPOOL = 1, 2, 3
ASSET_KINDS = {"app": KIND_APP, "dataset": KIND_DATASET, "workerpool": KIND_WORKERPOOL}
CANCELLED = 2**256 - 1  # orders.vy: a cancel sets consumed to max_value(uint256)
_SEL_CONSUMED = function_signature_to_4byte_selector("consumed(bytes32)")
_SEL_BALANCE_OF = function_signature_to_4byte_selector("balance_of(address)")


@runtime_checkable
class ChainView(Protocol):
    """Read-only chain state the order book depends on."""

    async def owner_of(self, asset_id: int) -> str | None:
        """Checksummed owner of a registered asset, None when unknown."""
        ...

    async def kind_of(self, asset_id: int) -> int:
        """1 app, 2 dataset, 3 workerpool, 0 unknown (Registry.kind_of)."""
        ...

    async def consumed(self, order_hash: bytes) -> int:
        """Volume of the order already used by deals; 2**256 - 1 once cancelled on-chain."""
        ...

    async def block_number(self) -> int: ...

    async def balance_of(self, account: str) -> int:
        """The account's free balance on the hub (escrow.balance_of)."""
        ...

    async def consumed_many(self, order_hashes: Sequence[bytes]) -> list[int]:
        """`consumed` of each order, in order (one JSON-RPC batch where the node has one)."""
        ...

    async def balances_of(self, accounts: Sequence[str]) -> list[int]:
        """`balance_of` of each account, in order (batched likewise)."""
        ...


@dataclass(frozen=True)
class DealEvent:
    """What the market needs from a DealCreated event."""

    deal_id: bytes
    category: int
    workerpool_price: int
    volume: int
    timestamp: float
    order_hashes: tuple[bytes, ...] = ()  # app, dataset (if any), workerpool, request
    block: int | None = None


# Returns the deals created in blocks [from_block, to_block].
DealSource = Callable[[int, int], Awaitable[Iterable[DealEvent]]]


class InMemoryChainView:
    """A hand-driven chain: set owners, kinds and consumed volumes, then sync."""

    def __init__(self) -> None:
        self.owners: dict[int, str] = {}
        self.kinds: dict[int, int] = {}
        self.consumed_volumes: dict[bytes, int] = {}
        self.block = 1
        self.deals: list[DealEvent] = []
        self.balances: dict[str, int] = {}

    def register(self, asset_id: int, owner: str, kind: int | str) -> None:
        self.owners[asset_id] = str(to_checksum_address(owner))
        self.kinds[asset_id] = ASSET_KINDS[kind] if isinstance(kind, str) else kind

    def deposit(self, account: str, amount: int) -> None:
        key = str(to_checksum_address(account))
        self.balances[key] = self.balances.get(key, 0) + amount

    def consume(self, order_hash: bytes, volume: int) -> None:
        self.consumed_volumes[order_hash] = self.consumed_volumes.get(order_hash, 0) + volume
        self.block += 1

    def cancel(self, order_hash: bytes) -> None:
        self.consumed_volumes[order_hash] = CANCELLED
        self.block += 1

    def add_deal(self, deal: DealEvent) -> None:
        """Record a deal at a new block and consume the volume of the orders it names."""
        self.block += 1
        self.deals.append(
            DealEvent(
                deal.deal_id,
                deal.category,
                deal.workerpool_price,
                deal.volume,
                deal.timestamp,
                deal.order_hashes,
                self.block,
            )
        )
        for h in deal.order_hashes:
            self.consumed_volumes[h] = self.consumed_volumes.get(h, 0) + deal.volume

    async def deal_source(self, from_block: int, to_block: int) -> list[DealEvent]:
        return [d for d in self.deals if d.block is not None and from_block <= d.block <= to_block]

    async def owner_of(self, asset_id: int) -> str | None:
        return self.owners.get(asset_id)

    async def kind_of(self, asset_id: int) -> int:
        return self.kinds.get(asset_id, 0)

    async def consumed(self, order_hash: bytes) -> int:
        return self.consumed_volumes.get(order_hash, 0)

    async def block_number(self) -> int:
        return self.block

    async def balance_of(self, account: str) -> int:
        return self.balances.get(str(to_checksum_address(account)), 0)

    # one by one through the single reads, so a test that breaks one breaks both
    async def consumed_many(self, order_hashes: Sequence[bytes]) -> list[int]:
        return [await self.consumed(h) for h in order_hashes]

    async def balances_of(self, accounts: Sequence[str]) -> list[int]:
        return [await self.balance_of(a) for a in accounts]


# Minimal ABIs: only the views the market calls, so no build artifact is needed.
REGISTRY_VIEW_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "owner_of",
        "stateMutability": "view",
        "inputs": [{"name": "asset", "type": "uint256"}],
        "outputs": [{"name": "", "type": "address"}],
    },
    {
        "type": "function",
        "name": "kind_of",
        "stateMutability": "view",
        "inputs": [{"name": "asset", "type": "uint256"}],
        "outputs": [{"name": "", "type": "uint8"}],
    },
]
# the Deal tuple layout is the one the chain layer declares (field order = ABI order)
_DEAL_COMPONENTS = [{"name": n, "type": t} for n, t in Deal.EIP712_FIELDS]
HUB_VIEW_ABI: list[dict[str, Any]] = [
    {
        "type": "function",
        "name": "consumed",
        "stateMutability": "view",
        "inputs": [{"name": "arg0", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "function",
        "name": "balance_of",
        "stateMutability": "view",
        "inputs": [{"name": "arg0", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "type": "event",
        "name": "DealCreated",
        "anonymous": False,
        "inputs": [
            {"name": "deal_id", "type": "bytes32", "indexed": True},
            {"name": "workerpool", "type": "uint256", "indexed": True},
            {"name": "requester", "type": "address", "indexed": True},
            {"name": "deal", "type": "tuple", "components": _DEAL_COMPONENTS, "indexed": False},
            {"name": "app", "type": "uint256", "indexed": False},
            {"name": "dataset", "type": "uint256", "indexed": False},
            {"name": "category", "type": "uint256", "indexed": False},
            {"name": "tag", "type": "bytes32", "indexed": False},
            {"name": "beneficiary", "type": "address", "indexed": False},
            {"name": "params", "type": "string", "indexed": False},
            {"name": "app_order_hash", "type": "bytes32", "indexed": False},
            {"name": "dataset_order_hash", "type": "bytes32", "indexed": False},
            {"name": "workerpool_order_hash", "type": "bytes32", "indexed": False},
        ],
    },
]


class Web3ChainView:
    """Reads the Registry and the Hub through an async JSON-RPC client.

    `registry_abi` / `hub_abi` may be the full build artifacts; the defaults hold just the
    views (and the DealCreated event) used here.
    """

    def __init__(
        self,
        rpc_url: str,
        registry: str,
        hub: str,
        registry_abi: Sequence[dict[str, Any]] | None = None,
        hub_abi: Sequence[dict[str, Any]] | None = None,
        max_concurrency: int = 16,
    ) -> None:
        from web3 import AsyncHTTPProvider, AsyncWeb3

        self.w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
        self.registry = self.w3.eth.contract(
            address=to_checksum_address(registry), abi=list(registry_abi or REGISTRY_VIEW_ABI)
        )
        self.hub = self.w3.eth.contract(
            address=to_checksum_address(hub), abi=list(hub_abi or HUB_VIEW_ABI)
        )
        # bounds parallel RPC calls when a sync reads thousands of orders
        self._limit = asyncio.Semaphore(max_concurrency)

    async def close(self) -> None:
        """Closes the HTTP session (the market's lifespan does it on shutdown)."""
        await self.w3.provider.disconnect()

    async def owner_of(self, asset_id: int) -> str | None:
        async with self._limit:
            owner = await self.registry.functions.owner_of(asset_id).call()
        return None if int(owner, 16) == 0 else str(to_checksum_address(owner))

    async def kind_of(self, asset_id: int) -> int:
        async with self._limit:
            return int(await self.registry.functions.kind_of(asset_id).call())

    async def consumed(self, order_hash: bytes) -> int:
        async with self._limit:
            return int(await self.hub.functions.consumed(order_hash).call())

    async def block_number(self) -> int:
        return int(await self.w3.eth.block_number)

    async def balance_of(self, account: str) -> int:
        async with self._limit:
            return int(await self.hub.functions.balance_of(to_checksum_address(account)).call())

    async def consumed_many(self, order_hashes: Sequence[bytes]) -> list[int]:
        words = await self._batch_views(self.hub.address, [_SEL_CONSUMED + h for h in order_hashes])
        return [int.from_bytes(w, "big") for w in words]

    async def balances_of(self, accounts: Sequence[str]) -> list[int]:
        calls = [_SEL_BALANCE_OF + bytes.fromhex(a[2:]).rjust(32, b"\x00") for a in accounts]
        words = await self._batch_views(self.hub.address, calls)
        return [int.from_bytes(w, "big") for w in words]

    async def _batch_views(self, to: str, calls: Sequence[bytes]) -> list[bytes]:
        """`eth_call` of each calldata on `to`, VIEW_BATCH per JSON-RPC batch: a batch
        publish reads a hundred orders in one round trip instead of a hundred."""
        out: list[bytes] = []
        for start in range(0, len(calls), VIEW_BATCH):
            chunk = calls[start : start + VIEW_BATCH]
            requests = [
                (RPCEndpoint("eth_call"), [{"to": to, "data": "0x" + c.hex()}, "latest"])
                for c in chunk
            ]
            async with self._limit:
                answers = await self.w3.provider.make_batch_request(requests)  # type: ignore[attr-defined]
            out += view_words(answers)
        return out

    async def deal_source(self, from_block: int, to_block: int) -> list[DealEvent]:
        """DealCreated events of the hub in [from_block, to_block], timestamped by their block."""
        logs = await self.hub.events.DealCreated.get_logs(from_block=from_block, to_block=to_block)
        times: dict[int, float] = {}
        out: list[DealEvent] = []
        for log in logs:
            number = int(log["blockNumber"])
            if number not in times:
                times[number] = float((await self.w3.eth.get_block(number))["timestamp"])
            args = log["args"]
            deal = args["deal"]
            hashes = [bytes(args["app_order_hash"]), bytes(args["workerpool_order_hash"])]
            if int(args["dataset"]):
                hashes.append(bytes(args["dataset_order_hash"]))
            hashes.append(bytes(deal["request_hash"]))
            out.append(
                DealEvent(
                    deal_id=bytes(args["deal_id"]),
                    category=int(args["category"]),
                    workerpool_price=int(deal["workerpool_price"]),
                    volume=int(deal["volume"]),
                    timestamp=times[number],
                    order_hashes=tuple(hashes),
                    block=number,
                )
            )
        return out


def is_zero_address(address: str | None) -> bool:
    return address is None or int(address, 16) == 0 or address == ZERO_ADDRESS
