"""What SDK calls return: small frozen dataclasses, easy to print or serialize."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from comptoir.chain.types import Deal, RequestOrder
from comptoir.sdk.market import ListedOrder


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class _Json:
    def to_json(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}  # type: ignore[call-overload]


@dataclass(frozen=True)
class Balance(_Json):
    """Token amounts of one account, in token units (18 decimals)."""

    address: str
    wallet: int  # tokens held outside the escrow
    free: int  # escrow balance deals can use and withdraw can take
    locked: int  # paid into deals as requester, tasks not yet settled
    staked: int  # scheduler stakes in deals not yet settled
    eth: int  # gas money


@dataclass(frozen=True)
class AppDeployment(_Json):
    app: int
    name: str
    checksum: str
    location: str
    kind: str  # "bundle" or "oci"


@dataclass(frozen=True)
class DatasetDeployment(_Json):
    dataset: int
    name: str
    checksum: str  # sha256 of the encrypted bytes (what workers verify)
    location: str
    key_registered: bool
    key_file: Path | None = None  # where the AES key was saved (owner's copy)


@dataclass(frozen=True)
class PoolDeployment(_Json):
    workerpool: int
    name: str
    worker_stake_ratio: int
    scheduler_reward_ratio: int


@dataclass(frozen=True)
class OrderSelection:
    """The orders a request will be matched with: the cheapest compatible set."""

    app: ListedOrder
    workerpool: ListedOrder
    dataset: ListedOrder | None = None

    @property
    def price(self) -> int:
        return self.app.price + self.workerpool.price + (self.dataset.price if self.dataset else 0)

    @property
    def volume(self) -> int:
        found = [self.app.remaining, self.workerpool.remaining]
        if self.dataset is not None:
            found.append(self.dataset.remaining)
        return min(found)


@dataclass(frozen=True)
class PreparedRequest:
    """A request signed for `selection`, bound to its workerpool, not yet matched."""

    selection: OrderSelection
    order: RequestOrder
    signature: bytes
    min_worker_stake: int = 0  # kept for the partial fills of later matches


@dataclass(frozen=True)
class DealHandle(_Json):
    """A deal this SDK created (or found): enough to follow its tasks."""

    deal_id: str
    deal: Deal
    block: int
    app: int
    dataset: int
    workerpool: int
    category: int
    params: str
    tx_hash: str = ""  # the match transaction that created it

    @property
    def volume(self) -> int:
        return self.deal.volume

    def task_id(self, index: int) -> str:
        return "0x" + self.deal.task_id(index).hex()


@dataclass(frozen=True)
class TaskResult(_Json):
    """A settled task and what the requester could check of it.

    status: ``verified`` (the result's digest equals the on-chain one), ``failed`` (the
    app failed; the signed failure record matches the chain), ``claimed`` (refunded after
    the deadline), ``mismatch`` (the downloaded result does not match the chain: do not
    trust it), ``unbound`` (the digest matches, but the deal was not made from a request
    this account signed bound to the workerpool it chose, so anyone may have computed it)
    or ``unavailable`` (settled, but no copy of the result could be fetched), or
    ``sealed`` (encrypted to its requester, and this is not the requester's wallet).
    """

    deal_id: str
    task_id: str
    index: int
    status: str
    digest: str | None  # on-chain digest, 0x-hex
    path: Path | None = None  # where the result was unpacked
    files: tuple[str, ...] = ()
    message: str = ""
    preview: str = ""  # the start of the main output file, for display
    stdout: str = ""  # the app's stdout tail (sealed to the requester; empty otherwise)
    stderr: str = ""  # the app's stderr tail

    @property
    def verified(self) -> bool:
        return self.status == "verified"


@dataclass(frozen=True)
class Progress:
    """Reported to ``on_progress`` callbacks while a request runs."""

    stage: str  # searching, note, matched, waiting, settled (seen on-chain), task, done
    message: str
    done: int = 0
    total: int = 0
    task: TaskResult | None = None


@dataclass(frozen=True)
class TaskLogs(_Json):
    """The tails of a task's stdout and stderr one worker kept (the last 64 KiB of each),
    sealed to the requester with that worker's result."""

    task_id: str
    worker_blob: str  # the envelope they were read from
    stdout: str
    stderr: str


@dataclass(frozen=True)
class TaskStatus(_Json):
    task_id: str
    deal_id: str
    index: int
    status: str  # finalized, failed, claimed, "expired, claimable", or the scheduler's view
    digest: str | None = None
    result_blob: str | None = None
    replicas: tuple[dict[str, Any], ...] = ()
    reason: str = ""  # why a settled task failed (TIMEOUT, APP_FAILED with exit code...)
    tx_hash: str | None = None  # the settling transaction


@dataclass(frozen=True)
class DealStatus(_Json):
    deal_id: str
    requester: str
    app: int
    dataset: int
    workerpool: int
    category: int
    trust: int
    volume: int
    task_price: int
    scheduler: str
    final_deadline: int
    block: int
    params: str
    tasks: tuple[TaskStatus, ...] = field(default_factory=tuple)

    @property
    def settled(self) -> int:
        return sum(t.status in ("finalized", "claimed") for t in self.tasks)


# ---------------------------------------------------------------- lifecycle records


@dataclass(frozen=True)
class AssetView(_Json):
    """An app, dataset or workerpool as `app|dataset|pool list` and `show` print it."""

    asset: int
    kind: str  # app, dataset, workerpool
    name: str
    owner: str  # current owner: always shown, names alone prove nothing
    location: str
    checksum: str
    app_kind: str | None = None  # bundle or oci (apps)
    policy: dict[str, int] | None = None  # worker stake / scheduler reward (workerpools)
    orders: tuple[dict[str, Any], ...] | None = None  # open orders; None: market unreachable

    @property
    def cheapest(self) -> int | None:
        prices = [int(o["price"]) for o in self.orders or ()]
        return min(prices) if prices else None


@dataclass(frozen=True)
class CancelledOrder(_Json):
    hash: str
    kind: str
    asset: int
    onchain: bool  # cancelled on the hub (it can never match), not only delisted
    tx_hash: str | None = None


@dataclass(frozen=True)
class DealSummary(_Json):
    deal_id: str
    role: str  # requester, pool or worker
    app: int
    dataset: int
    workerpool: int
    volume: int
    finalized: int
    claimed: int
    task_price: int
    final_deadline: int
    state: str  # active, done, "expired, claimable"


@dataclass(frozen=True)
class Claimed(_Json):
    deal_id: str
    indices: tuple[int, ...]
    refunded: int  # task prices plus forfeited scheduler stakes, to the requester
    tx_hashes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sent(_Json):
    to: str
    amount: int
    currency: str  # CPT or ETH
    tx_hash: str
