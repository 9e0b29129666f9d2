"""HTTP blob server: ``PUT /blobs``, ``GET``/``HEAD /blobs/{digest}`` over any BlobStore."""

from __future__ import annotations

import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from comptoir.exceptions import BlobNotFound, ChecksumMismatch, InvalidDigest
from comptoir.httpguard import guard
from comptoir.storage.base import BlobStore
from comptoir.storage.client import DIGEST_HEADER, ERROR_HEADER
from comptoir.storage.digest import normalize_digest

_MISMATCH = {ERROR_HEADER: "checksum-mismatch"}


def create_storage_app(
    store: BlobStore,
    *,
    upload_token: str | None = None,
    max_upload_bytes: int | None = None,
    spool_dir: str | Path | None = None,
) -> FastAPI:
    """A FastAPI app serving ``store``.

    ``upload_token``: when set, ``PUT`` needs ``Authorization: Bearer <token>`` (reads stay
    public: blobs are content-addressed and datasets are encrypted).
    ``max_upload_bytes``: uploads above it are refused with 413 while streaming.
    """
    app = FastAPI(title="Comptoir blob storage", version="1")
    # uploads stream to disk under their own bound; the key routes are small JSON
    guard(app, passthrough=("/blobs",))

    def _digest(raw: str) -> str:
        try:
            return normalize_digest(raw)
        except InvalidDigest as exc:
            raise HTTPException(400, str(exc)) from None

    @app.put("/blobs", status_code=201)
    async def put_blob(
        request: Request,
        expected: str | None = Query(None, description="sha256 the body must have"),
    ) -> dict[str, object]:
        if upload_token is not None:
            auth = request.headers.get("authorization", "")
            if not hmac.compare_digest(auth.encode(), f"Bearer {upload_token}".encode()):
                raise HTTPException(401, "A valid upload token is required to store blobs.")
        want = _digest(expected) if expected else None
        # Spool to disk (hashing as we go) so uploads of any size never sit in memory
        # and the digest check happens before the store sees a byte.
        h, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="comptoir-upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if max_upload_bytes is not None and size > max_upload_bytes:
                        raise HTTPException(413, f"Blobs are limited to {max_upload_bytes} bytes.")
                    h.update(chunk)
                    f.write(chunk)
            digest = h.hexdigest()
            if want is not None and digest != want:
                raise HTTPException(
                    400,
                    f"Body has sha256 {digest} but {want} was expected; nothing was stored.",
                    headers=_MISMATCH,
                )
            try:
                stored = await run_in_threadpool(store.put_file, tmp, digest)
            except ChecksumMismatch as exc:  # the spool file changed under us: refuse
                raise HTTPException(400, str(exc), headers=_MISMATCH) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return {"digest": stored, "size": size}

    def _headers(digest: str, size: int) -> dict[str, str]:
        return {
            "Content-Length": str(size),
            "ETag": f'"{digest}"',
            DIGEST_HEADER: digest,
            "Cache-Control": "public, max-age=31536000, immutable",
        }

    @app.get("/blobs/{digest}")
    async def get_blob(digest: str) -> StreamingResponse:
        d = _digest(digest)
        try:
            size = await run_in_threadpool(store.size, d)
            chunks: Iterator[bytes] = await run_in_threadpool(store.stream, d)
        except BlobNotFound:
            raise HTTPException(404, f"No blob {d} here.") from None
        # A corrupted blob raises ChecksumMismatch mid-stream: the connection is cut
        # and the client, which verifies too, never accepts the bytes.
        return StreamingResponse(
            iterate_in_threadpool(chunks),
            media_type="application/octet-stream",
            headers=_headers(d, size),
        )

    @app.head("/blobs/{digest}")
    async def head_blob(digest: str) -> Response:
        d = _digest(digest)
        try:
            size = await run_in_threadpool(store.size, d)
        except BlobNotFound:
            raise HTTPException(404, f"No blob {d} here.") from None
        return Response(status_code=200, headers=_headers(d, size))

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
