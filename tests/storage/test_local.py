from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from comptoir.exceptions import BlobNotFound, ChecksumMismatch, InvalidDigest
from comptoir.storage import LocalBlobStore, normalize_digest


def test_put_get_roundtrip_and_dedup(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    data = os.urandom(3 * (1 << 20) + 17)  # several chunks
    digest = store.put_bytes(data)
    assert digest == hashlib.sha256(data).hexdigest()
    assert store.has(digest) and store.size(digest) == len(data)
    assert store.get(digest) == data
    assert store.put_bytes(data) == digest  # idempotent
    with store.open(digest) as f:
        assert f.read(10) == data[:10]
        assert f.read() == data[10:]
    assert list(store.digests()) == [digest]
    assert not any((tmp_path / "tmp").iterdir())  # no temp litter


def test_put_file_and_get_to_file(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "store")
    src = tmp_path / "src.bin"
    src.write_bytes(b"hello" * 1000)
    digest = store.put_file(src)
    out = store.get_to_file(digest, tmp_path / "out.bin")
    assert out.read_bytes() == src.read_bytes()


def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(ChecksumMismatch):
        store.put_bytes(b"abc", expected="0" * 64)
    assert not store.has(hashlib.sha256(b"abc").hexdigest())
    assert list(store.digests()) == []


def test_tampered_blob_on_disk_is_detected(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    digest = store.put_bytes(b"genuine bytes")
    path = store.path(digest)
    path.chmod(0o644)
    path.write_bytes(b"evil bytes!!!")
    with pytest.raises(ChecksumMismatch):
        store.get(digest)
    assert store.verify(digest) is False
    assert not store.has(digest)  # verify() evicts the corrupted copy


def test_missing_and_invalid_digests(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobNotFound):
        store.get("a" * 64)
    with pytest.raises(BlobNotFound):
        store.size("a" * 64)
    with pytest.raises(InvalidDigest):
        store.get("../../etc/passwd")
    assert normalize_digest("0x" + "AB" * 32) == "ab" * 32
    assert normalize_digest("sha256:" + "cd" * 32) == "cd" * 32
