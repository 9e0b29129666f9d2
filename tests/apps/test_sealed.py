"""Sealed results (comptoir.apps.sealed): who can read them, what an altered envelope
gives, and which result keys a worker accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from comptoir.apps import sealed
from comptoir.exceptions import ResultError
from comptoir.sandbox import Outcome
from comptoir.sandbox.executor import SandboxResult
from comptoir.worker.packaging import logs_of, seal_file

REQUESTER = Account.from_key(b"\x11" * 32)
STRANGER = Account.from_key(b"\x22" * 32)
KEY = sealed.public_key_of(bytes(REQUESTER.key))
LOGS = sealed.Logs(b"step 1 done\n", b"warning: slow disk\n", False, True)


def test_a_sealed_result_opens_only_with_the_requesters_key() -> None:
    blob = sealed.seal(b"the plaintext result", LOGS, KEY, sealed=True)
    assert b"plaintext" not in blob and b"step 1" not in blob
    public = sealed.open_envelope(blob)
    assert public.sealed and public.recipient == REQUESTER.address
    assert public.result is None and public.logs is None
    with pytest.raises(ResultError, match=f"sealed to its requester {REQUESTER.address}"):
        sealed.open_envelope(blob, bytes(STRANGER.key))
    opened = sealed.open_envelope(blob, bytes(REQUESTER.key))
    assert opened.result == b"the plaintext result" and opened.logs == LOGS


def test_an_unsealed_result_is_public_but_its_logs_are_not() -> None:
    blob = sealed.seal(b"public numbers", LOGS, KEY, sealed=False)
    public = sealed.open_envelope(blob)
    assert not public.sealed and public.result == b"public numbers" and public.logs is None
    assert b"step 1" not in blob
    assert sealed.open_envelope(blob, bytes(REQUESTER.key)).logs == LOGS


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    one, two = (sealed.seal(b"same", LOGS, KEY, sealed=True) for _ in range(2))
    assert one != two  # replicas upload different blobs for the same digest
    assert sealed.open_envelope(one, bytes(REQUESTER.key)).result == b"same"


@pytest.mark.parametrize("where", ["ciphertext", "public part", "header"])
def test_an_altered_envelope_is_refused_in_one_sentence(where: str) -> None:
    blob = bytearray(sealed.seal(b"result", LOGS, KEY, sealed=where != "public part"))
    if where == "ciphertext":
        blob[-3] ^= 0x40
    elif where == "public part":
        blob[blob.index(b"result")] ^= 0x01
    else:  # another hex digit in the ephemeral key: still a well-formed header
        at = blob.index(b'"epk":"') + 20
        blob[at] = ord("1") if blob[at] != ord("1") else ord("2")
    with pytest.raises(ResultError) as err:
        sealed.open_envelope(bytes(blob), bytes(REQUESTER.key))
    message = str(err.value)
    assert message.endswith(".") and message.count(". ") == 0, message
    assert "do not trust it" in message


@pytest.mark.parametrize(
    "blob",
    [b"", b"CPTRSLT1", b"CPTRSLT1\xff\xff\xff\xff{}", b"CPTRSLT1\x00\x00\x00\x02{}" + b"x" * 40],
)
def test_a_malformed_envelope_is_refused(blob: bytes) -> None:
    with pytest.raises(ResultError, match="malformed"):
        sealed.open_envelope(blob, bytes(REQUESTER.key))


def test_terms_bind_the_key_to_the_deals_requester() -> None:
    params = sealed.request_params("n=5\nsecond line", KEY, seal=False)
    terms = sealed.read_terms(params, REQUESTER.address, has_dataset=False)
    assert terms == sealed.ResultTerms("n=5\nsecond line", KEY, sealed=False)
    assert sealed.app_args(params) == "n=5\nsecond line"
    # with a dataset the result is sealed whatever the flag says
    assert sealed.read_terms(params, REQUESTER.address, has_dataset=True).sealed
    # someone else's key in a request: never used
    other = sealed.request_params("", sealed.public_key_of(bytes(STRANGER.key)), seal=True)
    assert sealed.read_terms(other, REQUESTER.address, False).failure == sealed.RESULT_KEY_INVALID
    for broken in (f"{sealed.TERMS_PREFIX} key=zz seal=1", f"{sealed.TERMS_PREFIX} seal=1"):
        assert sealed.read_terms(broken, REQUESTER.address, False).failure == "RESULT_KEY_INVALID"
    assert sealed.read_terms(params.replace("seal=0", "seal=2"), REQUESTER.address, False).failure


def test_no_key_means_plain_results_but_never_for_a_dataset() -> None:
    plain = sealed.read_terms("hello", REQUESTER.address, has_dataset=False)
    assert plain == sealed.ResultTerms("hello", None, sealed=False)
    refused = sealed.read_terms("hello", REQUESTER.address, has_dataset=True)
    assert refused.failure == sealed.RESULT_KEY_MISSING and refused.sealed


def _run(stdout: bytes, stderr: bytes) -> SandboxResult:
    return SandboxResult(Outcome.SUCCESS, "", 0, stdout, stderr, False, False, 0.1, Path("."))


def test_the_worker_keeps_a_bounded_tail_inside_the_sealed_part(tmp_path: Path) -> None:
    logs = logs_of(_run(b"x" * 100_000 + b"THE END", b"short"))
    assert len(logs.stdout) == sealed.LOG_TAIL_BYTES and logs.stdout.endswith(b"THE END")
    assert logs.stdout_truncated and not logs.stderr_truncated
    result = tmp_path / "1.tar.gz"
    result.write_bytes(b"archive bytes")
    terms = sealed.ResultTerms("", KEY, sealed=True)
    uploaded = seal_file(result, terms, _run(b"out", b"err"))
    assert uploaded.name == "1.tar.gz.sealed" and not result.exists()
    opened = sealed.open_envelope(uploaded.read_bytes(), bytes(REQUESTER.key))
    assert opened.result == b"archive bytes" and opened.logs == sealed.Logs(b"out", b"err")
    # without a key the result is uploaded as it is and no log leaves the worker
    result.write_bytes(b"archive bytes")
    assert seal_file(result, sealed.ResultTerms("", None, False), _run(b"o", b"e")) == result


def _envelope(header: bytes, tail: bytes = b"x" * 40) -> bytes:
    return sealed.MAGIC + len(header).to_bytes(4, "big") + header + tail


def _hostile_body(body: bytes) -> bytes:
    """An envelope a hostile worker sealed properly to the requester, around `body`."""
    import json
    import os

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    eph = ec.generate_private_key(ec.SECP256K1())
    epk = eph.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    header = json.dumps(
        {"v": 1, "sealed": True, "to": REQUESTER.address, "epk": epk.hex(), "public": 0}
    ).encode()
    aes = AESGCM(sealed._derive(eph.exchange(ec.ECDH(), sealed._point(b"\x04" + KEY)), epk, KEY))
    prefix = sealed.MAGIC + len(header).to_bytes(4, "big") + header
    nonce = os.urandom(sealed.NONCE_BYTES)
    return prefix + nonce + aes.encrypt(nonce, body, prefix)


@pytest.mark.parametrize(
    "blob",
    [
        _envelope(b"[" * 2000 + b"]" * 2000),  # nested past the JSON decoder's recursion limit
        _envelope(b'{"v":1,"public":0,"to":"0x","epk":""}'),  # no "sealed"
        _envelope(b"[1]"),
        _hostile_body(b"short"),  # authentic, but shorter than its own section sizes
    ],
)
def test_a_hostile_workers_envelope_is_refused_in_one_sentence(blob: bytes) -> None:
    with pytest.raises(ResultError, match="do not trust it"):
        sealed.open_envelope(blob, bytes(REQUESTER.key))
