"""Blob server and client over real HTTP."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Response

from comptoir.exceptions import BlobNotFound, ChecksumMismatch, StorageError
from comptoir.storage import LocalBlobStore, StorageClient
from comptoir.storage.server import create_storage_app


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def test_roundtrip_sync(store: LocalBlobStore, serve: Callable[[Any], Any], tmp_path: Path) -> None:
    data = os.urandom(2_500_000)
    with serve(create_storage_app(store)) as url, StorageClient(url) as client:
        digest = client.upload(data)
        assert digest == hashlib.sha256(data).hexdigest()
        assert store.get(digest) == data
        assert client.exists(digest)
        assert client.download(digest) == data
        dest = client.download_to(digest, tmp_path / "copy")
        assert dest.read_bytes() == data
        src = tmp_path / "f"
        src.write_bytes(b"from a file")
        assert client.upload(src) == hashlib.sha256(b"from a file").hexdigest()
        assert not client.exists("0" * 64)
        with pytest.raises(BlobNotFound):
            client.download("0" * 64)
        head = httpx.head(f"{url}/blobs/{digest}")
        assert head.status_code == 200 and head.headers["content-length"] == str(len(data))
        assert httpx.get(f"{url}/blobs/not-a-digest").status_code == 400


async def test_roundtrip_async(
    store: LocalBlobStore, serve: Callable[[Any], Any], tmp_path: Path
) -> None:
    with serve(create_storage_app(store)) as url:
        async with StorageClient(url) as client:
            digest = await client.aupload(b"async payload")
            assert await client.aexists(digest)
            assert await client.adownload(digest) == b"async payload"
            out = await client.adownload_to(digest, tmp_path / "a")
            assert out.read_bytes() == b"async payload"
            big = tmp_path / "big"
            big.write_bytes(os.urandom(3 << 20))
            big_digest = await client.aupload(big)
            assert store.get(big_digest) == big.read_bytes()
            with pytest.raises(BlobNotFound):
                await client.adownload("1" * 64)


def test_upload_with_wrong_expected_digest_is_refused(
    store: LocalBlobStore, serve: Callable[[Any], Any]
) -> None:
    with serve(create_storage_app(store)) as url:
        resp = httpx.put(f"{url}/blobs", params={"expected": "0" * 64}, content=b"payload")
        assert resp.status_code == 400
        assert list(store.digests()) == []
        with StorageClient(url) as client, pytest.raises(ChecksumMismatch):
            client.upload(b"payload", expected="f" * 64)


def test_upload_token_and_size_limit(store: LocalBlobStore, serve: Callable[[Any], Any]) -> None:
    app = create_storage_app(store, upload_token="s3cret", max_upload_bytes=100)
    with serve(app) as url:
        assert httpx.put(f"{url}/blobs", content=b"x").status_code == 401
        with StorageClient(url, token="s3cret") as client:
            digest = client.upload(b"x")
            assert client.download(digest) == b"x"  # reads need no token
            with pytest.raises(StorageError):
                client.upload(b"y" * 101)


def test_tampered_blob_on_server_never_reaches_the_caller(
    store: LocalBlobStore, serve: Callable[[Any], Any], tmp_path: Path
) -> None:
    with serve(create_storage_app(store)) as url, StorageClient(url) as client:
        digest = client.upload(b"A" * 200_000)
        path = store.path(digest)
        path.chmod(0o644)
        path.write_bytes(b"B" * 200_000)  # same length: only the hash can tell
        with pytest.raises(StorageError):  # cut mid-stream by the server, or a mismatch
            client.download(digest)
        with pytest.raises(StorageError):
            client.download_to(digest, tmp_path / "never")
        assert not (tmp_path / "never").exists()


def test_client_rejects_a_lying_server(serve: Callable[[Any], Any], tmp_path: Path) -> None:
    """A third-party server that returns other bytes than asked for."""
    liar = FastAPI()

    @liar.get("/blobs/{digest}")
    def lie(digest: str) -> Response:
        return Response(b"not what you asked for")

    digest = hashlib.sha256(b"what you asked for").hexdigest()
    with serve(liar) as url, StorageClient(url) as client:
        with pytest.raises(ChecksumMismatch):
            client.download(digest)
        with pytest.raises(ChecksumMismatch):
            client.download_to(digest, tmp_path / "x")
        assert not (tmp_path / "x").exists()


def test_unreachable_server_is_a_storage_error() -> None:
    with StorageClient("http://127.0.0.1:9", timeout=2) as client, pytest.raises(StorageError):
        client.download("0" * 64)
