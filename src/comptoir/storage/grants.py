"""Upload grants: storage takes a blob only from a party the chain knows, for a purpose.

The uploader signs (EIP-191) a short-lived grant naming exactly one blob (sha256 and
size), the network (chain id and hub, so a grant for one network is worth nothing at
another's storage) and what the blob is for:

- ``task:0x<task id>``: a result. The evidence is the worker's assignment (deal, index,
  block, the scheduler's authorization); storage checks it against the chain the way the
  key service checks a key release (``scheduler.keypolicy.check_upload``).
- ``asset:<id>``: an app or dataset package. The registry's asset must hold this checksum
  and the uploader must own it, so packages are registered first, then uploaded.

A grant travels in the ``X-Comptoir-Grant`` header as base64url JSON, at most 8 KiB, and
is single-use (``SpentGrants``): a captured one cannot be spent again.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from comptoir.exceptions import StorageError
from comptoir.httpguard import BodyRefused, parse_json
from comptoir.storage.digest import normalize_digest
from comptoir.storage.keys import recover_signer, sign_text

GRANT_HEADER = "X-Comptoir-Grant"
MAX_GRANT_BYTES = 8 * 1024  # a deal's JSON and two signatures fit in 3 KiB
MAX_GRANT_TTL_S = 600  # a grant expiring later than this from now is refused
DEFAULT_GRANT_TTL_S = 300

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_PURPOSE = re.compile(r"^(task:0x[0-9a-f]{64}|asset:[0-9]{1,30})$")
_SIGNATURE = re.compile(r"^0x[0-9a-fA-F]{130}$")
_NONCE = re.compile(r"^[0-9a-f]{32}$")


class GrantRefused(StorageError):
    """An upload grant storage will not honour; ``status`` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Network:
    """The chain a storage service serves: grants must name it."""

    chain_id: int
    hub: str


@dataclass(frozen=True)
class UploadGrant:
    uploader: str
    sha256: str
    size: int
    expires: int
    network: Network
    purpose: str
    nonce: str
    evidence: dict[str, Any]
    signature: str

    @property
    def message(self) -> str:
        return grant_message(
            self.sha256,
            self.size,
            self.expires,
            self.network,
            self.purpose,
            self.uploader,
            self.nonce,
        )


def grant_message(
    sha256: str,
    size: int,
    expires: int,
    network: Network,
    purpose: str,
    uploader: str,
    nonce: str,
) -> str:
    # the nonce makes two grants for the same blob in the same second two grants
    return (
        "Comptoir: upload blob\n"
        f"chain: {network.chain_id}\n"
        f"hub: {network.hub.lower()}\n"
        f"uploader: {uploader.lower()}\n"
        f"sha256: {normalize_digest(sha256)}\n"
        f"size: {size}\n"
        f"for: {purpose}\n"
        f"expires: {expires}\n"
        f"nonce: {nonce}"
    )


def task_purpose(task_id: bytes) -> str:
    return f"task:0x{task_id.hex()}"


def asset_purpose(asset: int) -> str:
    return f"asset:{asset}"


def sign_grant(
    account: Any,
    sha256: str,
    size: int,
    network: Network,
    purpose: str,
    evidence: dict[str, Any] | None = None,
    ttl_s: int = DEFAULT_GRANT_TTL_S,
    now: float | None = None,
) -> str:
    """The header value granting `account`'s upload of one blob for `purpose`."""
    uploader = str(account.address)
    expires = int(time.time() if now is None else now) + ttl_s
    nonce = secrets.token_hex(16)
    message = grant_message(sha256, size, expires, network, purpose, uploader, nonce)
    doc = {
        "uploader": uploader,
        "sha256": normalize_digest(sha256),
        "size": size,
        "expires": expires,
        "chain": network.chain_id,
        "hub": network.hub,
        "for": purpose,
        "nonce": nonce,
        "evidence": evidence or {},
        "signature": sign_text(account.key, message),
    }
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode()


def _field(doc: dict[str, Any], name: str, kind: type) -> Any:
    value = doc.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise GrantRefused(400, f"The upload grant's '{name}' is missing or malformed.")
    return value


