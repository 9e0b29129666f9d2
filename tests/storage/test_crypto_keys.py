from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from comptoir.exceptions import DecryptionError, KeyReleaseDenied, StorageUnavailable
from comptoir.storage import decrypt_dataset, encrypt_dataset
from comptoir.storage.keys import (
    KeyReleasePolicy,
    KeyServiceClient,
    KeyVault,
    NonceBook,
    SignedNoncePolicy,
    create_key_service_app,
    registration_message,
    release_message,
    sign_text,
)

OWNER = Account.create()
WORKER = Account.create()
INTRUDER = Account.create()


def test_encrypt_roundtrip_and_format() -> None:
    blob, key = encrypt_dataset(b"secret rows")
    assert len(key) == 32
    assert len(blob) == 12 + len(b"secret rows") + 16
    assert b"secret rows" not in blob
    assert decrypt_dataset(blob, key) == b"secret rows"
    blob2, _ = encrypt_dataset(b"secret rows", key)
    assert blob2 != blob  # fresh nonce each time


def test_tampering_and_wrong_key_are_detected() -> None:
    blob, key = encrypt_dataset(b"x" * 1000)
    tampered = bytearray(blob)
    tampered[40] ^= 1
    with pytest.raises(DecryptionError):
        decrypt_dataset(bytes(tampered), key)
    with pytest.raises(DecryptionError):
        decrypt_dataset(blob, bytes(32))
    with pytest.raises(DecryptionError):
        decrypt_dataset(blob[:10], key)


class DealBook:
    """A real (in-memory) deal check: which worker may use which dataset."""

    def __init__(self) -> None:
        self.assignments: set[tuple[str, str, str]] = set()
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, worker: str, checksum: str, evidence: dict[str, Any]) -> bool:
        self.calls.append(evidence)
        return (worker.lower(), checksum, str(evidence.get("deal_id"))) in self.assignments


@pytest.fixture
def dataset() -> tuple[bytes, bytes, str]:
    blob, key = encrypt_dataset(b"training data")
    return blob, key, hashlib.sha256(blob).hexdigest()


def test_policy_is_a_key_release_policy() -> None:
    assert isinstance(SignedNoncePolicy(NonceBook(), DealBook()), KeyReleasePolicy)


def test_key_released_only_when_policy_agrees(
    serve: Callable[[Any], Any], dataset: tuple[bytes, bytes, str], tmp_path: Path
) -> None:
    blob, key, checksum = dataset
    deals = DealBook()
    nonces = NonceBook()
    app = create_key_service_app(
        KeyVault(tmp_path / "keys.db"), SignedNoncePolicy(nonces, deals), nonces=nonces
    )
    with serve(app) as url:
        client = KeyServiceClient(url)
        client.register_key(checksum, key, OWNER.key)

        # Valid signature, but the deal check says no.
        with pytest.raises(KeyReleaseDenied):
            client.request_key(checksum, WORKER.key, {"deal_id": "0xdeal"})
        assert deals.calls[-1]["deal_id"] == "0xdeal"

        deals.assignments.add((WORKER.address.lower(), checksum, "0xdeal"))
        got = client.request_key(checksum, WORKER.key, {"deal_id": "0xdeal"})
        assert got == key
        assert decrypt_dataset(blob, got) == b"training data"

        # Another worker in the same deal is not assigned: refused.
        with pytest.raises(KeyReleaseDenied):
            client.request_key(checksum, INTRUDER.key, {"deal_id": "0xdeal"})


def test_forged_and_replayed_requests_are_refused(
    serve: Callable[[Any], Any], dataset: tuple[bytes, bytes, str]
) -> None:
    _, key, checksum = dataset
    deals = DealBook()
    nonces = NonceBook()
    deals.assignments.add((WORKER.address.lower(), checksum, "d"))
    app = create_key_service_app(KeyVault(), SignedNoncePolicy(nonces, deals), nonces=nonces)
    with serve(app) as url:
        KeyServiceClient(url).register_key(checksum, key, OWNER.key)

        def release(worker: str, nonce: str, signature: str) -> httpx.Response:
            return httpx.post(
                f"{url}/keys/release",
                json={
                    "worker": worker,
                    "dataset_checksum": checksum,
                    "evidence": {"deal_id": "d", "nonce": nonce, "signature": signature},
                },
            )

        nonce = httpx.post(f"{url}/keys/nonce", json={"worker": WORKER.address}).json()["nonce"]
        # The intruder signs for the worker's identity: the recovered signer differs.
        forged = sign_text(INTRUDER.key, release_message(checksum, WORKER.address, nonce))
        assert release(WORKER.address, nonce, forged).status_code == 403
        # That nonce is now burnt, even with the right signature.
        good = sign_text(WORKER.key, release_message(checksum, WORKER.address, nonce))
        assert release(WORKER.address, nonce, good).status_code == 403

        nonce = httpx.post(f"{url}/keys/nonce", json={"worker": WORKER.address}).json()["nonce"]
        good = sign_text(WORKER.key, release_message(checksum, WORKER.address, nonce))
        ok = release(WORKER.address, nonce, good)
        assert ok.status_code == 200 and bytes.fromhex(ok.json()["key"]) == key
        assert release(WORKER.address, nonce, good).status_code == 403  # replay
        assert release(WORKER.address, "made-up", good).status_code == 403


