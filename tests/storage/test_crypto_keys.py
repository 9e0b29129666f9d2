from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account

from comptoir.exceptions import DecryptionError, KeyReleaseDenied
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
