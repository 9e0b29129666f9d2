"""Typed client over the deployed contracts: every transaction is checked before it is sent.

``ChainClient(w3, deployment, account)`` wraps the token, registry, hub and Contributions
contracts. Each state-changing method

1. runs cheap client-side checks (balances, allowance) and explains what to do,
2. simulates the call with ``eth_call`` and estimates its gas, so a revert becomes a
   :class:`TransactionRejected` with one sentence (see :mod:`comptoir.chain.errors`)
   and nothing is broadcast,
3. signs locally (nonces handed out under a per-account lock, so one process may send
   many transactions from many threads) and waits for the receipt.

Connection failures anywhere become :class:`ChainUnreachable`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import requests
import structlog
from coincurve import PrivateKey
from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from eth_utils.abi import collapse_if_tuple
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    ContractLogicError,
    TimeExhausted,
    TransactionNotFound,
    Web3RPCError,
)
from web3.types import RPCEndpoint

from comptoir.chain import eip712
from comptoir.chain import events as ev
from comptoir.chain.build import artifact
from comptoir.chain.errors import decode_revert_data, reason_from_message, rejected
from comptoir.chain.logscan import DEFAULT_MAX_RANGE, ScanPolicy
from comptoir.chain.types import (
    ZERO_ADDRESS,
    ZERO_BYTES32,
    AppOrder,
    DatasetOrder,
    Deal,
    RequestOrder,
    WorkerpoolOrder,
    _Struct,
    result_hash,
    result_seal,
)
from comptoir.exceptions import (
    ChainError,
    ChainUnreachable,
    ConfigError,
    OrderError,
    TransactionRejected,
)

if TYPE_CHECKING:
    from comptoir.chain.deploy import Deployment
    from comptoir.config import Settings

APP_TYPE_OCI = 1
APP_TYPE_BUNDLE = 2
KIND_APP, KIND_DATASET, KIND_WORKERPOOL = 1, 2, 3
SCHEDULER_STAKE_RATIO = 30
TASK_UNSET, TASK_ACTIVE, TASK_REVEALING, TASK_DONE = 0, 1, 2, 3
GAS_MARGIN = 1.25  # estimates are exact for the simulated state; leave room for drift
LOCK_MAX_SECONDS = 31_536_000  # the escrow's MAX_LOCK
VIEW_BATCH = 500  # eth_call per JSON-RPC batch (providers cap batch sizes; 500 is common)
_calls: dict[tuple[int, str], tuple[bytes, list[str]] | None] = {}


def _calldata(contract: Any, fn: str, args: Sequence[Any]) -> bytes | str:
    """Calldata of ``fn(*args)``: the selector and eth_abi's encoding of the arguments.
    web3's ``encode_abi`` normalizes every value of every argument first, which took tens
    of milliseconds per finalize of 32 tasks; the arguments here are already in ABI form
    (checksummed addresses, bytes, ints) and eth_abi still checks each one. An overloaded
    name, or a value eth_abi refuses, goes through web3."""
    key = (id(contract.abi), fn)
    if key not in _calls:
        entries = [e for e in contract.abi if e.get("type") == "function" and e["name"] == fn]
        if len(entries) == 1:
            types = [collapse_if_tuple(i) for i in entries[0]["inputs"]]
            selector = function_signature_to_4byte_selector(f"{fn}({','.join(types)})")
            _calls[key] = (selector, types)
        else:
            _calls[key] = None
    found = _calls[key]
    if found is None:
        return str(contract.encode_abi(fn, args=list(args)))
    selector, types = found
    try:
        return selector + abi_encode(types, list(args))
    except Exception:  # a value web3 would have normalized (a hex string for bytes): let it
        return str(contract.encode_abi(fn, args=list(args)))


_SEL_SCORE = function_signature_to_4byte_selector("score(address)")
_SEL_BALANCE_OF = function_signature_to_4byte_selector("balance_of(address)")
_SEL_LOCKED_UNTIL = function_signature_to_4byte_selector("locked_until(address)")
_SEL_OWNER = function_signature_to_4byte_selector("owner()")
OWNER_CALL_GAS = 100_000  # a hostile contract's owner() may burn what it is given
_SEL_IS_SETTLED = function_signature_to_4byte_selector("is_settled(bytes32,uint256)")
_SEL_CONSUMED = function_signature_to_4byte_selector("consumed(bytes32)")


def view_words(answers: Any) -> list[bytes]:
    """The first 32-byte word each answer of a JSON-RPC batch of eth_call returned."""
    if not isinstance(answers, list):  # the node refused the whole batch
        raise ChainError(f"The chain node refused a batch of calls: {answers}")
    out = []
    for answer in answers:
        if "error" in answer:
            raise ChainError(f"A view call failed on the chain node: {answer['error']}")
        out.append(bytes.fromhex(str(answer["result"])[2:])[:32].rjust(32, b"\x00"))
    return out


# ---------------------------------------------------------------- connection


class _Provider(HTTPProvider):
    """HTTP provider that fails fast (no retries) and raises ChainUnreachable."""

    def make_request(self, method: Any, params: Any) -> Any:
        try:
            return super().make_request(method, params)
        except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
            raise ChainUnreachable(str(self.endpoint_uri)) from exc

    def make_batch_request(self, batch_requests: Any) -> Any:
        try:
            return super().make_batch_request(batch_requests)
        except (requests.ConnectionError, requests.Timeout, ConnectionError) as exc:
            raise ChainUnreachable(str(self.endpoint_uri)) from exc


def connect(url: str, timeout: float = 30.0, check: bool = True) -> Web3:
    """A Web3 on `url`; with `check`, raises ChainUnreachable unless it answers."""
    w3 = Web3(
        _Provider(
            url,
            request_kwargs={"timeout": timeout},
            exception_retry_configuration=None,
            # web3's validation asks the node's chain id before every eth_call and gas
            # estimate (half of all requests); an endpoint's chain id never changes
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
    )
    if check:
        try:
            w3.eth.chain_id  # noqa: B018 - first request proves the endpoint answers
        except ChainUnreachable:
            raise
        except Exception as exc:  # an HTTP server that is not a JSON-RPC node
            raise ChainUnreachable(url) from exc
    return w3


# ---------------------------------------------------------------- transactions


_NONCE_LOCKS: dict[tuple[str, str], threading.Lock] = {}
_NEXT_NONCE: dict[tuple[str, str], int] = {}
_LAST_TX: dict[tuple[str, str], bytes] = {}  # the last transaction sent with that nonce cache
_REGISTRY_LOCK = threading.Lock()

log = structlog.get_logger("comptoir.chain")


def _nonce_key(w3: Web3, address: str) -> tuple[str, str]:
    return (str(getattr(w3.provider, "endpoint_uri", id(w3.provider))), address)


def forget_nonces() -> None:
    """Drop cached nonces (after an evm_revert, the chain's count goes backwards)."""
    with _REGISTRY_LOCK:
        _NEXT_NONCE.clear()
        _LAST_TX.clear()


def _revert_reason(exc: Exception) -> str | None:
    data = getattr(exc, "data", None)
    reason = decode_revert_data(data)
    if reason is None:
        message = getattr(exc, "message", None) or str(exc)
        reason = reason_from_message(str(message))
    return reason


@dataclass(frozen=True)
class Deadline:
    """A chain time a transaction must be mined before, and the revert reason past it."""

    timestamp: int
    reason: str


class Transactor:
    """Simulates, signs and sends transactions of one local account."""

    def __init__(self, w3: Web3, account: LocalAccount | None, tx_timeout: float = 120.0) -> None:
        self.w3 = w3
        self.account = account
        self.tx_timeout = tx_timeout
        self._cached_chain_id: int | None = None

    def _chain_id(self) -> int:
        # an endpoint's chain id never changes: ask once
        if self._cached_chain_id is None:
            self._cached_chain_id = int(self.w3.eth.chain_id)
        return self._cached_chain_id

    @property
    def address(self) -> str:
        if self.account is None:
            raise ChainError("This client has no account; give one to send transactions.")
        return str(self.account.address)

    def simulate(self, tx: dict[str, Any]) -> bytes:
        """eth_call; a revert raises TransactionRejected."""
        try:
            return bytes(self.w3.eth.call(tx))  # type: ignore[arg-type]
        except ContractLogicError as exc:
            raise rejected(_revert_reason(exc)) from None
        except Web3RPCError as exc:
            raise self._rpc_rejection(exc) from None

    def _rpc_rejection(self, exc: Web3RPCError) -> TransactionRejected:
        message = str(getattr(exc, "message", None) or exc)
        return self._rejection(message, _revert_reason(exc))

    def _rejection(self, message: str, reason: str | None) -> TransactionRejected:
        if reason is not None or "revert" in message.lower():
            return rejected(reason)
        if "insufficient funds" in message.lower():
            return TransactionRejected(
                f"The account {self.address} has not enough ether to pay for gas; fund it first.",
                reason=message,
            )
        return TransactionRejected(f"The node refused the transaction: {message}.", reason=message)

    def _answer_rejection(self, error: Any) -> TransactionRejected:
        """A TransactionRejected for the error object of one raw JSON-RPC answer."""
        if not isinstance(error, dict):
            return self._rejection(str(error), None)
        message = str(error.get("message", ""))
        reason = decode_revert_data(error.get("data")) or reason_from_message(message)
        if reason is None and error.get("code") == 3:  # a revert without a reason
            return rejected(None)
        return self._rejection(message, reason)

    def _fees(self) -> dict[str, int]:
        block = self.w3.eth.get_block("latest")
        base = block.get("baseFeePerGas")
        if base is None:  # pre-London chain
            return {"gasPrice": int(self.w3.eth.gas_price)}
        try:
            tip = int(self.w3.eth.max_priority_fee)
        except Exception:
            tip = 10**9
        return {"maxFeePerGas": 2 * int(base) + tip, "maxPriorityFeePerGas": tip}

    def _precheck(
        self, tx: dict[str, Any], estimate: bool, before: Deadline | None = None
    ) -> tuple[int | None, dict[str, int], int]:
        """Simulation, gas estimate, fees and the pending nonce in one JSON-RPC batch (one
        round trip instead of five: each request costs the node and web3 as much as the
        batch does). A revert in the simulation raises TransactionRejected, and so does a
        latest block already at `before`'s deadline (the next block would be past it);
        returns (gas estimate, fee fields, the chain's pending transaction count)."""
        call: dict[str, Any] = {k: tx[k] for k in ("from", "to", "data") if k in tx}
        call["value"] = hex(int(tx.get("value", 0)))
        batch: list[tuple[RPCEndpoint, list[Any]]] = [
            (RPCEndpoint("eth_call"), [call, "latest"]),
            (RPCEndpoint("eth_getBlockByNumber"), ["latest", False]),
            (RPCEndpoint("eth_maxPriorityFeePerGas"), []),
            (RPCEndpoint("eth_getTransactionCount"), [call["from"], "pending"]),
        ]
        if estimate:
            batch.append((RPCEndpoint("eth_estimateGas"), [call]))
        answers = self.w3.provider.make_batch_request(batch)  # type: ignore[attr-defined]
        if not isinstance(answers, list) or len(answers) != len(batch):
            raise ChainError(f"The chain node refused a batch of calls: {answers}")
        simulated, block, tip, count = answers[:4]
        for answer in (block, count):
            if "error" in answer or not answer.get("result"):
                raise ChainError(f"The chain node failed a read: {answer.get('error', answer)}")
        # the chain's clock, not ours, and before the simulation's own reason
        if before is not None and int(block["result"]["timestamp"], 16) >= before.timestamp:
            raise rejected(before.reason)
        for answer in (simulated, *answers[4:]):  # the simulation's reason comes first
            if "error" in answer:
                raise self._answer_rejection(answer["error"])
        gas = int(answers[4]["result"], 16) if estimate else None
        base = block["result"].get("baseFeePerGas")
        if base is None:  # pre-London chain
            fees = {"gasPrice": int(self.w3.eth.gas_price)}
        else:
            # a node without the method: the same default tip as _fees
            priority = int(tip["result"], 16) if "result" in tip else 10**9
            fees = {"maxFeePerGas": 2 * int(base, 16) + priority, "maxPriorityFeePerGas": priority}
        return gas, fees, int(count["result"], 16)

    def send(
        self,
        to: str | None,
        data: bytes | str,
        value: int = 0,
        gas: int | None = None,
        before: Deadline | None = None,
    ) -> Any:
        """Check, sign, send and wait; returns the receipt (status 1). `before`: refused
        unless the next block is before that deadline."""
        sender = self.address
        assert self.account is not None
        data_hex = data if isinstance(data, str) else "0x" + data.hex()
        tx: dict[str, Any] = {"from": sender, "data": data_hex, "value": value}
        if to is not None:
            tx["to"] = to_checksum_address(to)
        estimated, fees, pending = self._precheck(tx, gas is None, before)
        if estimated is not None:
            gas = int(estimated * GAS_MARGIN)
        tx.update(fees)
        tx["gas"] = gas
        tx["chainId"] = self._chain_id()
        tx_hash = self._sign_and_send(tx, pending)
        return self._receipt(tx, tx_hash)

    def _receipt(self, tx: dict[str, Any], tx_hash: Any) -> Any:
        """The receipt of a transaction just sent: read at once (a node that mines on
        arrival, like a local devnet, already has it), else polled until tx_timeout."""
        try:
            receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            try:
                receipt = self.w3.eth.wait_for_transaction_receipt(
                    tx_hash, timeout=self.tx_timeout, poll_latency=0.05
                )
            except TimeExhausted:
                raise ChainError(
                    f"Transaction 0x{bytes(tx_hash).hex()} was not mined within "
                    f"{self.tx_timeout:.0f} s; check the node, or raise COMPTOIR_TX_TIMEOUT."
                ) from None
        if receipt["status"] != 1:
            raise self._explain_failure(tx, receipt)
        return receipt

    def _sign_and_send(self, tx: dict[str, Any], pending: int | None = None) -> Any:
        """Sign with the next nonce and send; `pending`: the chain's pending count read
        just before (by _precheck), saving the first read."""
        assert self.account is not None
        key = _nonce_key(self.w3, self.address)
        with _REGISTRY_LOCK:
            lock = _NONCE_LOCKS.setdefault(key, threading.Lock())
        with lock:
            for attempt in range(2):
                if attempt == 0 and pending is not None:
                    # read before the lock: another thread may have sent since, which
                    # the cached next nonce (and its known last transaction) covers
                    chain_next = pending
                else:
                    chain_next = self.w3.eth.get_transaction_count(
                        to_checksum_address(self.address), "pending"
                    )
                cached = _NEXT_NONCE.get(key, 0)
                if cached > chain_next and not self._known(_LAST_TX.get(key)):
                    # the node forgot our last transaction (rolled back, restarted from
                    # older state, dropped it): a nonce past its count would leave a gap
                    # every later transaction waits on; the chain's count wins
                    log.warning(
                        "chain.nonce_resync", cached=cached, chain=chain_next, account=self.address
                    )
                    _NEXT_NONCE.pop(key, None)
                    cached = chain_next
                # the chain's pending count lags when our previous tx is still propagating
                nonce = max(chain_next, cached) if attempt == 0 else chain_next
                signed = self.account.sign_transaction({**tx, "nonce": nonce})
                try:
                    tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
                except Web3RPCError as exc:
                    message = str(getattr(exc, "message", None) or exc).lower()
                    if "nonce" in message and attempt == 0:
                        _NEXT_NONCE.pop(key, None)
                        continue
                    raise self._rpc_rejection(exc) from None
                _NEXT_NONCE[key] = nonce + 1
                _LAST_TX[key] = bytes(tx_hash)
                return tx_hash
        raise ChainError("Could not find a usable nonce; retry.")

    def in_flight(self) -> int:
        """Transactions of this account sent but not mined yet (the node's pending count
        minus its mined count): a caller about to repeat one should wait for them."""
        me = to_checksum_address(self.address)
        counts = [
            (RPCEndpoint("eth_getTransactionCount"), [me, tag]) for tag in ("pending", "latest")
        ]
        answers = self.w3.provider.make_batch_request(counts)  # type: ignore[attr-defined]
        if not isinstance(answers, list) or any("result" not in a for a in answers):
            raise ChainError(f"The chain node failed to count transactions: {answers}")
        pending, mined = (int(a["result"], 16) for a in answers)
        return max(0, pending - mined)

    def _known(self, tx_hash: bytes | None) -> bool:
        """Whether the node still knows a transaction we sent (pending or mined)."""
        if tx_hash is None:
            return False
        try:
            self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return False
        return True

    def _explain_failure(self, tx: dict[str, Any], receipt: Any) -> TransactionRejected:
        # replay at the failing block to recover the reason the receipt does not carry
        call: dict[str, Any] = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        call["gas"] = tx["gas"]
        try:
            self.w3.eth.call(call, receipt["blockNumber"] - 1)  # type: ignore[arg-type]
        except ContractLogicError as exc:
            return rejected(_revert_reason(exc))
        except Exception:
            pass
        if receipt["gasUsed"] >= tx["gas"]:
            return TransactionRejected(
                "The transaction ran out of gas; retry with a higher gas limit."
            )
        return TransactionRejected(
            f"The transaction 0x{bytes(receipt['transactionHash']).hex()} reverted on-chain."
        )


# ---------------------------------------------------------------- value types


@dataclass(frozen=True)
class AssetInfo:
    asset: int
    kind: int  # 1 app, 2 dataset, 3 workerpool, 0 unknown
    owner: str
    name: str
    location: str
    checksum: bytes
    app_type: int
    enclave_measurement: bytes


@dataclass(frozen=True)
class Category:
    category: int
    name: str
    time_ref: int


@dataclass(frozen=True)
class WorkerStanding:
    """What a scheduler reads of a worker before trusting it with work: its score, its free
    escrow balance and until when that balance may not leave the escrow."""

    score: int
    balance: int
    locked_until: int


@dataclass(frozen=True)
class TaskResult:
    """One task of a fast-path finalize batch."""

    index: int
    digest: bytes
    winners: int
    losers: int


@dataclass(frozen=True)
class WinnerSig:
    worker: str
    r: bytes
    vs: bytes


@dataclass(frozen=True)
class LoserSig:
    worker: str
    result_hash: bytes
    result_seal: bytes
    r: bytes
    vs: bytes


@dataclass(frozen=True)
class SignedContribution:
    """A worker's signed commitment to a result of one task (what it hands the scheduler)."""

    worker: str
    task_id: bytes
    result_hash: bytes
    result_seal: bytes
    r: bytes
    vs: bytes


def sign_contribution(
    account: LocalAccount, task_id: bytes, digest: bytes, chain_id: int, hub: str
) -> SignedContribution:
    """The worker `account` commits to `digest` for `task_id` (hub domain)."""
    worker = str(account.address)
    rh, seal = result_hash(task_id, digest), result_seal(worker, task_id, digest)
    r, vs = eip712.sign_contribution(account, task_id, rh, seal, chain_id, hub)
    return SignedContribution(worker, task_id, rh, seal, r, vs)


@dataclass(frozen=True)
class TaskOutcome:
    """A task to finalize: the agreed digest and every contribution gathered for it."""

    index: int
    digest: bytes
    contributions: Sequence[SignedContribution] = field(default_factory=tuple)


def build_finalize(
    deal: Deal, outcomes: Iterable[TaskOutcome]
) -> tuple[list[TaskResult], list[WinnerSig], list[LoserSig]]:
    """Arrange contributions the way the hub's finalize reads them.

    Tasks ascending by index; within each task winners (commitment equal to the digest's
    result hash) and losers, each sorted by ascending worker address.
    """
    tasks: list[TaskResult] = []
    winners: list[WinnerSig] = []
    losers: list[LoserSig] = []
    for outcome in sorted(outcomes, key=lambda o: o.index):
        consensus = result_hash(deal.task_id(outcome.index), outcome.digest)
        won = sorted(
            (c for c in outcome.contributions if c.result_hash == consensus),
            key=lambda c: int(c.worker, 16),
        )
        lost = sorted(
            (c for c in outcome.contributions if c.result_hash != consensus),
            key=lambda c: int(c.worker, 16),
        )
        tasks.append(TaskResult(outcome.index, outcome.digest, len(won), len(lost)))
        winners += [WinnerSig(c.worker, c.r, c.vs) for c in won]
        losers += [LoserSig(c.worker, c.result_hash, c.result_seal, c.r, c.vs) for c in lost]
    return tasks, winners, losers


def _abi(struct: _Struct) -> tuple[Any, ...]:
    """A struct as the ABI tuple web3 takes (checksummed addresses)."""
    kinds = dict(struct.EIP712_FIELDS)
    out = []
    for name, value in zip((n for n, _ in struct.EIP712_FIELDS), struct.as_tuple(), strict=True):
        out.append(to_checksum_address(value) if kinds[name] == "address" else value)
    return tuple(out)


_CANCEL = {
    AppOrder: "cancel_app_order",
    DatasetOrder: "cancel_dataset_order",
    WorkerpoolOrder: "cancel_workerpool_order",
    RequestOrder: "cancel_request_order",
}
_PRESIGN = {
    AppOrder: "presign_app_order",
    WorkerpoolOrder: "presign_workerpool_order",
    RequestOrder: "presign_request_order",
}


# ---------------------------------------------------------------- client


class ChainClient:
    """Everything the protocol offers, for one account (or read-only without one)."""

    def __init__(
        self,
        w3: Web3,
        deployment: Deployment,
        account: LocalAccount | None = None,
        tx_timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.deployment = deployment
        self.account = account
        self._authorizing_key: PrivateKey | None = None
        self.tx = Transactor(w3, account, tx_timeout)
        self.chain_id = deployment.chain_id
        self.token = w3.eth.contract(
            to_checksum_address(deployment.token), abi=artifact("ComptoirToken").abi
        )
        self.registry = w3.eth.contract(
            to_checksum_address(deployment.registry), abi=artifact("Registry").abi
        )
        self.hub = w3.eth.contract(to_checksum_address(deployment.hub), abi=artifact("Hub").abi)
        self.contributions = w3.eth.contract(
            to_checksum_address(deployment.contributions), abi=artifact("Contributions").abi
        )
        self.last_receipt: Any = None
        # a category never changes once created (the registry has no setter): read once
        self._categories: dict[int, Category] = {}
        # how event logs are read on this network (range cap, finality depth, disk cache)
        self.scan_policy = ScanPolicy()

    @classmethod
    def from_settings(
        cls, settings: Settings, account: LocalAccount | None = None, verify: bool = True
    ) -> ChainClient:
        """Connect where the settings point and find this chain's deployment record."""
        from comptoir.chain.deploy import find_deployment

        w3 = connect(settings.resolved_rpc_url(), settings.rpc_timeout)
        deployment = find_deployment(settings, int(w3.eth.chain_id))
        if verify:
            deployment.verify(w3)
        client = cls(w3, deployment, account, settings.tx_timeout)
        network = settings.network
        client.scan_policy = ScanPolicy(
            max_range=network.log_range if network else DEFAULT_MAX_RANGE,
            confirmations=network.confirmations if network else 0,
            cache_dir=settings.home / "index",
        )
        return client

    def with_account(self, account: LocalAccount) -> ChainClient:
        """The same deployment and connection, another signer."""
        client = ChainClient(self.w3, self.deployment, account, self.tx.tx_timeout)
        client.scan_policy = self.scan_policy
        return client

    @property
    def address(self) -> str:
        return self.tx.address

    # ------------------------------------------------------------ plumbing

    def _send(self, contract: Any, fn: str, *args: Any, before: Deadline | None = None) -> Any:
        data = _calldata(contract, fn, args)
        self.last_receipt = self.tx.send(contract.address, data, before=before)
        return self.last_receipt

    def _view(self, contract: Any, fn: str, *args: Any) -> Any:
        try:
            return getattr(contract.functions, fn)(*args).call()
        except ContractLogicError as exc:
            raise rejected(_revert_reason(exc)) from None

    def _me(self, address: str | None) -> str:
        return to_checksum_address(address) if address else self.address

    # ------------------------------------------------------------ chain

    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def timestamp(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def head(self) -> tuple[int, int]:
        """The latest block's number and timestamp, in one request."""
        block = self.w3.eth.get_block("latest")
        return int(block["number"]), int(block["timestamp"])

    def eth_balance(self, address: str | None = None) -> int:
        return int(self.w3.eth.get_balance(to_checksum_address(self._me(address))))

    # ------------------------------------------------------------ token

    def token_balance(self, address: str | None = None) -> int:
        return int(self._view(self.token, "balanceOf", self._me(address)))

    def allowance(self, owner: str | None = None, spender: str | None = None) -> int:
        return int(self._view(self.token, "allowance", self._me(owner), self._spender(spender)))

    def _spender(self, spender: str | None) -> str:
        return to_checksum_address(spender or self.deployment.hub)

    def mint(self, to: str, amount: int) -> None:
        """Mint test tokens (the token's minter, i.e. the deployer, only)."""
        self._send(self.token, "mint", to_checksum_address(to), amount)

    def approve(self, amount: int, spender: str | None = None) -> None:
        self._send(self.token, "approve", self._spender(spender), amount)

    def transfer_tokens(self, to: str, amount: int) -> None:
        held = self.token_balance()
        if held < amount:
            raise TransactionRejected(
                f"Your wallet holds {held} token units, fewer than the {amount} to send.",
                reason="client: token balance too low",
            )
        self._send(self.token, "transfer", to_checksum_address(to), amount)

    # ------------------------------------------------------------ escrow

    def balance(self, address: str | None = None) -> int:
        """Free escrow balance (what deals can use and withdraw can take)."""
        return int(self._view(self.hub, "balance_of", self._me(address)))

    def deposit(self, amount: int, approve: bool = True, beneficiary: str | None = None) -> None:
        """Move tokens from the wallet into the escrow, approving the hub first if needed."""
        if amount <= 0:
            raise TransactionRejected(
                "The amount must be greater than zero.", reason="client: zero amount"
            )
        held = self.token_balance()
        if held < amount:
            raise TransactionRejected(
                f"Your wallet holds {held} token units, fewer than the {amount} to deposit; "
                "get tokens first (on a devnet, 'comptoir devnet up' funds the test accounts).",
                reason="client: token balance too low",
            )
        if self.allowance() < amount:
            if not approve:
                raise TransactionRejected(
                    f"The hub may not move {amount} of your tokens; approve it first.",
                    reason="client: allowance too low",
                )
            self.approve(amount)
        if beneficiary is None:
            self._send(self.hub, "deposit", amount)
        else:
            self._send(self.hub, "deposit_for", to_checksum_address(beneficiary), amount)

    def withdraw(self, amount: int, recipient: str | None = None) -> None:
        free = self.balance()
        if free < amount:
            raise TransactionRejected(
                f"Your free balance is {free} token units, less than the {amount} to withdraw; "
                "tokens locked in deals come back when they are finalized or claimed.",
                reason="escrow: insufficient balance",
            )
        until = self.locked_until()
        if until > self.timestamp():
            raise TransactionRejected(
                f"Your free balance is locked until {until} (unix time) to back your work; "
                "withdraw after that time.",
                reason="escrow: balance locked",
            )
        if recipient is None:
            self._send(self.hub, "withdraw", amount)
        else:
            self._send(self.hub, "withdraw_to", to_checksum_address(recipient), amount)

    def locked_until(self, address: str | None = None) -> int:
        """Until when (unix time) an account's free balance may not leave the escrow."""
        return int(self._view(self.hub, "locked_until", self._me(address)))

    def lock(self, until: int) -> None:
        """Lock the free balance until `until` so it backs the stakes of unsettled work."""
        if until > self.timestamp() + LOCK_MAX_SECONDS:
            raise TransactionRejected(
                "A balance can be locked for at most a year; choose an earlier time.",
                reason="escrow: lock too long",
            )
        if until > self.locked_until():
            self._send(self.hub, "lock", until)

    # ------------------------------------------------------------ registry

    def _registered(self, receipt: Any) -> int:
        found = ev.from_receipt(receipt, ev.AssetRegistered)
        return int(found[0].asset)

    def register_app(
        self,
        name: str,
        location: str,
        checksum: bytes,
        app_type: int = APP_TYPE_OCI,
        enclave_measurement: bytes = ZERO_BYTES32,
    ) -> int:
        return self._registered(
            self._send(
                self.registry,
                "register_app",
                name,
                app_type,
                location,
                checksum,
                enclave_measurement,
            )
        )

    def register_dataset(self, name: str, location: str, checksum: bytes) -> int:
        return self._registered(
            self._send(self.registry, "register_dataset", name, location, checksum)
        )

    def register_workerpool(
        self, name: str, worker_stake_ratio: int = 10, scheduler_reward_ratio: int = 10
    ) -> int:
        return self._registered(
            self._send(
                self.registry,
                "register_workerpool",
                name,
                worker_stake_ratio,
                scheduler_reward_ratio,
            )
        )

    def set_workerpool_policy(
        self, workerpool: int, worker_stake_ratio: int, scheduler_reward_ratio: int
    ) -> None:
        self._send(
            self.registry,
            "set_workerpool_policy",
            workerpool,
            worker_stake_ratio,
            scheduler_reward_ratio,
        )

    def set_location(self, asset: int, location: str) -> None:
        """Move an asset's location; a workerpool's is its scheduler's API endpoint."""
        if len(location.encode()) > 256:
            raise ConfigError("A location is at most 256 bytes; give a shorter URL.")
        if self.owner_of(asset) != self.address:
            raise TransactionRejected(
                f"Asset {asset} is not owned by {self.address}; use its owner's wallet."
            )
        self._send(self.registry, "set_location", asset, location)

    def workerpool_endpoint(self, workerpool: int) -> str | None:
        """The scheduler API URL a workerpool's owner recorded on-chain (None when unset)."""
        info = self.asset(workerpool)
        if info.kind != KIND_WORKERPOOL or not info.location.startswith(("http://", "https://")):
            return None
        return info.location.rstrip("/")

    def transfer_asset(self, asset: int, new_owner: str) -> None:
        self._send(self.registry, "transfer_asset", asset, to_checksum_address(new_owner))

    def asset(self, asset: int) -> AssetInfo:
        kind, owner, name, location, checksum, app_type, measurement = self._view(
            self.registry, "asset", asset
        )
        return AssetInfo(
            asset,
            int(kind),
            to_checksum_address(owner),
            name,
            location,
            bytes(checksum),
            int(app_type),
            bytes(measurement),
        )

    def asset_count(self) -> int:
        return int(self._view(self.registry, "asset_count"))

    def contract_owner(self, contract: str, block: int | str = "latest") -> str | None:
        """What `contract`'s ``owner()`` returns at `block` (gas-capped; the state of an
        old block may be pruned by the node, then the latest); None when it has no such
        function or answers anything but one address."""
        call = {
            "to": to_checksum_address(contract),
            "data": "0x" + _SEL_OWNER.hex(),
            "gas": OWNER_CALL_GAS,
        }
        try:
            try:
                out = bytes(self.w3.eth.call(call, block))  # type: ignore[arg-type]
            except Web3RPCError:
                if block == "latest":
                    raise
                out = bytes(self.w3.eth.call(call, "latest"))  # type: ignore[arg-type]
        except (ContractLogicError, Web3RPCError):
            return None
        if len(out) != 32 or any(out[:12]):
            return None
        return to_checksum_address(out[12:])

    def owner_of(self, asset: int) -> str:
        return to_checksum_address(self._view(self.registry, "owner_of", asset))

    def workerpool_policy(self, workerpool: int) -> tuple[int, int]:
        """(worker stake ratio, scheduler reward ratio), percent of the workerpool price."""
        stake, reward = self._view(self.registry, "workerpool_policy", workerpool)
        return int(stake), int(reward)

    def create_category(self, name: str, time_ref: int) -> int:
        receipt = self._send(self.registry, "create_category", name, time_ref)
        return int(ev.from_receipt(receipt, ev.CategoryCreated)[0].category)

    def category(self, category: int) -> Category:
        known = self._categories.get(category)
        if known is not None:
            return known
        if category >= self.category_count():
            raise TransactionRejected(
                f"No category has id {category}; list the categories and pick an existing one.",
                reason="categories: unknown category",
            )
        return self._read_category(category)

    def _read_category(self, category: int) -> Category:
        read = Category(
            category,
            self._view(self.registry, "category_name", category),
            int(self._view(self.registry, "category_time_ref", category)),
        )
        self._categories[category] = read
        return read

    def category_count(self) -> int:
        return int(self._view(self.registry, "category_count"))

    def categories(self) -> list[Category]:
        return [
            self._categories.get(i) or self._read_category(i) for i in range(self.category_count())
        ]

    # ------------------------------------------------------------ orders

    def sign_order(self, order: _Struct) -> bytes:
        if self.account is None:
            raise ChainError("This client has no account to sign with.")
        return eip712.sign_order(order, self.account, self.chain_id, self.deployment.hub)

    def order_hash(self, order: _Struct) -> bytes:
        return eip712.order_hash(order, self.chain_id, self.deployment.hub)

    def consumed(self, order: _Struct | bytes) -> int:
        """Volume of an order already used by deals (2**256-1 once cancelled)."""
        digest = order if isinstance(order, bytes) else self.order_hash(order)
        return int(self._view(self.hub, "consumed", digest))

    def remaining(self, order: _Struct) -> int:
        volume = int(getattr(order, "volume"))  # noqa: B009 - every order type has it
        return max(volume - self.consumed(order), 0)

    def is_presigned(self, order: _Struct | bytes) -> bool:
        digest = order if isinstance(order, bytes) else self.order_hash(order)
        return bool(self._view(self.hub, "presigned", digest))

    def cancel_order(self, order: _Struct) -> None:
        fn = _CANCEL.get(type(order))  # type: ignore[call-overload]
        if fn is None:
            raise OrderError(f"Cannot cancel a {type(order).__name__}.")
        self._send(self.hub, fn, _abi(order))

    def presign_order(self, order: _Struct) -> None:
        fn = _PRESIGN.get(type(order))  # type: ignore[call-overload]
        if fn is None:
            raise OrderError(f"A {type(order).__name__} cannot be presigned; sign it instead.")
        self._send(self.hub, fn, _abi(order))

    def match_orders(
        self,
        app_order: AppOrder,
        app_sig: bytes,
        dataset_order: DatasetOrder | None,
        dataset_sig: bytes,
        workerpool_order: WorkerpoolOrder,
        workerpool_sig: bytes,
        request: RequestOrder,
        request_sig: bytes,
    ) -> Deal:
        """Match four orders into a deal; returns the Deal from the DealCreated event."""
        dataset_order = dataset_order or DatasetOrder.none()
        self._precheck_match(app_order, dataset_order, workerpool_order, request)
        receipt = self._send(
            self.hub,
            "match_orders",
            _abi(app_order),
            app_sig,
            _abi(dataset_order),
            dataset_sig,
            _abi(workerpool_order),
            workerpool_sig,
            _abi(request),
            request_sig,
        )
        return ev.from_receipt(receipt, ev.DealCreated)[0].deal  # type: ignore[no-any-return]

    def _precheck_match(
        self,
        app_order: AppOrder,
        dataset_order: DatasetOrder,
        workerpool_order: WorkerpoolOrder,
        request: RequestOrder,
    ) -> None:
        """Say how much is missing before the chain says 'too low' (amounts help the user)."""
        orders: list[_Struct] = [app_order, workerpool_order, request]
        if dataset_order.dataset != 0:
            orders.append(dataset_order)
        # the orders' consumed volumes and the requester's balance in one round trip
        requester = bytes.fromhex(to_checksum_address(request.requester)[2:]).rjust(32, b"\x00")
        calls = [_SEL_CONSUMED + self.order_hash(o) for o in orders]
        words = self._batch_views(self.deployment.hub, [*calls, _SEL_BALANCE_OF + requester])
        volume = min(
            max(int(getattr(o, "volume")) - int.from_bytes(w, "big"), 0)  # noqa: B009
            for o, w in zip(orders, words, strict=False)
        )
        if volume == 0:
            return  # the contract's own message names the problem
        price = (
            app_order.app_price + dataset_order.dataset_price + workerpool_order.workerpool_price
        )
        if request.min_worker_stake:
            ratio, _reward = self.workerpool_policy(workerpool_order.workerpool)
            stake = workerpool_order.workerpool_price * ratio // 100
            if stake < request.min_worker_stake:
                raise TransactionRejected(
                    f"Workerpool {workerpool_order.workerpool} now stakes {stake} token units "
                    f"per contribution, less than the request's minimum of "
                    f"{request.min_worker_stake}; choose another pool or lower the minimum.",
                    reason="poco: pool stakes below request",
                )
        free = int.from_bytes(words[-1], "big")
        if free < price * volume:
            raise TransactionRejected(
                f"The requester's free balance ({free} token units) is too low for this deal "
                f"({volume} tasks x {price} = {price * volume}); deposit more with "
                "'comptoir account deposit'.",
                reason="poco: requester balance too low",
            )

    def deal_created(self, receipt: Any | None = None) -> ev.DealCreated:
        """The DealCreated event of a match receipt (default: the last transaction)."""
        found = ev.from_receipt(
            receipt if receipt is not None else self.last_receipt, ev.DealCreated
        )
        if not found:
            raise ChainError("That transaction created no deal.")
        return found[0]  # type: ignore[no-any-return]

    def deal_created_at(self, deal_id: bytes, block: int) -> ev.DealCreated | None:
        """The DealCreated event of `deal_id` if it was emitted in `block` (the way a worker
        or a key service checks a deal it was told about), else None."""
        logs = self.w3.eth.get_logs(
            {
                "address": self.hub.address,
                "fromBlock": block,
                "toBlock": block,
                "topics": [
                    "0x" + ev.event_topic("DealCreated").hex(),
                    "0x" + deal_id.hex(),
                ],  # type: ignore[list-item]
            }
        )
        found = [e for e in ev.decode_logs(logs) if isinstance(e, ev.DealCreated)]
        return found[0] if found else None

    # ------------------------------------------------------------ fast path

    def finalize(
        self,
        deal: Deal,
        tasks: Sequence[TaskResult],
        winners: Sequence[WinnerSig],
        losers: Sequence[LoserSig] = (),
        callback_data: bytes = b"",
    ) -> list[ev.TaskFinalized]:
        """Settle a batch of tasks from worker-signed commitments (scheduler only)."""
        receipt = self._send(
            self.hub,
            "finalize",
            _abi(deal),
            [(t.index, t.digest, t.winners, t.losers) for t in tasks],
            [(to_checksum_address(w.worker), w.r, w.vs) for w in winners],
            [
                (to_checksum_address(x.worker), x.result_hash, x.result_seal, x.r, x.vs)
                for x in losers
            ],
            callback_data,
            # checked in the same round trip as the simulation
            before=Deadline(deal.final_deadline, "poco: final deadline passed"),
        )
        return ev.from_receipt(receipt, ev.TaskFinalized)

    def finalize_tasks(
        self, deal: Deal, outcomes: Iterable[TaskOutcome], callback_data: bytes = b""
    ) -> list[ev.TaskFinalized]:
        """finalize, sorting the gathered contributions into winners and losers."""
        tasks, winners, losers = build_finalize(deal, outcomes)
        return self.finalize(deal, tasks, winners, losers, callback_data)

    def sign_contribution(self, deal: Deal, index: int, digest: bytes) -> SignedContribution:
        """This account (a worker) commits to `digest` for task `index` of `deal`."""
        if self.account is None:
            raise ChainError("This client has no account to sign with.")
        return sign_contribution(
            self.account, deal.task_id(index), digest, self.chain_id, self.deployment.hub
        )

    def _before_deadline(self, deadline: int, reason: str) -> None:
        # the chain's clock, not ours: the next block must still be before the deadline
        if self.timestamp() >= deadline:
            raise rejected(reason)

    def claim(self, deal: Deal, indices: Sequence[int]) -> list[ev.TaskClaimed]:
        """Refund unfinished tasks after the final deadline (anyone)."""
        now = self.timestamp()
        if now < deal.final_deadline:
            raise TransactionRejected(
                f"The deal's tasks cannot be claimed before its final deadline "
                f"({deal.final_deadline - now} s from now).",
                reason="poco: final deadline not reached",
            )
        receipt = self._send(self.hub, "claim", _abi(deal), sorted(indices))
        return ev.from_receipt(receipt, ev.TaskClaimed)

    # ------------------------------------------------------------ hub views

    def score(self, worker: str) -> int:
        return int(self._view(self.hub, "score", to_checksum_address(worker)))

    def weight(self, worker: str) -> int:
        """The consensus weight the contracts give `worker`: min(max(s // 3, 3) - 1, 1000)."""
        return min(max(self.score(worker) // 3, 3) - 1, 1000)

    def is_settled(self, deal_id: bytes, index: int) -> bool:
        return bool(self._view(self.hub, "is_settled", deal_id, index))

    def worker_standings(self, workers: Iterable[str]) -> dict[str, WorkerStanding]:
        """Score, free escrow balance and lock of each worker, read in JSON-RPC batches
        (three calls per worker, one HTTP round trip per VIEW_BATCH calls)."""
        addresses = [to_checksum_address(w) for w in workers]
        selectors = (_SEL_SCORE, _SEL_BALANCE_OF, _SEL_LOCKED_UNTIL)
        calls = []
        for a in addresses:
            word = bytes.fromhex(a[2:]).rjust(32, b"\x00")
            calls += [sel + word for sel in selectors]
        values = [int.from_bytes(w, "big") for w in self._batch_views(self.deployment.hub, calls)]
        n = len(selectors)
        return {a: WorkerStanding(*values[n * i : n * (i + 1)]) for i, a in enumerate(addresses)}

    def settled_indices(self, deal_id: bytes, indices: Iterable[int]) -> set[int]:
        """Which of `indices` of the deal are settled, in JSON-RPC batches."""
        wanted = sorted(set(indices))
        calls = [_SEL_IS_SETTLED + deal_id + i.to_bytes(32, "big") for i in wanted]
        words = self._batch_views(self.deployment.hub, calls)
        return {i for i, w in zip(wanted, words, strict=True) if int.from_bytes(w, "big")}

    def _batch_views(self, to: str, calls: Sequence[bytes]) -> list[bytes]:
        """`eth_call` of each calldata on `to` at the latest block; the 32-byte words they
        return. Batched because a scheduler reads thousands of scores per pass: one HTTP
        request per call would cost more CPU than everything else it does."""
        out: list[bytes] = []
        provider = self.w3.provider
        for start in range(0, len(calls), VIEW_BATCH):
            chunk = calls[start : start + VIEW_BATCH]
            requests_ = [
                (RPCEndpoint("eth_call"), [{"to": to, "data": "0x" + c.hex()}, "latest"])
                for c in chunk
            ]
            out += view_words(provider.make_batch_request(requests_))  # type: ignore[attr-defined]
        return out

    def deal_exists(self, deal_id: bytes) -> bool:
        return bool(self._view(self.hub, "deal_exists", deal_id))

    def held_stakes(self) -> int:
        return int(self._view(self.hub, "held_stakes"))

    def onchain_path(self) -> str:
        return to_checksum_address(self._view(self.hub, "onchain_path"))

    # ------------------------------------------------------------ on-chain path

    def authorize(self, worker: str, task_id: bytes) -> bytes:
        """Scheduler side: authorize `worker` to contribute on-chain to `task_id`."""
        if self.account is None:
            raise ChainError("This client has no account to sign with.")
        if self._authorizing_key is None:  # one per dispatch: the key is built once
            self._authorizing_key = PrivateKey(bytes(self.account.key))
        digest = eip712.authorization_digest(
            worker, task_id, self.chain_id, self.deployment.contributions
        )
        return eip712.sign_digest(digest, self._authorizing_key)

    def contribute(self, deal: Deal, index: int, digest: bytes, authorization: bytes) -> list[Any]:
        """Worker side: commit to `digest` on-chain; the hub holds the worker stake."""
        self._before_deadline(deal.contribution_deadline, "poco: past contribution deadline")
        free = self.balance()
        if free < deal.worker_stake:
            raise TransactionRejected(
                f"Your free balance ({free}) cannot cover the worker stake ({deal.worker_stake}); "
                "deposit more with 'comptoir account deposit'.",
                reason="poco: worker stake too low",
            )
        task = deal.task_id(index)
        receipt = self._send(
            self.contributions,
            "contribute",
            _abi(deal),
            index,
            result_hash(task, digest),
            result_seal(self.address, task, digest),
            authorization,
        )
        return ev.from_receipt(receipt)

    def reveal(self, deal: Deal, index: int, digest: bytes) -> None:
        self._send(self.contributions, "reveal", _abi(deal), index, digest)

    def reopen(self, deal: Deal, index: int) -> None:
        self._send(self.contributions, "reopen", _abi(deal), index)

    def finalize_onchain(self, deal: Deal, index: int, callback_data: bytes = b"") -> list[Any]:
        """Scheduler side: settle a task from its on-chain contributions."""
        receipt = self._send(self.contributions, "finalize", _abi(deal), index, callback_data)
        return ev.from_receipt(receipt)

    def task_status(self, task_id: bytes) -> int:
        """0 unset, 1 accepting contributions, 2 revealing, 3 done (on-chain path)."""
        return int(self._view(self.contributions, "task_status", task_id))

    def reveal_deadline(self, task_id: bytes) -> int:
        return int(self._view(self.contributions, "task_reveal_deadline", task_id))

    def contributors(self, task_id: bytes) -> list[str]:
        return [
            to_checksum_address(a) for a in self._view(self.contributions, "contributors", task_id)
        ]

    def onchain_contribution(self, task_id: bytes, worker: str) -> tuple[int, bytes, bytes, int]:
        """(status, result hash, result seal, weight) of an on-chain contribution."""
        status, rh, seal, weight = self._view(
            self.contributions, "contribution", task_id, to_checksum_address(worker)
        )
        return int(status), bytes(rh), bytes(seal), int(weight)

    # ------------------------------------------------------------ events

    def events(
        self,
        from_block: int = 0,
        to_block: int | str = "latest",
        kinds: Iterable[type[ev.ChainEvent]] | None = None,
    ) -> list[ev.ChainEvent]:
        """Protocol events of this deployment over a block range."""
        d = self.deployment
        return ev.get_events(
            self.w3,
            [d.token, d.registry, d.hub, d.contributions],
            max(from_block, d.block),
            to_block,
            kinds,
        )


__all__ = [
    "APP_TYPE_BUNDLE",
    "APP_TYPE_OCI",
    "ZERO_ADDRESS",
    "AssetInfo",
    "Category",
    "ChainClient",
    "LoserSig",
    "SignedContribution",
    "TaskOutcome",
    "TaskResult",
    "Transactor",
    "WinnerSig",
    "build_finalize",
    "connect",
    "forget_nonces",
    "sign_contribution",
]