def test_registration_needs_the_owner_signature(
    serve: Callable[[Any], Any], dataset: tuple[bytes, bytes, str]
) -> None:
    _, key, checksum = dataset
    owners = {checksum: OWNER.address}
    nonces = NonceBook()
    app = create_key_service_app(
        KeyVault(),
        SignedNoncePolicy(nonces, lambda *_: True),
        nonces=nonces,
        owner_of=owners.get,
    )
    with serve(app) as url:
        body = {
            "dataset_checksum": checksum,
            "key": key.hex(),
            "owner": OWNER.address,
            "signature": sign_text(INTRUDER.key, registration_message(checksum, key)),
        }
        assert httpx.post(f"{url}/keys/register", json=body).status_code == 401
        with pytest.raises(KeyReleaseDenied):  # valid signature, but not the on-chain owner
            KeyServiceClient(url).register_key(checksum, key, INTRUDER.key)
        KeyServiceClient(url).register_key(checksum, key, OWNER.key)
        assert KeyServiceClient(url).request_key(checksum, WORKER.key) == key


# -- the nonce table: strangers ask for nonces without signing anything ------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_nonce_requests_neither_fills_the_table_nor_voids_a_workers_nonce() -> None:
    nonces = NonceBook()
    mine, _ = nonces.issue(WORKER.address)
    for i in range(100_001):  # past any count a table of outstanding nonces could hold
        nonces.issue(f"0x{i:040x}")
        nonces.issue(WORKER.address)  # the worker's own address too
    assert len(nonces) == 0  # issuing keeps nothing
    assert nonces.consume(WORKER.address, mine)
    fresh, _ = nonces.issue(INTRUDER.address)  # and issuing still works
    assert nonces.consume(INTRUDER.address, fresh)


def test_a_nonce_is_for_one_worker_once_before_it_expires() -> None:
    clock = Clock()
    nonces = NonceBook(ttl_s=120, clock=clock)
    nonce, expires = nonces.issue(WORKER.address)
    assert expires == clock.now + 120
    assert not nonces.consume(INTRUDER.address, nonce)  # issued to someone else
    salt_changed = nonce[:-1] + ("0" if nonce[-1] != "0" else "1")
    assert not nonces.consume(WORKER.address, salt_changed)  # forged MAC
    assert not nonces.consume(WORKER.address, "1-2-3")
    assert not nonces.consume(WORKER.address, "x" * 10_000)
    assert nonces.consume(WORKER.address.upper().replace("0X", "0x"), nonce)  # any case
    assert not nonces.consume(WORKER.address, nonce)  # replay
    late, _ = nonces.issue(WORKER.address)
    clock.now += 121
    assert not nonces.consume(WORKER.address, late)  # expired
    assert not NonceBook().consume(WORKER.address, nonces.issue(WORKER.address)[0])  # other book


def test_the_spent_table_is_bounded_and_refuses_while_full_of_young_entries() -> None:
    clock = Clock()
    nonces = NonceBook(ttl_s=120, max_spent=3, min_age_s=10, clock=clock)
    for _ in range(3):
        assert nonces.consume(WORKER.address, nonces.issue(WORKER.address)[0])
    clock.now += 1
    waiting, _ = nonces.issue(WORKER.address)
    with pytest.raises(StorageUnavailable, match="retry in 10 seconds"):
        nonces.consume(WORKER.address, waiting)
    clock.now += 10  # the oldest are old enough to go
    assert nonces.consume(WORKER.address, waiting)
    assert len(nonces) == 3
    clock.now += 200  # and every expired one goes
    assert nonces.consume(WORKER.address, nonces.issue(WORKER.address)[0])
    assert len(nonces) == 1


def test_a_busy_key_service_answers_429_and_the_worker_retries(
    serve: Callable[[Any], Any], dataset: tuple[bytes, bytes, str]
) -> None:
    _, key, checksum = dataset
    deals = DealBook()
    deals.assignments.add((WORKER.address.lower(), checksum, "d"))
    nonces = NonceBook(max_spent=1, min_age_s=60)
    app = create_key_service_app(KeyVault(), SignedNoncePolicy(nonces, deals), nonces=nonces)
    with serve(app) as url:
        client = KeyServiceClient(url)
        client.register_key(checksum, key, OWNER.key)
        assert client.request_key(checksum, WORKER.key, {"deal_id": "d"}) == key
        nonce = httpx.post(f"{url}/keys/nonce", json={"worker": WORKER.address}).json()["nonce"]
        signature = sign_text(WORKER.key, release_message(checksum, WORKER.address, nonce))
        busy = httpx.post(
            f"{url}/keys/release",
            json={
                "worker": WORKER.address,
                "dataset_checksum": checksum,
                "evidence": {"deal_id": "d", "nonce": nonce, "signature": signature},
            },
        )
        assert busy.status_code == 429 and busy.headers["retry-after"] == "10"
        assert busy.json()["detail"].startswith("The key service is answering too many")
        # the client reads it as "retry later", not as a refusal that fails the task
        with pytest.raises(StorageUnavailable):
            client.request_key(checksum, WORKER.key, {"deal_id": "d"})
