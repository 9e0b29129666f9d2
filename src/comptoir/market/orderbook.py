"""The order book's rules, independent of HTTP: publish, list, cancel, chain state, prices."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import structlog
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.chain.eip712 import order_hash, recover_digest_signer
from comptoir.chain.types import _Struct, checksummed
from comptoir.exceptions import (
    ChainError,
    ComptoirError,
    ForgedSignature,
    InvalidOrder,
    ListingRefused,
    OrderNotFound,
)
from comptoir.market import events, listing
from comptoir.market.chainview import ASSET_KINDS, CANCELLED, ChainView
from comptoir.market.lookups import DEFAULT_SIZE, DEFAULT_TTL, ChainLookups
from comptoir.market.prices import OHLC, PricePoint, candles
from comptoir.market.schemas import (
    KIND_OF_STRUCT,
    MODELS,
    OrderPage,
    OrderRecord,
    _OrderModel,
)
from comptoir.market.store import (
    MAX_PRICE,
    DealRow,
    MarketStore,
    OrderQuery,
    StoredOrder,
    row_for,
)

log = structlog.get_logger("comptoir.market")

FORGED = "signature does not match the order owner"
# poco.vy: what match_orders refuses whatever the other orders are
MAX_TRUST = 1_000_000  # a request's trust at most this
SCHEDULER_STAKE_RATIO = 30  # percent of the workerpool price the scheduler stakes per task
# secp256k1 group order: the hub's ECDSA recovery takes s <= N/2 and v in {27, 28} only
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
DEFAULT_MAX_OPEN_PER_OWNER = 200
DEFAULT_MIN_REQUEST_BALANCE = 1


def canonical_signature(sig: bytes) -> bytes:
    """The one form of a 65-byte ECDSA signature the hub accepts (low s, v = 27 or 28):
    a high-s twin or a v of 0/1 is rewritten, so a twin lists as the owner's own signature."""
    r, s, v = int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big"), sig[64]
    if v in (0, 1):
        v += 27
    if v not in (27, 28):
        raise InvalidOrder("The signature's v byte must be 27 or 28 (or 0 or 1).")
    if not (0 < r < SECP256K1_N and 0 < s < SECP256K1_N):
        raise ForgedSignature(FORGED)
    if s > SECP256K1_N // 2:
        s, v = SECP256K1_N - s, 55 - v  # the twin: same signer, the hub's form
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v])


def unmatchable(kind: str, struct: _Struct) -> str | None:
    """Why the hub would refuse every match of this order, or None (poco.vy match_orders)."""
    if kind in ("app", "dataset", "workerpool"):
        price = int(getattr(struct, f"{kind}_price"))
        if price >= MAX_PRICE:
            return (
                f"The {kind} price must be below 2**128: the hub refuses to match larger "
                "prices; sign the order again with a smaller price."
            )
    if kind == "request" and int(struct.trust) > MAX_TRUST:  # type: ignore[attr-defined]
        return (
            f"A request's trust must be at most {MAX_TRUST}: the hub refuses higher trust; "
            "sign the request again with a lower trust."
        )
    return None


def cancel_message(order_hash_hex: str, chain_id: int, hub: str) -> str:
    """The text an owner signs (EIP-191 personal_sign) to withdraw a listing.

    Bound to the chain and hub so a cancel cannot be replayed on another market."""
    return (
        f"Comptoir market: cancel order {order_hash_hex.lower()} "
        f"(chain {chain_id}, hub {to_checksum_address(hub)})"
    )


def sign_cancel(order_hash_hex: str, account: LocalAccount, chain_id: int, hub: str) -> str:
    message = encode_defunct(text=cancel_message(order_hash_hex, chain_id, hub))
    return "0x" + bytes(account.sign_message(message).signature).hex()


def chain_status(volume: int, consumed: int) -> tuple[str, int, str | None]:
    """(status, remaining, reason) from the hub's consumed counter (orders.vy `_remaining`)."""
    if consumed == CANCELLED:
        return "cancelled", 0, "cancelled on-chain"
    remaining = max(volume - consumed, 0)
    return ("filled", 0, None) if remaining == 0 else ("open", remaining, None)


