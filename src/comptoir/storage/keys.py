"""Dataset key service: owners deposit keys, authorized workers get them.

Owners register ``dataset checksum -> AES key`` with an EIP-191 signature. A worker first
asks for a single-use nonce, then asks for the key with its signature over the nonce plus
``evidence`` (deal id, task index, scheduler authorization…). Whether that evidence is
enough is decided by a pluggable :class:`KeyReleasePolicy`; the chain-backed policy lives
with the chain code, :class:`SignedNoncePolicy` here proves the worker's identity and
delegates the deal check to a callable.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import APIRouter, FastAPI, HTTPException
from pydantic import BaseModel, Field

from comptoir.exceptions import (
    ChainUnreachable,
    InvalidDigest,
    KeyReleaseDenied,
    StorageError,
    StorageUnavailable,
)
from comptoir.httpguard import guard
from comptoir.storage.digest import normalize_digest

# -- signed messages (what owners and workers sign, EIP-191 personal_sign) ---------------


def registration_message(dataset_checksum: str, key: bytes) -> str:
    # Signs a hash of the key, not the key: the signature may be logged, the key must not.
    return (
        "Comptoir: register dataset key\n"
        f"dataset: 0x{normalize_digest(dataset_checksum)}\n"
        f"key-sha256: {hashlib.sha256(key).hexdigest()}"
    )


def release_message(dataset_checksum: str, worker: str, nonce: str) -> str:
    return (
        "Comptoir: request dataset key\n"
        f"dataset: 0x{normalize_digest(dataset_checksum)}\n"
        f"worker: {worker.lower()}\n"
        f"nonce: {nonce}"
    )


def recover_signer(message: str, signature: str) -> str | None:
    """The address that signed ``message`` (EIP-191), or None for a malformed signature."""
    try:
        return str(Account.recover_message(encode_defunct(text=message), signature=signature))
    except Exception:  # eth_account raises several types for garbage signatures
        return None


def sign_text(private_key: Any, message: str) -> str:
    """EIP-191 signature as 0x-hex (``private_key``: hex, bytes or an eth_account account)."""
    signed = Account.sign_message(encode_defunct(text=message), private_key=private_key)
    return "0x" + bytes(signed.signature).hex().removeprefix("0x")


class NoncesBusy(StorageUnavailable):
    """Too many key requests at once: answered 429, retried by the worker."""


# -- policy ------------------------------------------------------------------------------


@runtime_checkable
class KeyReleasePolicy(Protocol):
    async def authorize(self, worker: str, dataset_checksum: str, evidence: dict[str, Any]) -> bool:
        """True when ``worker`` may receive the key of ``dataset_checksum`` now."""
        ...


DealCheck = Callable[[str, str, dict[str, Any]], bool | Awaitable[bool]]


class NonceBook:
    """Single-use, expiring nonces bound to the worker they were issued to (replay defence).

    Anyone may ask for a nonce without signing anything, so issuing one keeps no state: a
    nonce is ``<issued ms>-<random>-<HMAC(secret, worker, issued, random)>``, checked on
    use against this book's secret (per process: a restart voids what was handed out) and
    its age. Only nonces presented for a release are remembered, until they expire, so
    none is used twice; that table holds at most `max_spent` (expired entries leave from
    the front, then the oldest when it is at least `min_age_s` old). Fuller than that is a
    flood: the release is answered 429 (NoncesBusy) and the worker retries.
    """

    def __init__(
        self,
        ttl_s: float = 120.0,
        max_spent: int = 100_000,
        min_age_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s, self._max, self._min_age_s, self._clock = ttl_s, max_spent, min_age_s, clock
        self._secret = secrets.token_bytes(32)
        self._spent: OrderedDict[str, float] = OrderedDict()  # nonce -> spent at
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._spent)

    def _mac(self, worker: str, issued: str, salt: str) -> str:
        message = f"{worker.lower()}|{issued}|{salt}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def issue(self, worker: str) -> tuple[str, float]:
        now = self._clock()
        issued, salt = str(int(now * 1000)), secrets.token_hex(8)
        return f"{issued}-{salt}-{self._mac(worker, issued, salt)}", now + self.ttl_s

    def _fresh(self, worker: str, nonce: str, now: float) -> bool:
        parts = nonce.split("-") if len(nonce) <= 80 else []
        if len(parts) != 3 or not parts[0].isdigit() or len(parts[0]) > 16:
            return False
        issued, salt, mac = parts
        if not hmac.compare_digest(mac, self._mac(worker, issued, salt)):
            return False
        return int(issued) / 1000 <= now + 1 and int(issued) / 1000 + self.ttl_s > now

    def consume(self, worker: str, nonce: str) -> bool:
        """True once for a nonce this book issued to `worker` that has not expired;
        NoncesBusy when the table of spent nonces is full of young ones."""
        now = self._clock()
        if not self._fresh(worker, nonce, now):
            return False
        with self._lock:
            if nonce in self._spent:
                return False
            while self._spent:
                oldest, spent_at = next(iter(self._spent.items()))
                if spent_at + self.ttl_s > now and len(self._spent) < self._max:
                    break
                if spent_at + self._min_age_s > now:
                    raise NoncesBusy(
                        "The key service is answering too many key requests right now; "
                        f"retry in {int(self._min_age_s)} seconds."
                    )
                del self._spent[oldest]
            self._spent[nonce] = now
        return True


class SignedNoncePolicy:
    """Worker proves it holds its key (EIP-191 over a fresh nonce); ``deal_check`` decides
    whether that worker is entitled to the dataset (e.g. assigned a task of a deal that
    includes it). ``evidence`` must carry ``nonce`` and ``signature``; the rest is passed
    through to ``deal_check`` untouched.
    """

    def __init__(self, nonces: NonceBook, deal_check: DealCheck) -> None:
        self.nonces, self._deal_check = nonces, deal_check

    async def authorize(self, worker: str, dataset_checksum: str, evidence: dict[str, Any]) -> bool:
        nonce, signature = evidence.get("nonce"), evidence.get("signature")
        if not isinstance(nonce, str) or not isinstance(signature, str):
            return False
        if not self.nonces.consume(worker, nonce):
            return False
        signer = recover_signer(release_message(dataset_checksum, worker, nonce), signature)
        if signer is None or signer.lower() != worker.lower():
            return False
        verdict = self._deal_check(worker, normalize_digest(dataset_checksum), evidence)
        if inspect.isawaitable(verdict):
            verdict = await verdict
        return verdict is True


# -- vault -------------------------------------------------------------------------------


class KeyVault:
    """``dataset checksum -> (owner, key)``; in memory, or in SQLite when ``path`` is given.

    Keys are stored as given: protect the file (or the disk) of a persistent vault.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS keys (checksum TEXT PRIMARY KEY, owner TEXT NOT NULL,"
                " key BLOB NOT NULL)"
            )

    def put(self, dataset_checksum: str, owner: str, key: bytes) -> None:
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO keys (checksum, owner, key) VALUES (?, ?, ?)",
                (normalize_digest(dataset_checksum), owner.lower(), key),
            )

    def get(self, dataset_checksum: str) -> tuple[str, bytes] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT owner, key FROM keys WHERE checksum = ?",
                (normalize_digest(dataset_checksum),),
            ).fetchone()
        return None if row is None else (str(row[0]), bytes(row[1]))


