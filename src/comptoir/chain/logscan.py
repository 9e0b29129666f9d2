"""eth_getLogs as real providers allow it: bounded ranges, adaptive on refusals, resumable.

- :func:`get_logs` splits a block range into chunks of at most ``max_range`` blocks and,
  when a provider refuses a chunk as too large (each names it its own way), halves the
  chunk and retries, down to one block.
- :class:`LogCache` keeps the logs of one query on disk up to the last *final* block (head
  minus the network's confirmation depth) with that block's hash: the next scan only reads
  the blocks after it, and a changed hash (a reorg deeper than the depth) drops the cache
  and rescans rather than serve logs the chain no longer holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from comptoir.exceptions import ChainError

DEFAULT_MAX_RANGE = 10_000
# How providers say a range or its result is too large (Alchemy, Infura, QuickNode, geth...).
_TOO_LARGE = (
    "block range",
    "range too large",
    "range is too large",
    "exceed",
    "too many",
    "more than",
    "limit",
    "-32005",
    "response size",
    "query timeout",
)
CACHE_FORMAT = 1
MAX_CACHED_LOGS = 200_000  # past this a query is not cached (the index's job, not a file's)


@dataclass(frozen=True)
class ScanPolicy:
    """How one network wants its logs read."""

    max_range: int = DEFAULT_MAX_RANGE
    confirmations: int = 0
    cache_dir: Path | None = None  # None: no on-disk cache
    index_url: str | None = None  # the network's market, whose index the SDK reads first


def _too_large(exc: Exception) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _TOO_LARGE)


def get_logs(
    w3: Web3,
    params: dict[str, Any],
    start: int,
    end: int,
    max_range: int = DEFAULT_MAX_RANGE,
    on_chunk: Callable[[int, int], None] | None = None,
) -> list[Any]:
    """Logs matching `params` (address, topics) over [start, end], in chunks."""
    out: list[Any] = []
    size = max(1, max_range)
    a = start
    while a <= end:
        b = min(a + size - 1, end)
        try:
            out.extend(w3.eth.get_logs({**params, "fromBlock": a, "toBlock": b}))  # type: ignore[typeddict-item]
        except Exception as exc:
            if size > 1 and _too_large(exc):
                size = max(1, size // 2)  # the provider's cap is lower than ours: halve
                continue
            raise ChainError(
                f"The node refused eth_getLogs for blocks {a}-{b} ({exc}); lower the "
                "network's log_range ('comptoir network add ... --log-range N --replace')."
            ) from None
        if on_chunk is not None:
            on_chunk(a, b)
        a = b + 1
    return out


def _to_json(log: Any) -> dict[str, Any]:
    return {
        "address": str(log["address"]),
        "topics": [HexBytes(t).hex() for t in log["topics"]],
        "data": HexBytes(log["data"]).hex(),
        "blockNumber": int(log["blockNumber"]),
        "transactionHash": HexBytes(log["transactionHash"]).hex(),
        "logIndex": int(log["logIndex"]),
    }


def _from_json(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "address": data["address"],
        "topics": [HexBytes(t) for t in data["topics"]],
        "data": HexBytes(data["data"]),
        "blockNumber": data["blockNumber"],
        "transactionHash": HexBytes(data["transactionHash"]),
        "logIndex": data["logIndex"],
    }


class LogCache:
    """The logs of one (chain, address, topics) query, kept up to the last final block."""

    def __init__(self, folder: Path, chain_id: int, params: dict[str, Any]) -> None:
        key = json.dumps({"chain": chain_id, **params}, sort_keys=True, default=str)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        self.path = folder / f"{chain_id}-{digest}.json"

    def load(self) -> tuple[int, str, list[dict[str, Any]]] | None:
        try:
            data = json.loads(self.path.read_text())
            if data.get("format") != CACHE_FORMAT:
                return None
            return int(data["to_block"]), str(data["block_hash"]), list(data["logs"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            return None

    def save(self, to_block: int, block_hash: str, logs: list[dict[str, Any]]) -> None:
        if len(logs) > MAX_CACHED_LOGS:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            payload = {"format": CACHE_FORMAT, "to_block": to_block, "block_hash": block_hash}
            json.dump({**payload, "logs": logs}, fh)
        os.replace(tmp, self.path)


def _block_hash(w3: Web3, number: int) -> str:
    return HexBytes(w3.eth.get_block(number)["hash"]).hex()


def scan(
    w3: Web3,
    address: str | list[str],
    topics: list[Any],
    start: int,
    end: int,
    policy: ScanPolicy,
    head: int | None = None,
) -> list[Any]:
    """Logs over [start, end]: the final part from the cache (extended), the rest fresh."""
    addresses = address if isinstance(address, list) else [address]
    params: dict[str, Any] = {"address": [to_checksum_address(a) for a in addresses]}
    if topics:
        params["topics"] = topics
    if policy.cache_dir is None or start > end:
        return get_logs(w3, params, start, end, policy.max_range)
    head = int(w3.eth.block_number) if head is None else head
    final = min(end, head - policy.confirmations)
    cache = LogCache(policy.cache_dir, int(w3.eth.chain_id), {**params, "start": start})
    cached = cache.load()
    logs: list[dict[str, Any]] = []
    resume = start
    if cached is not None:
        to_block, block_hash, entries = cached
        if to_block <= final and _block_hash(w3, to_block) == block_hash:
            logs, resume = entries, to_block + 1
        # else: the chain went back or changed below the cached point: rescan it all
    if final >= resume:
        logs += [_to_json(log) for log in get_logs(w3, params, resume, final, policy.max_range)]
    if final >= start:
        cache.save(final, _block_hash(w3, final), logs)
    out = [_from_json(entry) for entry in logs if entry["blockNumber"] <= end]
    if end > final:  # not final yet: read fresh every time, never cached
        out += get_logs(w3, params, max(final + 1, start), end, policy.max_range)
    return out
