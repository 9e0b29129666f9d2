"""S3 and IPFS backends against tiny in-test fakes of the third-party HTTP APIs.

The fakes implement only the calls the backends make (S3 path-style Put/Get/Head/Delete
Object; Kubo ``/api/v0/add``, ``cat``, ``pin/rm``); real S3/Kubo are not available here.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request, Response

from comptoir.exceptions import BlobNotFound, ChecksumMismatch
from comptoir.storage.ipfs import IpfsBlobStore
from comptoir.storage.s3 import S3BlobStore


def fake_s3() -> tuple[FastAPI, dict[str, bytes]]:
    objects: dict[str, bytes] = {}
    app = FastAPI()
    missing = '<?xml version="1.0"?><Error><Code>NoSuchKey</Code><Message>no</Message></Error>'

    @app.put("/{bucket}/{key:path}")
    async def put(bucket: str, key: str, request: Request) -> Response:
        data = await request.body()
        objects[f"{bucket}/{key}"] = data
        return Response(headers={"ETag": f'"{hashlib.md5(data).hexdigest()}"'})

    @app.get("/{bucket}/{key:path}")
    def get(bucket: str, key: str) -> Response:
        if f"{bucket}/{key}" not in objects:
            return Response(missing, status_code=404, media_type="application/xml")
        return Response(objects[f"{bucket}/{key}"], media_type="application/octet-stream")

    @app.head("/{bucket}/{key:path}")
    def head(bucket: str, key: str) -> Response:
        if f"{bucket}/{key}" not in objects:
            return Response(status_code=404)
        return Response(headers={"Content-Length": str(len(objects[f"{bucket}/{key}"]))})

    @app.delete("/{bucket}/{key:path}")
    def delete(bucket: str, key: str) -> Response:
        objects.pop(f"{bucket}/{key}", None)
        return Response(status_code=204)

    return app, objects


def fake_kubo() -> tuple[FastAPI, dict[str, bytes]]:
    blocks: dict[str, bytes] = {}
    app = FastAPI()

    @app.post("/api/v0/add")
    async def add(request: Request) -> dict[str, str]:
        head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
        msg = BytesParser().parsebytes(head + await request.body())
        data = msg.get_payload()[0].get_payload(decode=True)
        cid = "bafk" + hashlib.sha256(b"cid" + data).hexdigest()[:40]
        blocks[cid] = data
        return {"Name": "f", "Hash": cid, "Size": str(len(data))}

    @app.post("/api/v0/cat")
    def cat(arg: str) -> Response:
        if arg not in blocks:
            return Response('{"Message":"not found"}', status_code=500)
        return Response(blocks[arg])

    @app.post("/api/v0/pin/rm")
    def unpin(arg: str) -> dict[str, list[str]]:
        blocks.pop(arg, None)
        return {"Pins": [arg]}

    return app, blocks


def test_s3_backend(serve: Callable[[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    app, objects = fake_s3()
    with serve(app) as url:
        store = S3BlobStore("bucket", prefix="p/", endpoint_url=url, region_name="us-east-1")
        data = os.urandom(100_000)
        digest = store.put_bytes(data)
        assert f"bucket/p/{digest}" in objects
        assert store.has(digest) and store.size(digest) == len(data)
        assert store.get(digest) == data
        assert not store.has("0" * 64)
        with pytest.raises(BlobNotFound):
            store.get("0" * 64)
        objects[f"bucket/p/{digest}"] = b"tampered"
        with pytest.raises(ChecksumMismatch):
            store.get(digest)
        store.delete(digest)
        assert not store.has(digest)


def test_ipfs_backend(serve: Callable[[Any], Any], tmp_path: Path) -> None:
    app, blocks = fake_kubo()
    with serve(app) as url:
        store = IpfsBlobStore(url, index_path=tmp_path / "ipfs.db")
        data = os.urandom(50_000)
        digest = store.put_bytes(data)
        assert digest == hashlib.sha256(data).hexdigest()
        cid = store.cid(digest)
        assert blocks[cid] == data
        assert store.get(digest) == data and store.size(digest) == len(data)
        # The index survives a restart of the store.
        assert IpfsBlobStore(url, index_path=tmp_path / "ipfs.db").get(digest) == data
        blocks[cid] = b"other content"
        with pytest.raises(ChecksumMismatch):
            store.get(digest)
        store.delete(digest)
        assert not store.has(digest) and cid not in blocks
        with pytest.raises(BlobNotFound):
            store.get(digest)


def test_open_blob_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from comptoir.exceptions import ConfigError
    from comptoir.storage import LocalBlobStore, open_blob_store

    local = open_blob_store(str(tmp_path / "a"))
    assert isinstance(local, LocalBlobStore) and local.root == tmp_path / "a"
    assert isinstance(open_blob_store(f"file://{tmp_path}/b"), LocalBlobStore)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    s3 = open_blob_store("s3://bucket/apps?endpoint_url=http://127.0.0.1:9&region=us-east-1")
    assert isinstance(s3, S3BlobStore) and (s3.bucket, s3.prefix) == ("bucket", "apps/")
    ipfs = open_blob_store(f"ipfs+http://127.0.0.1:5001?index={tmp_path}/i.db")
    assert isinstance(ipfs, IpfsBlobStore) and ipfs.api_url == "http://127.0.0.1:5001"
    for bad in ("ftp://x", "ipfs+http://127.0.0.1:5001", "s3:///nobucket"):
        with pytest.raises(ConfigError):
            open_blob_store(bad)