def to_record(stored: StoredOrder) -> OrderRecord:
    return OrderRecord(
        hash=stored.hash,
        kind=stored.kind,  # type: ignore[arg-type]
        order=MODELS[stored.kind].model_validate(stored.order),  # type: ignore[arg-type]
        signature=stored.signature,
        owner=stored.owner,
        status=stored.status,  # type: ignore[arg-type]
        status_reason=stored.status_reason,
        volume=stored.volume,
        remaining=stored.remaining,
        price=stored.price,
        published_at=stored.published_at,
        updated_at=stored.updated_at,
    )


def _record_text(row: dict[str, Any]) -> str:
    """The OrderRecord JSON of a row just inserted (`row_for`), rendered as listings are."""
    text = listing.record_json(SimpleNamespace(**row))
    if text is None:  # pragma: no cover - row_for writes only what renders
        return to_record(StoredOrder.from_values(row)).model_dump_json()
    return text


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


async def _read_chain(what: str, coro: Any) -> Any:
    try:
        return await coro
    except Exception as e:
        raise ChainError(
            f"Could not read {what} from the chain ({type(e).__name__}); "
            "retry when the node answers."
        ) from e


@dataclass(frozen=True)
class _Candidate:
    """An order whose signature was recovered, not yet checked against the chain."""

    struct: _Struct
    kind: str
    digest: str  # 0x-hex EIP-712 hash
    signature: bytes  # canonical (low s, v 27/28)
    signer: str


@dataclass(frozen=True)
class Published:
    """One order's outcome in `publish_many`: its record (as OrderRecord JSON, what the API
    answers), or why it was refused."""

    text: str | None
    created: bool
    error: ComptoirError | None

    @property
    def record(self) -> OrderRecord | None:
        return None if self.text is None else OrderRecord.model_validate_json(self.text)


