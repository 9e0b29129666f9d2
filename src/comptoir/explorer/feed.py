"""The explorer's catch-up from the market's network index, instead of every log since
the deployment block.

The index names the deals, their settlements and the assets up to its final block; the
explorer takes none of it on trust. A deal's terms must hash to its id (`NetworkIndex`),
and every deal and every settlement enters the explorer from its transaction's receipt,
read from the node: the events the receipt carries, never the index's rows, so an index
can leave things out but cannot invent or alter one. Assets, pool policies and
categories are read from the registry. Then the explorer reads the logs of the newer
blocks itself, as before. What a deal or settlement receipt does not hold is not known
for the blocks the index covered: deposits and withdrawals (an address's flows count
from the index's final block on) and on-chain contributions sent in their own
transactions (a settled task still shows its outcome, rewards and penalties).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eth_utils import to_checksum_address

from comptoir.chain import events as ev
from comptoir.chain.client import ChainClient
from comptoir.exceptions import IndexUnavailable
from comptoir.sdk.netindex import NetworkIndex

MAX_RECEIPTS = 20_000  # transactions one catch-up reads; past it the explorer scans logs


@dataclass
class Catchup:
    """What the index let the explorer read from the node, up to block `final`."""

    final: int
    events: list[ev.ChainEvent]  # in chain order
    receipts: dict[str, Any]  # 0x tx hash -> receipt (the gas of each)
    assets: list[ev.AssetRegistered] = field(default_factory=list)  # current owners
    policies: dict[int, tuple[int, int]] = field(default_factory=dict)
    categories: list[tuple[int, str, int]] = field(default_factory=list)


def _hx(data: bytes) -> str:
    return "0x" + data.hex()


def _receipt(client: ChainClient, tx: bytes, final: int) -> Any:
    try:
        receipt = client.w3.eth.get_transaction_receipt(tx)  # type: ignore[arg-type]
    except Exception as e:  # not found, node refusing: the index named a phantom
        raise IndexUnavailable(f"The node has no transaction {_hx(tx)} the index named.") from e
    if receipt is None or int(receipt["status"]) != 1 or int(receipt["blockNumber"]) > final:
        raise IndexUnavailable(f"Transaction {_hx(tx)} is not a mined success below the index.")
    return receipt


def _ours(receipt: Any, addresses: set[str]) -> list[ev.ChainEvent]:
    return [
        e for e in ev.decode_logs(receipt["logs"]) if to_checksum_address(e.address) in addresses
    ]


def catch_up(client: ChainClient, url: str, addresses: Iterable[str]) -> Catchup:
    """Reads the index at `url` and checks it against the node (blocking: run it in a
    thread); IndexUnavailable when the index is down, empty or says anything the chain
    does not (the caller then scans logs)."""
    ours = {str(to_checksum_address(a)) for a in addresses}
    index = NetworkIndex(url, client.deployment.hub)
    final = index.final()
    deals, _ = index.deals()
    settlements: list[ev.TaskFinalized | ev.TaskClaimed] = []
    too_many = IndexUnavailable(f"More than {MAX_RECEIPTS} transactions: scanning logs instead.")
    for deal in deals:
        if len(deals) + len(settlements) > MAX_RECEIPTS:  # checked before each listing
            raise too_many
        found, _ = index.settlements(_hx(deal.deal_id))
        settlements += found
    if len(deals) + len(settlements) > MAX_RECEIPTS:
        raise too_many
    receipts: dict[str, Any] = {}
    claimed: list[tuple[ev.ChainEvent, str]] = [(d, _hx(d.tx_hash)) for d in deals]
    claimed += [(s, _hx(s.tx_hash)) for s in settlements]
    for row, tx in claimed:
        if tx not in receipts:
            receipts[tx] = _receipt(client, bytes.fromhex(tx[2:]), final)
        if not any(_same(row, e) for e in _ours(receipts[tx], ours)):
            raise IndexUnavailable(f"Transaction {tx} does not carry what the index says it does.")
    ordered = sorted(
        receipts.values(), key=lambda r: (int(r["blockNumber"]), int(r["transactionIndex"]))
    )
    events = [e for r in ordered for e in _ours(r, ours)]
    catchup = Catchup(final, events, receipts)
    _read_registry(client, index, catchup)
    return catchup


def _same(row: ev.ChainEvent, emitted: ev.ChainEvent) -> bool:
    """`emitted` (from the node) is the event the index's `row` claims."""
    if type(row) is not type(emitted) or row.block_number != emitted.block_number:
        return False
    if isinstance(row, ev.DealCreated):
        return row.deal_id == emitted.deal_id and row.deal == emitted.deal  # type: ignore[attr-defined]
    keys = ("task_id", "deal_id", "index", "digest")
    return all(getattr(row, k, None) == getattr(emitted, k, None) for k in keys)


def _read_registry(client: ChainClient, index: NetworkIndex, catchup: Catchup) -> None:
    """Assets as the registry holds them now (the index only says which ids exist)."""
    for kind in ("app", "dataset", "workerpool"):
        rows, _ = index.assets(kind)
        for row in rows:
            info = client.asset(int(row.asset))
            if info.kind == 0:
                raise IndexUnavailable(f"The index lists asset {row.asset}; the chain has none.")
            catchup.assets.append(
                ev.AssetRegistered(
                    asset=info.asset,
                    kind=info.kind,
                    owner=info.owner,
                    name=info.name,
                    location=info.location,
                    checksum=info.checksum,
                    address=row.address,
                    block_number=row.block_number,
                    tx_hash=row.tx_hash,
                )
            )
            if info.kind == 3:
                catchup.policies[info.asset] = client.workerpool_policy(info.asset)
    catchup.categories = [(c.category, c.name, c.time_ref) for c in client.categories()]