def parse_grant(header: str) -> UploadGrant:
    """The grant in a header value, bounded before it is decoded; GrantRefused (400) for
    anything malformed. Its signature and claims are checked by :func:`verify_grant`."""
    if len(header) > MAX_GRANT_BYTES:
        raise GrantRefused(400, f"The upload grant is larger than {MAX_GRANT_BYTES} bytes.")
    try:
        raw = base64.urlsafe_b64decode(header.encode("ascii"))
        doc = parse_json(raw, max_bytes=MAX_GRANT_BYTES, max_depth=8, max_items=200)
    except (ValueError, UnicodeError, BodyRefused):
        raise GrantRefused(400, "The upload grant is not base64url JSON.") from None
    if not isinstance(doc, dict):
        raise GrantRefused(400, "The upload grant is not a JSON object.")
    uploader, signature = _field(doc, "uploader", str), _field(doc, "signature", str)
    purpose, hub = _field(doc, "for", str), _field(doc, "hub", str)
    if not _ADDRESS.match(uploader) or not _ADDRESS.match(hub):
        raise GrantRefused(400, "The upload grant's uploader or hub is not an address.")
    if not _PURPOSE.match(purpose):
        raise GrantRefused(400, "The upload grant must be for 'task:0x<id>' or 'asset:<id>'.")
    nonce = _field(doc, "nonce", str)
    if not _NONCE.match(nonce):
        raise GrantRefused(400, "The upload grant's nonce is not 32 hex digits.")
    if not _SIGNATURE.match(signature):
        raise GrantRefused(400, "The upload grant's signature is not 65 bytes of hex.")
    try:
        sha256 = normalize_digest(_field(doc, "sha256", str))
    except ValueError:
        raise GrantRefused(400, "The upload grant's sha256 is not a digest.") from None
    size, expires = _field(doc, "size", int), _field(doc, "expires", int)
    chain_id = _field(doc, "chain", int)
    if not (0 <= size < 2**63 and 0 <= expires < 2**40 and 0 < chain_id < 2**63):
        raise GrantRefused(400, "The upload grant's size, expiry or chain is out of range.")
    return UploadGrant(
        uploader=uploader,
        sha256=sha256,
        size=size,
        expires=expires,
        network=Network(chain_id, hub),
        purpose=purpose,
        nonce=nonce,
        evidence=_field(doc, "evidence", dict),
        signature=signature,
    )


def verify_grant(
    grant: UploadGrant, network: Network, sha256: str | None, now: float | None = None
) -> None:
    """Raises GrantRefused unless `grant` is the uploader's, for this network and this
    blob, and not expired (nor expiring implausibly late)."""
    now = time.time() if now is None else now
    if grant.network.chain_id != network.chain_id or grant.network.hub.lower() != (
        network.hub.lower()
    ):
        raise GrantRefused(403, "The upload grant is for another network than this storage's.")
    if sha256 is None or normalize_digest(sha256) != grant.sha256:
        raise GrantRefused(400, "Name the grant's sha256 in the 'expected' query parameter.")
    if grant.expires <= now:
        raise GrantRefused(401, "The upload grant has expired; sign a fresh one and retry.")
    if grant.expires > now + MAX_GRANT_TTL_S:
        raise GrantRefused(
            401, f"Upload grants may live at most {MAX_GRANT_TTL_S} s; sign a shorter one."
        )
    signer = recover_signer(grant.message, grant.signature)
    if signer is None or signer.lower() != grant.uploader.lower():
        raise GrantRefused(401, "The upload grant is not signed by the uploader it names.")


class SpentGrants:
    """Signatures of grants already honoured, kept until they expire (single use). Only
    grants that passed the chain check get here; past `max_entries` the oldest go."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._spent: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, grant: UploadGrant) -> bool:
        """Whether this grant was spent (a replay is refused before any chain read)."""
        with self._lock:
            return grant.signature.lower() in self._spent

    def spend(self, grant: UploadGrant, now: float | None = None) -> bool:
        """False when this grant was spent before."""
        now = time.time() if now is None else now
        key = grant.signature.lower()
        with self._lock:
            while self._spent and (
                len(self._spent) >= self._max or next(iter(self._spent.values())) <= now
            ):
                self._spent.popitem(last=False)
            if key in self._spent:
                return False
            self._spent[key] = float(grant.expires)
            return True


# What the chain says about a grant: the identities its upload is charged to (the worker
# and the deal's scheduler, or the asset's owner); GrantRefused when the chain says no.
GrantCheck = Callable[[UploadGrant], Awaitable[list[str]]]


@dataclass(frozen=True)
class UploadGate:
    """What a storage service needs to take uploads from strangers."""

    network: Network
    check: GrantCheck
    spent: SpentGrants
