"""Blocking chain work behind the lifecycle verbs: browsing assets, listing and claiming
deals, sending funds, the devnet faucet. :class:`comptoir.sdk.Comptoir` runs these in
worker threads; each one pre-checks what the chain would refuse and says so in a sentence.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from eth_utils import to_checksum_address

from comptoir.chain import events as ev
from comptoir.chain.client import ChainClient
from comptoir.chain.types import Deal
from comptoir.exceptions import ConfigError, TransactionRejected
from comptoir.sdk import chainscan
from comptoir.sdk.amounts import check_units, format_ether, format_tokens
from comptoir.sdk.market import ListedOrder
from comptoir.sdk.names import APP_KINDS, short
from comptoir.sdk.types import AssetView, Claimed, DealSummary, Sent

MAX_CLAIM = 256  # indices per claim transaction (poco.vy MAX_CLAIM)
ROLES = ("requester", "pool", "worker")
EXPIRED = "expired, claimable"


def tx_hex(receipt: Any) -> str:
    return "0x" + bytes(receipt["transactionHash"]).hex()


# ------------------------------------------------------------ assets


def order_rows(orders: Iterable[ListedOrder]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {
            "hash": o.hash,
            "price": o.price,
            "remaining": o.remaining,
            "volume": o.volume,
            "owner": o.owner,
        }
        for o in sorted(orders, key=lambda o: o.price)
    )


def asset_view(
    c: ChainClient, kind: str, asset: int, orders: Iterable[ListedOrder] | None
) -> AssetView:
    info = c.asset(asset)
    policy = None
    if kind == "workerpool":
        stake, reward = c.workerpool_policy(asset)
        policy = {"worker_stake_ratio": stake, "scheduler_reward_ratio": reward}
    return AssetView(
        asset,
        kind,
        info.name,
        info.owner,
        info.location,
        info.checksum.hex() if kind != "workerpool" else "",
        APP_KINDS.get(info.app_type) if kind == "app" else None,
        policy,
        order_rows(orders) if orders is not None else None,
    )


def asset_ids(c: ChainClient, kind: str, owner: str | None = None) -> list[int]:
    """Ids of every asset of `kind` (of `owner`'s when given), oldest first."""
    found = [int(a.asset) for a in chainscan.registered_assets(c, chainscan.KIND_IDS[kind])]
    if owner is None:
        return found
    me = to_checksum_address(owner)
    return [a for a in found if c.owner_of(a) == me]


def check_owner(c: ChainClient, kind: str, asset: int, me: str) -> None:
    """Only an asset's owner signs orders for it: say whose it is before signing anything."""
    owner = c.owner_of(asset)
    if owner != to_checksum_address(me):
        name = c.asset(asset).name
        raise ConfigError(
            f"The {kind} {asset} ({name!r}) belongs to {owner}, not to you ({short(me)}); "
            "only its owner can publish or cancel its orders (use --wallet with that key)."
        )


# ------------------------------------------------------------ deals


def _settled_counts(
    c: ChainClient, deal_ids: list[bytes]
) -> tuple[dict[bytes, int], dict[bytes, int], dict[bytes, set[int]]]:
    finalized: dict[bytes, int] = defaultdict(int)
    claimed: dict[bytes, int] = defaultdict(int)
    indices: dict[bytes, set[int]] = defaultdict(set)
    for s in chainscan.settlements(c, deal_ids) if deal_ids else []:
        (finalized if isinstance(s, ev.TaskFinalized) else claimed)[s.deal_id] += 1
        indices[s.deal_id].add(int(s.index))
    return finalized, claimed, indices


def deal_state(volume: int, settled: int, final_deadline: int, now: int) -> str:
    if settled >= volume:
        return "done"
    return EXPIRED if now >= final_deadline else "active"


def worker_deal_ids(c: ChainClient, worker: str) -> set[bytes]:
    """Deals in which `worker` was rewarded or penalized (settled contributions)."""
    topic = "0x" + to_checksum_address(worker)[2:].lower().rjust(64, "0")
    names = [chainscan._topic("WorkerRewarded"), chainscan._topic("WorkerPenalized")]
    tasks = {e.task_id for e in chainscan.logs(c, [names, None, topic]) if hasattr(e, "task_id")}
    out: set[bytes] = set()
    for task_id in tasks:
        s = chainscan.task_settlement(c, task_id)
        if s is not None:
            out.add(s.deal_id)
    return out


def list_deals(c: ChainClient, address: str, role: str = "requester") -> list[DealSummary]:
    """Deals of `address` as requester, as a pool's scheduler or as a worker, newest first."""
    if role not in ROLES:
        from comptoir.exceptions import UnknownNameError

        raise UnknownNameError("role", role, ROLES)
    me = to_checksum_address(address)
    if role == "requester":
        deals = chainscan.all_deals(c, requester=me)
    elif role == "pool":
        deals = [e for e in chainscan.all_deals(c) if e.deal.scheduler == me]
    else:
        ids = worker_deal_ids(c, me)
        deals = [e for e in chainscan.all_deals(c) if e.deal_id in ids]
    finalized, claimed, _ = _settled_counts(c, [e.deal_id for e in deals])
    now = c.timestamp()
    out = []
    for e in reversed(deals):
        done = finalized[e.deal_id] + claimed[e.deal_id]
        out.append(
            DealSummary(
                "0x" + e.deal_id.hex(),
                role,
                e.app,
                e.dataset,
                e.workerpool,
                e.deal.volume,
                finalized[e.deal_id],
                claimed[e.deal_id],
                e.deal.task_price,
                e.deal.final_deadline,
                deal_state(e.deal.volume, done, e.deal.final_deadline, now),
            )
        )
    return out


def claim(c: ChainClient, deal_id: str, indices: Iterable[int] | None = None) -> Claimed:
    """Claim the unsettled tasks of a deal (or the given ones) after its final deadline:
    the requester gets their price back plus the scheduler's forfeited stake."""
    created = chainscan.find_deal(c, deal_id)
    if created is None:
        raise ConfigError(f"No deal {deal_id} exists on this chain; check the id.")
    deal: Deal = created.deal
    _, _, settled = _settled_counts(c, [created.deal_id])
    open_tasks = [i for i in range(deal.volume) if i not in settled[created.deal_id]]
    wanted = sorted(set(indices)) if indices is not None else open_tasks
    if not wanted or not set(wanted) & set(open_tasks):
        raise ConfigError(
            f"Every task of deal {deal_id} you named is already settled; nothing to claim."
        )
    wanted = [i for i in wanted if i in open_tasks]
    hashes = []  # ChainClient.claim refuses before the final deadline, saying how long
    for start in range(0, len(wanted), MAX_CLAIM):
        c.claim(deal, wanted[start : start + MAX_CLAIM])
        hashes.append(tx_hex(c.last_receipt))
    refund = len(wanted) * (deal.task_price + deal.scheduler_stake)  # the stake is forfeited
    return Claimed("0x" + created.deal_id.hex(), tuple(wanted), refund, tuple(hashes))


# ------------------------------------------------------------ funds


def send(c: ChainClient, to: str, amount: int, currency: str) -> Sent:
    """Send wallet tokens (CPT) or ether (ETH) to an address, checked before sending."""
    try:
        dest = to_checksum_address(to)
    except ValueError:
        raise ConfigError(f"{to!r} is not an address; give 0x followed by 40 hex digits.") from None
    check_units(amount)
    if amount == 0:
        raise ConfigError("The amount to send must be greater than zero.")
    if currency == "ETH":
        held = c.eth_balance()
        if held < amount:
            raise TransactionRejected(
                f"Your wallet holds {format_ether(held)}, less than the {format_ether(amount)} "
                "to send (plus gas).",
                reason="client: ether balance too low",
            )
        receipt = c.tx.send(dest, b"", value=amount)
    else:
        c.transfer_tokens(dest, amount)  # checks the balance first
        receipt = c.last_receipt
    return Sent(dest, amount, currency, tx_hex(receipt))


def faucet(c: ChainClient, to: str, tokens: int, ether: int) -> list[Sent]:
    """Mint test tokens and send test ether from the devnet's deployer (devnet only)."""
    dest = to_checksum_address(to)
    out = []
    if tokens:
        check_units(tokens)
        c.mint(dest, tokens)
        out.append(Sent(dest, tokens, "CPT", tx_hex(c.last_receipt)))
    if ether:
        out.append(send(c, dest, ether, "ETH"))
    return out


def describe_sent(s: Sent) -> str:
    if s.currency == "ETH":
        what = format_ether(s.amount)
    else:
        what = f"{s.amount:,} token units ({format_tokens(s.amount)})"
    return f"Sent {what} to {s.to} (transaction {s.tx_hash})."


def failure_reason(record: Any) -> str:
    """'APP_FAILED, exit code 3' from a scheduler's failure record; '' when none."""
    if not isinstance(record, dict) or not record.get("status"):
        return ""
    reason = str(record["status"])
    if record.get("exit_code") is not None:
        reason += f", exit code {record['exit_code']}"
    return reason


# ------------------------------------------------------------ pre-checks and receipts


def record_transactions(c: ChainClient, into: list[str]) -> None:
    """Append the hash of every transaction `c` sends to `into` (shown to the user)."""
    send = c.tx.send

    def recording(*args: Any, **kw: Any) -> Any:
        receipt = send(*args, **kw)
        into.append(tx_hex(receipt))
        return receipt

    c.tx.send = recording  # type: ignore[method-assign]


_ORDER_ASSET = {"AppOrder": "app", "DatasetOrder": "dataset", "WorkerpoolOrder": "workerpool"}


def check_order_owner(c: ChainClient, order: Any, me: str) -> None:
    """Prices in range, and the signer owns the asset the order sells."""
    kind = _ORDER_ASSET.get(type(order).__name__)
    if kind is None:
        return
    check_units(int(getattr(order, f"{kind}_price")), "price")
    check_units(int(order.volume), "volume")
    if int(order.volume) == 0:
        raise ConfigError("The volume must be at least 1 task.")
    check_owner(c, kind, int(getattr(order, kind)), me)


def precheck_request(c: ChainClient, max_price: int | None, callback: str | None) -> None:
    """What a request must satisfy before anything is signed or paid."""
    if max_price is not None:
        check_units(max_price, "max price")
    if callback:
        try:
            target = to_checksum_address(callback)
        except ValueError:
            raise ConfigError(
                f"The callback {callback!r} is not an address; give the receiving contract's."
            ) from None
        if not bytes(c.w3.eth.get_code(target)):
            raise ConfigError(
                f"The callback {target} is not a contract on this chain (no code there); "
                "give the address of a deployed contract with receiveResult."
            )


def devnet_faucet(settings: Any, to: str, tokens: int, ether: int) -> list[Sent]:
    """The local devnet's faucet: its deployer mints `tokens` and sends `ether` to `to`.
    Refused unless the devnet of this home runs (never on a real chain)."""
    from comptoir import devnet
    from comptoir.chain.client import connect
    from comptoir.exceptions import DevnetError
    from comptoir.sdk.wallet import devnet_account

    st = devnet.status(settings)
    if not st.running or st.rpc_url is None or st.deployment is None or not st.deployed:
        raise DevnetError(
            "No devnet runs under this home; the faucet only serves the local devnet "
            "(start it with 'comptoir devnet up')."
        )
    try:
        dest = to_checksum_address(to)
    except ValueError:
        raise ConfigError(f"{to!r} is not an address; give 0x followed by 40 hex digits.") from None
    client = ChainClient(connect(st.rpc_url), st.deployment, devnet_account(0))
    return faucet(client, dest, tokens, ether)