class OrderBook:
    """Validated, signed orders kept in step with the chain, and the deals price feed."""

    def __init__(
        self,
        store: MarketStore,
        chain: ChainView,
        chain_id: int,
        hub: str,
        broadcaster: events.Broadcaster | None = None,
        max_open_per_owner: int = DEFAULT_MAX_OPEN_PER_OWNER,
        min_request_balance: int = DEFAULT_MIN_REQUEST_BALANCE,
        chain_cache_ttl: float = DEFAULT_TTL,
        chain_cache_size: int = DEFAULT_SIZE,
    ) -> None:
        self.store, self.chain = store, chain
        self.chain_id, self.hub = chain_id, str(to_checksum_address(hub))
        self.events = broadcaster or events.Broadcaster()
        # each open order costs an eth_call per sync pass: the cost per owner is bounded
        self.max_open_per_owner = max_open_per_owner
        self.min_request_balance = min_request_balance
        self.lookups = ChainLookups(chain, chain_cache_ttl, chain_cache_size)
        self._rendered = listing.RenderedRecords()  # GET /v1/orders' rows, as JSON

    # ------------------------------------------------------------ orders

    async def publish(
        self, order: _Struct | _OrderModel, signature: str | bytes
    ) -> tuple[OrderRecord, bool]:
        """Checks the signature against the order's owner and lists the order.

        Returns (record, created); publishing a listed order again returns it unchanged:
        in particular an order cancelled here stays cancelled, since anyone who saw the
        signed order could otherwise re-list it."""
        found = (await self.publish_many([(order, signature)]))[0]
        if found.error is not None:
            raise found.error
        assert found.record is not None
        return found.record, found.created

    async def publish_many(
        self, items: Sequence[tuple[_Struct | _OrderModel, str | bytes]]
    ) -> list[Published]:
        """`publish` of each order, with one result per order (in order): one bad order
        does not refuse the others. The chain is read once per distinct asset and owner
        (cached for `lookups.ttl`), the consumed volumes in one JSON-RPC batch, and the
        rows written in one transaction. A chain that does not answer fails them all."""
        results: list[Published | None] = [None] * len(items)
        candidates: dict[str, list[int]] = {}  # digest -> indices naming it
        checked: dict[str, _Candidate] = {}
        for i, (order, signature) in enumerate(items):
            try:
                c = self._candidate(order, signature)
            except (InvalidOrder, ForgedSignature) as e:
                results[i] = Published(None, False, e)
                continue
            if c.digest in checked and checked[c.digest].signer != c.signer:
                results[i] = Published(None, False, ForgedSignature(FORGED))
                continue
            checked.setdefault(c.digest, c)
            candidates.setdefault(c.digest, []).append(i)

        listed = await self.store.get_orders(list(candidates))
        fresh: list[tuple[_Candidate, str]] = []
        refused: dict[str, ComptoirError] = {}
        await self.lookups.prefetch_balances(
            str(c.struct.requester)  # type: ignore[attr-defined]
            for d, c in checked.items()
            if d not in listed and c.kind == "request"
        )
        for digest, c in checked.items():
            if digest in listed:
                continue
            try:
                owner = await self._owner(c.kind, c.struct, c.signer)
                if c.signer != owner:
                    raise ForgedSignature(FORGED)
                await self._check_deposit(c.kind, c.struct, owner)
            except (InvalidOrder, ForgedSignature, ListingRefused) as e:
                refused[digest] = e
                continue
            fresh.append((c, owner))

        consumed = await _read_chain(
            "the consumed volume",
            self.chain.consumed_many([bytes.fromhex(c.digest[2:]) for c, _ in fresh]),
        )
        now = time.time()
        rows = [
            self._row(c, owner, used, now) for (c, owner), used in zip(fresh, consumed, strict=True)
        ]
        inserted = await self.store.insert_orders(rows, max_open_per_owner=self.max_open_per_owner)
        created: dict[str, str] = {}  # hash -> its record's JSON
        raced = []  # listed meanwhile by a concurrent publish
        for row, outcome in zip(rows, inserted, strict=True):
            if outcome is False:
                raced.append(row["hash"])
            elif outcome is None:
                refused[row["hash"]] = ListingRefused(
                    f"{row['owner']} already has {self.max_open_per_owner} open orders listed "
                    "here, the most one owner may; cancel some or wait until they fill."
                )
            elif outcome:
                created[row["hash"]] = _record_text(row)
        listed.update(await self.store.get_orders(raced))

        for digest, indices in candidates.items():
            for n, i in enumerate(indices):
                results[i] = self._outcome(
                    digest, checked[digest], created, listed, refused, first=n == 0
                )
        return [r for r in results if r is not None]

    def _outcome(
        self,
        digest: str,
        c: _Candidate,
        created: dict[str, str],
        listed: dict[str, StoredOrder],
        refused: dict[str, ComptoirError],
        first: bool,
    ) -> Published:
        if digest in refused:
            return Published(None, False, refused[digest])
        if digest in created:
            text = created[digest]
            if first:
                self.events.publish_json(events.PUBLISHED, text)
            return Published(text, first, None)
        existing = listed[digest]
        if existing.owner != c.signer:
            return Published(None, False, ForgedSignature(FORGED))
        return Published(to_record(existing).model_dump_json(), False, None)

    def _candidate(self, order: _Struct | _OrderModel, signature: str | bytes) -> _Candidate:
        """What the order and signature say, checked without the chain (CPU only)."""
        struct = order.to_struct() if isinstance(order, _OrderModel) else order
        kind = KIND_OF_STRUCT[type(struct)]
        sig = (
            signature
            if isinstance(signature, bytes)
            else bytes.fromhex(signature.removeprefix("0x"))
        )
        if len(sig) != 65:
            raise InvalidOrder("The signature must be 65 bytes (r, s, v).")
        sig = canonical_signature(sig)
        refusal = unmatchable(kind, struct)
        if refusal is not None:
            raise InvalidOrder(refusal)
        digest = order_hash(struct, self.chain_id, self.hub)
        try:
            signer = recover_digest_signer(digest, sig)
        except ValueError as e:  # malformed r/s/v: no signer at all
            raise ForgedSignature(FORGED) from e
        return _Candidate(struct, kind, _hex(digest), sig, signer)

    def _row(self, c: _Candidate, owner: str, consumed: int, now: float) -> dict[str, Any]:
        status, remaining, reason = chain_status(c.struct.volume, consumed)  # type: ignore[attr-defined]
        return row_for(
            order_hash=c.digest,
            kind=c.kind,
            order_json=c.struct.to_json(),
            signature=_hex(c.signature),
            owner=owner,
            status=status,
            status_reason=reason,
            remaining=remaining,
            published_at=now,
        )

    async def _check_deposit(self, kind: str, struct: _Struct, owner: str) -> None:
        """A request's requester, and a workerpool order's scheduler, must hold on the hub
        what a match of one task takes from them (a request at least `min_request_balance`):
        listing costs every sync pass a read, so it is not free to strangers. A cached
        balance may let a listing through for `lookups.ttl` after a withdrawal; it never
        refuses one: a balance too low is read again before refusing."""
        if kind == "request":
            need, who = self.min_request_balance, "requester"
        elif kind == "workerpool":
            price = int(struct.workerpool_price)  # type: ignore[attr-defined]
            need, who = price * SCHEDULER_STAKE_RATIO // 100, "scheduler"
        else:
            return
        if need <= 0:
            return
        free = await _read_chain("the free balance", self.lookups.balance(owner))
        if free < need:
            self.lookups.forget(account=owner)
            free = await _read_chain("the free balance", self.lookups.balance(owner))
        if free < need:
            raise ListingRefused(
                f"The {who} {owner} holds {free} on the hub but a {kind} order needs at least "
                f"{need} deposited to be listed; deposit {need - free} more first."
            )

    async def _owner(self, kind: str, struct: _Struct, signer: str | None = None) -> str:
        """The account that must have signed; a cached owner other than `signer` is read
        again, so a fresh transfer or registration is never refused from the cache."""
        if kind == "request":
            return str(struct.requester)  # type: ignore[attr-defined]
        asset = int(getattr(struct, kind))
        found, owner = await _read_chain("the asset owner", self.lookups.asset(asset))
        if found != ASSET_KINDS[kind] or owner is None or owner != signer:
            self.lookups.forget(asset=asset)
            found, owner = await _read_chain("the asset owner", self.lookups.asset(asset))
        if found != ASSET_KINDS[kind]:
            raise InvalidOrder(f"Asset {asset} is not a registered {kind}; register it first.")
        if owner is None:
            raise InvalidOrder(f"Asset {asset} has no owner on-chain; register it first.")
        return checksummed(owner)

    async def get(self, order_hash_hex: str) -> OrderRecord:
        stored = await self.store.get_order(order_hash_hex.lower())
        record = None if stored is None else await self.readable(stored)
        if record is None:
            raise OrderNotFound(f"No order {order_hash_hex} is listed; publish it first.")
        return record

    async def readable(self, stored: StoredOrder) -> OrderRecord | None:
        """The row as a record, or None after retiring it (dead) when it cannot be read:
        one bad row must not fail a listing or the sync loop."""
        try:
            return to_record(stored)
        except (ValueError, KeyError, TypeError) as e:  # pydantic's ValidationError too
            await self._retire_unreadable(stored.hash, str(e)[:200])
            return None

    async def _retire_unreadable(self, order_hash_hex: str, error: str) -> None:
        log.warning("market.unreadable_order", hash=order_hash_hex, error=error)
        await self.store.update_order(
            order_hash_hex, status="dead", status_reason="unreadable listing"
        )

    async def list_orders(self, query: OrderQuery) -> OrderPage:
        rows, total, exact = await self.store.list_orders(query)
        records = []
        for row in rows:
            record = await self.readable(row)
            if record is None:
                total -= 1
            else:
                records.append(record)
        full = len(rows) == query.limit
        return OrderPage(
            orders=records,
            total=total,
            total_exact=exact,
            limit=query.limit,
            offset=query.offset,
            next=rows[-1].cursor if full and rows else None,
        )

    async def list_page_json(self, query: OrderQuery) -> bytes:
        """`list_orders` as the JSON of an OrderPage, rendered from the stored rows
        (`listing`): what GET /v1/orders answers."""
        rows, total, exact = await self.store.list_page(query)
        records = []
        for row in rows:
            record = self._rendered.render(row)
            if record is None:
                await self._retire_unreadable(row.hash, "listing rendered it unreadable")
                total -= 1
            else:
                records.append(record)
        cursor = None
        if rows and len(rows) == query.limit:
            last = rows[-1]
            cursor = f"{int(last.price)}:{last.published_at!r}:{last.hash}"
        return listing.page_json(records, total, exact, query.limit, query.offset, cursor)

    async def cancel(self, order_hash_hex: str, signature: str) -> OrderRecord:
        """Withdraws a listing when `signature` is the owner's EIP-191 signature of
        `cancel_message`; the order stays valid on-chain (cancel it there to be safe)."""
        order_hash_hex = order_hash_hex.lower()
        stored = await self.store.get_order(order_hash_hex)
        if stored is None:
            raise OrderNotFound(f"No order {order_hash_hex} is listed; nothing to cancel.")
        message = encode_defunct(text=cancel_message(order_hash_hex, self.chain_id, self.hub))
        try:
            signer = Account.recover_message(message, signature=signature)
        except Exception as e:
            raise ForgedSignature(FORGED) from e
        if signer != stored.owner:
            raise ForgedSignature(FORGED)
        if stored.status != "open":
            return to_record(stored)  # already closed: idempotent
        await self.store.update_order(
            order_hash_hex, status="cancelled", status_reason="cancelled off-chain by the owner"
        )
        record = await self.get(order_hash_hex)
        self.events.publish_json(events.CANCELLED, record.model_dump_json())
        return record

    async def apply_chain_state(
        self,
        stored: StoredOrder,
        consumed: int,
        owner: str | None = None,
        check_owner: bool = False,
    ) -> bool:
        """Updates an open order from the chain; True when something changed."""
        status, remaining, reason = chain_status(stored.volume, consumed)
        if status == "open" and check_owner and owner != stored.owner:
            status = "dead"
            reason = "asset unknown on-chain" if owner is None else "asset owner changed"
        if status == stored.status and remaining == stored.remaining:
            return False
        await self.store.update_order(
            stored.hash, status=status, status_reason=reason, remaining=remaining
        )
        record = await self.get(stored.hash)
        event = events.CANCELLED if status == "cancelled" else events.UPDATED
        self.events.publish_json(event, record.model_dump_json())
        return True

    # ------------------------------------------------------------ prices

    async def record_deal(
        self,
        category: int,
        price: int,
        volume: int,
        timestamp: float,
        deal_id: str | bytes | None = None,
        block: int | None = None,
    ) -> bool:
        """Adds a matched deal (workerpool price per task) to the price index; a deal id
        seen before is ignored, so replaying events does not count a deal twice."""
        if isinstance(deal_id, bytes):
            deal_id = _hex(deal_id)
        deal = DealRow(deal_id or "local:" + uuid.uuid4().hex, category, price, volume, timestamp)
        created = await self.store.insert_deal(deal, block)
        if created:
            self.events.publish(
                events.DEAL,
                {
                    "deal_id": deal.deal_id,
                    "category": category,
                    "price": price,
                    "volume": volume,
                    "timestamp": timestamp,
                },
            )
        return created

    async def candles(
        self, category: int, interval: int, start: float | None = None, end: float | None = None
    ) -> list[OHLC]:
        deals = await self.store.deals_in(category, start, end)
        return candles((PricePoint(d.timestamp, d.price, d.volume) for d in deals), interval)

    async def latest_prices(self) -> list[tuple[DealRow, int]]:
        return await self.store.latest_prices()
