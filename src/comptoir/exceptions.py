"""Every error Comptoir raises on purpose derives from :class:`ComptoirError`.

Each message is one sentence saying what went wrong and what to do about it; the CLI prints
``str(error)`` and exits non-zero, never a traceback.

Tree::

    ComptoirError
    ├── ConfigError            bad or missing configuration, unknown names
    │   ├── UnknownNameError       a name that does not exist (with close matches)
    │   ├── AmbiguousName          a name several owners registered (candidates listed)
    │   └── InvalidAmount          an amount that is not exact, negative or out of range
    ├── ChainError             the Ethereum node or the contracts
    │   ├── ChainUnreachable       no JSON-RPC endpoint answers
    │   ├── NotDeployed            no Comptoir deployment recorded for this chain
    │   └── TransactionRejected    a pre-check or the chain refused a transaction
    ├── OrderError             malformed, forged or unmatchable orders
    ├── StorageError           content-addressed storage
    │   ├── BlobNotFound
    │   ├── ChecksumMismatch       bytes do not match the expected digest
    │   └── StorageUnavailable     the server is down or failing (transient)
    ├── SandboxError           the sandbox could not run an app
    ├── DevnetError            the local devnet could not be started or stopped
    ├── MarketError            the order-book API refused a request
    └── SchedulerError         the workerpool scheduler refused a request
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ComptoirError(Exception):
    """Root of every error Comptoir raises on purpose."""


class ConfigError(ComptoirError):
    """Bad or missing configuration."""


class UnknownNameError(ConfigError):
    """A name (command, asset, network...) that does not exist, with close matches."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        names = list(known)
        self.suggestions = difflib.get_close_matches(name, names, n=3)
        if self.suggestions:
            text = f"Unknown {kind} {name!r}. Did you mean "
            super().__init__(text + f"{', '.join(repr(s) for s in self.suggestions)}?")
            return
        super().__init__(f"Unknown {kind} {name!r}; {_where_to_look(kind, names)}.")


# what a user who mistyped a name can do (no close match to suggest)
_LISTINGS = {
    "app": "see 'comptoir app list'",
    "dataset": "see 'comptoir dataset list'",
    "workerpool": "see 'comptoir pool list'",
    "wallet": "see 'comptoir wallet list', or give an address or devnet:N",
}


def _where_to_look(kind: str, known: list[str]) -> str:
    if kind in _LISTINGS:
        return _LISTINGS[kind]
    if known and len(known) <= 12:
        return f"give one of {', '.join(known)}"
    return f"check the {kind}'s spelling"


class AmbiguousName(ConfigError):
    """An asset name registered by several owners: refused rather than guessed."""

    def __init__(self, kind: str, name: str, listing: str) -> None:
        self.kind, self.name = kind, name
        group = "pool" if kind == "workerpool" else kind
        super().__init__(
            f"Several owners registered a {kind} named {name!r} ({listing}); give its id or "
            f"'{name}@<owner address>' (see 'comptoir {group} list')."
        )


class InvalidAmount(ConfigError):
    """An amount that is not an exact number of units, is negative, or does not fit."""


class ChainError(ComptoirError):
    """The Ethereum node or the contracts."""


class ChainUnreachable(ChainError):
    """No JSON-RPC endpoint answers."""

    def __init__(self, url: str) -> None:
        self.url = url
        super().__init__(
            f"No Ethereum node answers at {url}; start one with 'comptoir devnet up' "
            "or set COMPTOIR_RPC_URL to a reachable endpoint."
        )


class NotDeployed(ChainError):
    """No Comptoir deployment is recorded for the chain in use."""


class TransactionRejected(ChainError):
    """A pre-check or the chain refused a transaction; ``reason`` is the revert string."""

    def __init__(self, message: str, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)


class OrderError(ComptoirError):
    """Malformed, forged or unmatchable orders."""


class StorageError(ComptoirError):
    """Content-addressed storage failed."""


class BlobNotFound(StorageError):
    """No blob with that digest is stored."""


class ChecksumMismatch(StorageError):
    """Bytes do not match the digest they were fetched by (or the one on-chain)."""


class StorageUnavailable(StorageError):
    """The storage server could not be reached or answered 5xx: worth retrying later."""


class SandboxError(ComptoirError):
    """The sandbox could not run an app (as opposed to the app failing inside it)."""


class BuildError(ComptoirError):
    """The Vyper compiler refused a contract, or no such contract exists."""


class DevnetError(ComptoirError):
    """The local devnet could not be started, provisioned or stopped."""


class MarketError(ComptoirError):
    """The order-book API refused a request."""


class SchedulerError(ComptoirError):
    """The workerpool scheduler refused a request."""


class InvalidDigest(StorageError):
    """A string that is not a lowercase 64-hex-digit sha256 digest."""


class DecryptionError(StorageError):
    """An encrypted dataset could not be decrypted: wrong key or tampered bytes."""


class KeyReleaseDenied(StorageError):
    """The key service refused to release (or register) a dataset key."""


class AppPackageError(ComptoirError):
    """An app package (bundle or OCI image) is malformed or unsafe to unpack."""


class PackageLimitExceeded(AppPackageError):
    """An app package unpacks past the worker's limits (bytes, entries, depth, ratio)."""


class InvalidOrder(MarketError):
    """An order, or a query about orders, is malformed (HTTP 422)."""


class ForgedSignature(MarketError):
    """A signature was not made by the owner of what it signs (HTTP 400)."""


class OrderNotFound(MarketError):
    """No order with that hash is listed (HTTP 404)."""


class IndexNotFound(MarketError):
    """The market's index holds no such deal, task or asset as final (HTTP 404)."""


class IndexUnavailable(MarketError):
    """The market's index cannot answer (no index, unreachable, or an answer that does not
    hold up); the SDK reads the chain's logs instead."""


class ListingRefused(MarketError):
    """The owner may not list more now: too many open orders, or too little deposited
    on the hub (HTTP 403)."""


class SchedulerUnreachable(SchedulerError):
    """The worker could not reach its scheduler (network error or 5xx)."""


class AssignmentRefused(SchedulerError):
    """A worker refuses an assignment: it does not match the chain, or the app or dataset
    bytes do not match their on-chain checksum."""


class WalletError(ConfigError):
    """A wallet (encrypted keystore) is missing, malformed, or the password is wrong."""


class NoMatchingOrder(OrderError):
    """The order book holds no set of orders that a request can be matched with."""


class ResultError(ComptoirError):
    """A task's result cannot be found, downloaded, or does not match its on-chain digest."""