OwnerResolver = Callable[[str], str | Awaitable[str | None] | None]


# -- HTTP --------------------------------------------------------------------------------


_ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class RegisterKey(BaseModel):
    dataset_checksum: str = Field(max_length=80)
    key: str = Field(max_length=66, description="hex of the 32-byte AES key")
    owner: str = Field(max_length=42)
    signature: str = Field(max_length=132)


class NonceRequest(BaseModel):
    worker: str = Field(pattern=_ADDRESS)


class ReleaseRequest(BaseModel):
    worker: str = Field(pattern=_ADDRESS)
    dataset_checksum: str = Field(max_length=80)
    evidence: dict[str, Any] = Field(default_factory=dict)


def create_key_router(
    vault: KeyVault,
    policy: KeyReleasePolicy,
    *,
    nonces: NonceBook | None = None,
    owner_of: OwnerResolver | None = None,
) -> APIRouter:
    """Routes under ``/keys``. ``owner_of(checksum)`` returns the dataset's on-chain owner;
    without it the first registrant of a checksum owns it (trust on first use)."""
    router = APIRouter(prefix="/keys", tags=["keys"])

    def _checksum(raw: str) -> str:
        try:
            return normalize_digest(raw)
        except InvalidDigest as exc:
            raise HTTPException(400, str(exc)) from None

    @router.post("/register", status_code=201)
    async def register(req: RegisterKey) -> dict[str, str]:
        checksum = _checksum(req.dataset_checksum)
        try:
            key = bytes.fromhex(req.key.removeprefix("0x"))
        except ValueError:
            raise HTTPException(400, "The key must be hex.") from None
        if len(key) != 32:
            raise HTTPException(400, "Dataset keys are 32 bytes (AES-256).")
        signer = recover_signer(registration_message(checksum, key), req.signature)
        if signer is None or signer.lower() != req.owner.lower():
            raise HTTPException(401, "The signature is not the owner's over this registration.")
        if owner_of is not None:
            expected = owner_of(checksum)
            if inspect.isawaitable(expected):
                expected = await expected
            if expected is None or str(expected).lower() != signer.lower():
                raise HTTPException(403, "Only the dataset's registered owner may deposit its key.")
        else:
            current = vault.get(checksum)
            if current is not None and current[0] != signer.lower():
                raise HTTPException(403, "Another owner already registered a key for this dataset.")
        vault.put(checksum, signer, key)
        return {"dataset_checksum": checksum, "owner": signer.lower()}

    if nonces is not None:
        book = nonces

        @router.post("/nonce")
        async def nonce(req: NonceRequest) -> dict[str, object]:
            value, expires = book.issue(req.worker)  # keeps no state: cannot fill up
            return {"nonce": value, "expires_at": expires}

    @router.post("/release")
    async def release(req: ReleaseRequest) -> dict[str, str]:
        checksum = _checksum(req.dataset_checksum)
        # Ask the policy before looking the key up so "no such dataset" and "not allowed"
        # are indistinguishable to an unauthorized caller.
        try:
            allowed = await policy.authorize(req.worker, checksum, req.evidence)
        except ChainUnreachable:  # cannot check now, not a refusal: the worker waits
            raise HTTPException(
                503, "The chain cannot be reached to check this release; retry shortly."
            ) from None
        except NoncesBusy as exc:
            raise HTTPException(429, str(exc), headers={"Retry-After": "10"}) from None
        entry = vault.get(checksum) if allowed else None
        if entry is None:
            raise HTTPException(403, "This worker is not authorized for a key of this dataset.")
        return {"dataset_checksum": checksum, "key": entry[1].hex()}

    return router


