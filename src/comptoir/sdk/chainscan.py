"""Blocking chain reads the SDK needs beyond ChainClient: finding deals, settled tasks,
assets by name, and what an account has locked in deals.

When the network has a market (its scan policy's `index_url`), deals, settlements and
assets come from the market's index up to its final block, and only the newer blocks'
logs are read; without one, or when the index fails, everything comes from event logs.
What decides money or verification is checked on the chain either way (`still_settled`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import structlog
from eth_utils import to_checksum_address
from web3.exceptions import TransactionNotFound

from comptoir.chain import events as ev
from comptoir.chain import logscan
from comptoir.chain.client import KIND_APP, KIND_DATASET, KIND_WORKERPOOL, ChainClient
from comptoir.exceptions import ConfigError, IndexUnavailable, UnknownNameError
from comptoir.sdk.netindex import NetworkIndex

log = structlog.get_logger("comptoir.sdk.chainscan")

KIND_NAMES = {KIND_APP: "app", KIND_DATASET: "dataset", KIND_WORKERPOOL: "workerpool"}
KIND_IDS = {v: k for k, v in KIND_NAMES.items()}


def _topic(name: str) -> str:
    return "0x" + ev.event_topic(name).hex()


def _b32(value: bytes | str) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return "0x" + value.lower().removeprefix("0x").rjust(64, "0")


def logs(
    client: ChainClient,
    topics: list[Any],
    from_block: int | None = None,
    to_block: int | str = "latest",
    address: str | None = None,
    cache: bool = False,
) -> list[ev.ChainEvent]:
    """Decoded hub (or `address`) events matching `topics`, read as the network's scan
    policy says: bounded, adaptive ranges; with `cache` (queries that every command repeats
    from the deployment block), what is final at its depth is kept on disk."""
    start = client.deployment.block if from_block is None else max(from_block, 0)
    head = client.block_number()
    end = head if to_block == "latest" else int(to_block)
    policy = client.scan_policy
    if not cache or from_block is not None:
        policy = dataclasses.replace(policy, cache_dir=None)
    target = address or client.deployment.hub
    raw = logscan.scan(client.w3, target, topics, start, end, policy, head)
    return ev.decode_logs(raw)


def network_index(client: ChainClient) -> NetworkIndex | None:
    url = client.scan_policy.index_url
    return None if not url else NetworkIndex(url, client.deployment.hub)


def _fallback(exc: IndexUnavailable) -> None:
    log.info("sdk.index_unavailable", reason=str(exc))


def final_block(client: ChainClient) -> int:
    """The newest block final at the network's confirmation depth."""
    return client.block_number() - client.scan_policy.confirmations


def find_deal(client: ChainClient, deal_id: bytes | str) -> ev.DealCreated | None:
    topics = [_topic("DealCreated"), _b32(deal_id)]
    index = network_index(client)
    if index is not None:
        try:
            final = index.final()  # first: whatever the index lacks then is above it
            hit = index.deal(_b32(deal_id))
        except IndexUnavailable as e:
            _fallback(e)
        else:
            if hit is not None:
                return hit
            tail = [e for e in logs(client, topics, final + 1) if isinstance(e, ev.DealCreated)]
            return tail[0] if tail else None
    found = logs(client, topics)
    deals = [e for e in found if isinstance(e, ev.DealCreated)]
    return deals[0] if deals else None


def settlements(
    client: ChainClient,
    deal_ids: Iterable[bytes | str],
    from_block: int | None = None,
    to_block: int | str = "latest",
) -> list[ev.TaskFinalized | ev.TaskClaimed]:
    """TaskFinalized and TaskClaimed events of the given deals."""
    ids = [_b32(d) for d in deal_ids]
    if not ids:
        return []
    index = network_index(client)
    if index is not None and from_block is None and to_block == "latest" and len(ids) <= 200:
        try:
            found_ix: list[ev.TaskFinalized | ev.TaskClaimed] = []
            final = index.final()
            for deal_id in ids:
                rows, _ = index.settlements(deal_id)
                found_ix += [r for r in rows if r.block_number <= final]
        except IndexUnavailable as e:
            _fallback(e)
        else:
            return found_ix + settlements(client, deal_ids, final + 1, to_block)
    found = logs(
        client, [[_topic("TaskFinalized"), _topic("TaskClaimed")], None, ids], from_block, to_block
    )
    return [e for e in found if isinstance(e, ev.TaskFinalized | ev.TaskClaimed)]


def task_settlement(
    client: ChainClient, task_id: bytes | str
) -> ev.TaskFinalized | ev.TaskClaimed | None:
    topics: list[Any] = [[_topic("TaskFinalized"), _topic("TaskClaimed")], _b32(task_id)]
    start: int | None = None
    index = network_index(client)
    if index is not None:
        try:
            final = index.final()
            hit = index.task_settlement(_b32(task_id))
        except IndexUnavailable as e:
            _fallback(e)
        else:
            if hit is not None:
                return hit
            start = final + 1  # not settled at the index's final block: only newer logs
    found = logs(client, topics, start)
    hits = [e for e in found if isinstance(e, ev.TaskFinalized | ev.TaskClaimed)]
    return hits[0] if hits else None


