"""Storage as a stranger sees it: trickled bodies, odd keys, endless answers.

Each case was a finding of the attack pass on the storage service and its client; real
HTTP (uvicorn on loopback, raw sockets where a well-behaved client cannot misbehave)."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse

from comptoir.exceptions import StorageError
from comptoir.storage import LocalBlobStore, StorageClient
from comptoir.storage.grants import GrantRefused
from comptoir.storage.quota import StorageLimits, UploadLedger
from comptoir.storage.server import create_storage_app


def raw_put(url: str, digest: str, declared: int, body: bytes) -> socket.socket:
    """A PUT that declares `declared` bytes and sends only `body`, left open."""
    where = urlparse(url)
    sock = socket.create_connection((where.hostname, where.port), timeout=30)
    head = (
        f"PUT /blobs?expected={digest} HTTP/1.1\r\nHost: storage\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    return sock


def test_a_trickled_upload_is_cut_and_gives_its_room_back(
    tmp_path: Path, serve: Callable[[Any], Any]
) -> None:
    limits = StorageLimits(max_total_bytes=1500, min_free_bytes=0, upload_grace_s=5.0)
    ledger = UploadLedger(limits, tmp_path / "u.db")
    app = create_storage_app(LocalBlobStore(tmp_path / "blobs"), ledger=ledger)
    data = b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    with serve(app) as url:
        sock = raw_put(url, digest, len(data), data[:10])  # then nothing more
        deadline = time.monotonic() + 5
        while ledger.in_flight_bytes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        # while it trickles, its 1000 bytes are held: another 1000 does not fit under 1500
        other = b"y" * 1000
        assert (
            httpx.put(
                f"{url}/blobs",
                params={"expected": hashlib.sha256(other).hexdigest()},
                content=other,
            ).status_code
            == 507
        )
        answer = sock.recv(4096).decode(errors="replace")  # the server gives up first
        sock.close()
        assert answer.startswith("HTTP/1.1 408") and "too slowly" in answer
        stored = httpx.put(
            f"{url}/blobs", params={"expected": hashlib.sha256(other).hexdigest()}, content=other
        )
        assert stored.status_code == 201  # the trickle's reservation is gone
    assert ledger.total_bytes == 1000


def test_one_identity_streams_a_bounded_number_of_uploads_at_once(tmp_path: Path) -> None:
    ledger = UploadLedger(StorageLimits(max_in_flight=2, min_free_bytes=0))
    with ledger.reserve(["0xa"], "1" * 64, 10), ledger.reserve(["0xa"], "2" * 64, 10):
        with (
            pytest.raises(GrantRefused, match="2 uploads in progress") as refused,
            ledger.reserve(["0xA"], "3" * 64, 10),
        ):
            pass
        assert refused.value.status == 429
        with ledger.reserve(["0xb"], "4" * 64, 10):  # someone else may
            pass
    with ledger.reserve(["0xa"], "5" * 64, 10):  # and 0xa again once they ended
        pass


@pytest.mark.parametrize(
    "key",
    [
        "../../../../etc/passwd",
        "..%2f..%2f..%2fetc%2fpasswd",
        "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "tmp",
        "0x" + "a" * 63,
        "sha256:" + "g" * 64,
        "a" * 64 + "/../" + "b" * 64,
        "ａ" * 64,  # fullwidth letters: not hex
    ],
)
def test_keys_that_are_not_digests_never_reach_the_disk(
    tmp_path: Path, serve: Callable[[Any], Any], key: str
) -> None:
    (tmp_path / "secret").write_text("host file")
    with serve(create_storage_app(LocalBlobStore(tmp_path / "blobs"))) as url:
        for method in ("GET", "HEAD"):
            response = httpx.request(method, f"{url}/blobs/{key}")
            assert response.status_code in (400, 404), (method, key, response.status_code)
            assert b"host file" not in response.content


def test_a_huge_key_is_not_echoed_back(tmp_path: Path, serve: Callable[[Any], Any]) -> None:
    with serve(create_storage_app(LocalBlobStore(tmp_path / "blobs"))) as url:
        response = httpx.get(f"{url}/blobs/{'z' * 20_000}")
    assert response.status_code == 400
    assert len(response.json()["detail"]) < 200


def endless_storage(declare: int | None = None) -> FastAPI:
    """A hostile storage server: any blob is an endless stream of zeros."""
    app = FastAPI()

    async def zeros() -> AsyncIterator[bytes]:
        while True:
            yield bytes(1 << 20)
            await asyncio.sleep(0)

    @app.get("/blobs/{digest}")
    async def blob(digest: str) -> StreamingResponse:
        headers = {} if declare is None else {"Content-Length": str(declare)}
        return StreamingResponse(zeros(), headers=headers)

    return app


def test_an_endless_answer_fills_neither_memory_nor_disk(
    tmp_path: Path, serve: Callable[[Any], Any]
) -> None:
    digest = "ab" * 32
    dest = tmp_path / "blob"
    with serve(endless_storage()) as url:
        with StorageClient(url, retries=0, max_download_bytes=5 << 20) as client:
            with pytest.raises(StorageError, match="more than 5242880 bytes"):
                client.download(digest)
            with pytest.raises(StorageError, match="nothing was kept"):
                client.download_to(digest, dest)

        async def both() -> None:
            async with StorageClient(url, retries=0, max_download_bytes=5 << 20) as client:
                with pytest.raises(StorageError, match="more than"):
                    await client.adownload(digest)
                with pytest.raises(StorageError, match="more than"):
                    await client.adownload_to(digest, dest)

        asyncio.run(both())
    assert list(tmp_path.iterdir()) == []  # no partial file left behind


def test_a_declared_huge_answer_is_refused_before_reading(
    tmp_path: Path, serve: Callable[[Any], Any]
) -> None:
    with (
        serve(endless_storage(declare=1 << 40)) as url,
        StorageClient(url, retries=0, max_download_bytes=1 << 20) as client,
        pytest.raises(StorageError, match="more than 1048576 bytes"),
    ):
        client.download_to("cd" * 32, tmp_path / "x")