def create_key_service_app(
    vault: KeyVault,
    policy: KeyReleasePolicy,
    *,
    nonces: NonceBook | None = None,
    owner_of: OwnerResolver | None = None,
) -> FastAPI:
    app = FastAPI(title="Comptoir dataset key service", version="1")
    guard(app)
    app.include_router(create_key_router(vault, policy, nonces=nonces, owner_of=owner_of))
    return app


# -- client ------------------------------------------------------------------------------


class KeyServiceClient:
    """What dataset owners and workers call (sync; keys are small)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self._http.post(f"{self.base_url}/keys/{path}", json=body)
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"The key service at {self.base_url} is unreachable ({exc}); retry later."
            ) from exc
        if resp.status_code in (401, 403):
            raise KeyReleaseDenied(str(resp.json().get("detail", "refused")))
        if resp.status_code >= 500 or resp.status_code == 429:  # busy: retried, not a refusal
            raise StorageUnavailable(
                f"The key service answered {resp.status_code}: {resp.text[:200]}; retry later."
            )
        if resp.status_code >= 400:
            raise StorageError(f"The key service answered {resp.status_code}: {resp.text[:200]}")
        result: dict[str, Any] = resp.json()
        return result

    def register_key(self, dataset_checksum: str, key: bytes, owner_private_key: Any) -> None:
        owner = Account.from_key(owner_private_key).address
        self._post(
            "register",
            {
                "dataset_checksum": normalize_digest(dataset_checksum),
                "key": key.hex(),
                "owner": owner,
                "signature": sign_text(
                    owner_private_key, registration_message(dataset_checksum, key)
                ),
            },
        )

    def request_key(
        self, dataset_checksum: str, worker_private_key: Any, evidence: dict[str, Any] | None = None
    ) -> bytes:
        """Nonce, sign, ask; raises KeyReleaseDenied when the policy says no."""
        worker = Account.from_key(worker_private_key).address
        nonce = str(self._post("nonce", {"worker": worker})["nonce"])
        signature = sign_text(worker_private_key, release_message(dataset_checksum, worker, nonce))
        body = {
            "worker": worker,
            "dataset_checksum": normalize_digest(dataset_checksum),
            "evidence": {**(evidence or {}), "nonce": nonce, "signature": signature},
        }
        return bytes.fromhex(str(self._post("release", body)["key"]))