def still_settled(client: ChainClient, e: ev.TaskFinalized | ev.TaskClaimed) -> bool:
    """Whether the chain as it is now still holds this settlement: its transaction is
    mined where the event said, its receipt carries this very event from the hub (same
    task, same digest: an index's claim is never taken on trust), and the task is settled
    (a rollback or a reorg undoes all three; a result is only "verified" against what the
    chain holds)."""
    try:
        receipt = client.w3.eth.get_transaction_receipt(e.tx_hash)  # type: ignore[arg-type]
    except TransactionNotFound:
        return False
    if receipt is None or int(receipt["status"]) != 1:
        return False
    if int(receipt["blockNumber"]) != e.block_number:
        return False
    hub = to_checksum_address(client.deployment.hub)
    emitted = [
        x
        for x in ev.decode_logs(receipt["logs"])
        if to_checksum_address(x.address) == hub and type(x) is type(e)
    ]
    if not any(
        x.task_id == e.task_id  # type: ignore[attr-defined]
        and x.deal_id == e.deal_id  # type: ignore[attr-defined]
        and x.index == e.index  # type: ignore[attr-defined]
        and getattr(x, "digest", None) == getattr(e, "digest", None)
        for x in emitted
    ):
        return False
    return client.is_settled(e.deal_id, e.index)


def all_deals(client: ChainClient, requester: str | None = None) -> list[ev.DealCreated]:
    topics: list[Any] = [_topic("DealCreated")]
    if requester:
        topics += [None, None, "0x" + requester[2:].lower().rjust(64, "0")]
    index = network_index(client)
    if index is not None:
        try:
            found, final = index.deals(requester)
        except IndexUnavailable as e:
            _fallback(e)
        else:
            tail = logs(client, topics, final + 1)
            return found + [e for e in tail if isinstance(e, ev.DealCreated)]
    return [e for e in logs(client, topics, cache=True) if isinstance(e, ev.DealCreated)]


def locked_in_deals(client: ChainClient, address: str) -> tuple[int, int]:
    """(paid as requester, staked as scheduler) for the tasks of `address`'s deals that are
    not settled yet: the escrow keeps no per-account locked balance, the deals do."""
    me = to_checksum_address(address)
    mine = [e for e in all_deals(client) if me in (e.deal.requester, e.deal.scheduler)]
    if not mine:
        return 0, 0
    settled: dict[bytes, int] = defaultdict(int)
    for s in settlements(client, [e.deal_id for e in mine]):
        settled[s.deal_id] += 1
    paid = staked = 0
    for e in mine:
        open_tasks = max(e.deal.volume - settled[e.deal_id], 0)
        if e.deal.requester == me:
            paid += open_tasks * e.deal.task_price
        if e.deal.scheduler == me:
            staked += open_tasks * e.deal.scheduler_stake
    return paid, staked


def registered_assets(client: ChainClient, kind: int) -> list[ev.AssetRegistered]:
    topics = [_topic("AssetRegistered"), None, _b32(kind.to_bytes(32, "big"))]
    registry = client.deployment.registry
    index = network_index(client)
    if index is not None and kind in KIND_NAMES:
        try:
            indexed, final = index.assets(KIND_NAMES[kind])
        except IndexUnavailable as e:
            _fallback(e)
        else:
            tail = logs(client, topics, final + 1, address=registry)
            return indexed + [e for e in tail if isinstance(e, ev.AssetRegistered)]
    found = logs(client, topics, address=registry, cache=True)
    return [e for e in found if isinstance(e, ev.AssetRegistered)]


def resolve_asset(
    client: ChainClient, kind: str, ref: int | str, prefer_owner: str | None = None
) -> int:
    """An asset id from its id or its registered name (the newest of that name, preferring
    `prefer_owner`'s); unknown names raise UnknownNameError with close matches."""
    kind_id = KIND_IDS[kind]
    if isinstance(ref, int) or str(ref).isdigit():
        asset = int(ref)
        info = client.asset(asset)
        if info.kind == 0:
            raise ConfigError(f"No asset has id {asset}; list them with 'comptoir orderbook'.")
        if info.kind != kind_id:
            raise ConfigError(
                f"Asset {asset} is a {KIND_NAMES.get(info.kind, 'thing')}, not a {kind}; "
                f"give the id or the name of a {kind}."
            )
        return asset
    assets = registered_assets(client, kind_id)
    named = [a for a in assets if a.name == ref]
    if not named:
        raise UnknownNameError(kind, str(ref), sorted({a.name for a in assets}))
    if prefer_owner:
        own = [a for a in named if client.owner_of(a.asset) == to_checksum_address(prefer_owner)]
        named = own or named
    return int(named[-1].asset)


def resolve_category(client: ChainClient, ref: int | str) -> int:
    cats = client.categories()
    if isinstance(ref, int) or str(ref).isdigit():
        category = int(ref)
        if category >= len(cats):
            raise UnknownNameError("category", str(ref), [c.name for c in cats])
        return category
    for c in cats:
        if c.name.lower() == str(ref).lower():
            return c.category
    raise UnknownNameError("category", str(ref), [c.name for c in cats])
