"""HTTP blob server: ``PUT /blobs``, ``GET``/``HEAD /blobs/{digest}`` over any BlobStore."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from comptoir.exceptions import BlobNotFound, ChainUnreachable, ChecksumMismatch, InvalidDigest
from comptoir.httpguard import guard
from comptoir.storage.base import BlobStore
from comptoir.storage.client import DIGEST_HEADER, ERROR_HEADER
from comptoir.storage.digest import normalize_digest
from comptoir.storage.grants import (
    GRANT_HEADER,
    GrantRefused,
    UploadGate,
    parse_grant,
    verify_grant,
)
from comptoir.storage.quota import UploadLedger

_MISMATCH = {ERROR_HEADER: "checksum-mismatch"}


def create_storage_app(
    store: BlobStore,
    *,
    upload_token: str | None = None,
    max_upload_bytes: int | None = None,
    spool_dir: str | Path | None = None,
    gate: UploadGate | None = None,
    ledger: UploadLedger | None = None,
) -> FastAPI:
    """A FastAPI app serving ``store``.

    ``gate``: when set, ``PUT`` needs a signed upload grant the chain backs (see
    :mod:`comptoir.storage.grants`); reads stay public (blobs are content-addressed and
    datasets encrypted). ``upload_token``: ``Authorization: Bearer <token>`` lets the
    operator upload without a grant (and, without a gate, is the only way to upload).
    Neither: anyone may upload (an in-process test server). ``ledger``: per-identity
    quotas and the global cap (413 / 507). ``max_upload_bytes``: uploads above it are
    refused with 413, from their Content-Length or while streaming.
    """
    app = FastAPI(title="Comptoir blob storage", version="1")
    # uploads stream to disk under their own bound; the key routes are small JSON
    guard(app, passthrough=("/blobs",))

    def _digest(raw: str) -> str:
        try:
            return normalize_digest(raw)
        except InvalidDigest as exc:
            raise HTTPException(400, str(exc)) from None

    def _operator(request: Request) -> bool:
        auth = request.headers.get("authorization", "")
        return upload_token is not None and hmac.compare_digest(
            auth.encode(), f"Bearer {upload_token}".encode()
        )

    async def _granted(request: Request, want: str | None) -> tuple[list[str], int | None]:
        """Who this upload is charged to and the most bytes it may send."""
        if _operator(request):
            return [], max_upload_bytes
        if gate is None:
            if upload_token is not None:
                raise HTTPException(401, "A valid upload token is required to store blobs.")
            return [], max_upload_bytes
        header = request.headers.get(GRANT_HEADER)
        if not header:
            raise HTTPException(
                401,
                f"Uploads here need a signed upload grant ({GRANT_HEADER}) from the task's "
                "worker or the asset's owner; upload through the Comptoir SDK or worker.",
            )
        try:
            grant = parse_grant(header)
            verify_grant(grant, gate.network, want)
            replayed = GrantRefused(409, "This upload grant was used already; sign a fresh one.")
            if gate.spent.seen(grant):  # before the chain read a replay would cost
                raise replayed
            identities = await gate.check(grant)
            if not gate.spent.spend(grant):  # spent meanwhile by a concurrent request
                raise replayed
        except GrantRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None
        except ChainUnreachable:
            raise HTTPException(
                503, "The chain cannot be reached to check this upload grant; retry shortly."
            ) from None
        limit = grant.size if max_upload_bytes is None else min(grant.size, max_upload_bytes)
        return identities, limit

    @app.put("/blobs", status_code=201)
    async def put_blob(
        request: Request,
        expected: str | None = Query(None, description="sha256 the body must have"),
    ) -> dict[str, object]:
        want = _digest(expected) if expected else None
        identities, limit = await _granted(request, want)
        declared = _content_length(request)
        if limit is not None and declared is not None and declared > limit:
            raise HTTPException(413, f"This upload may send at most {limit} bytes; send less.")
        charge = declared if declared is not None else limit
        known = want is not None and await run_in_threadpool(store.has, want)
        timeout = None if ledger is None else ledger.limits.upload_timeout(charge or 0)
        if ledger is None or known:  # a blob already here costs nobody anything
            return await _spool(request, want, limit, timeout)
        if want is None:
            raise HTTPException(400, "Name the blob's sha256 in the 'expected' query parameter.")
        try:
            with ledger.reserve(identities, want, charge or 0):
                return await _spool(request, want, limit, timeout)
        except GrantRefused as exc:
            raise HTTPException(exc.status, str(exc)) from None

    async def _spool(
        request: Request, want: str | None, limit: int | None, timeout: float | None
    ) -> dict[str, object]:
        # Spool to disk (hashing as we go) so uploads of any size never sit in memory
        # and the digest check happens before the store sees a byte.
        h, size = hashlib.sha256(), 0
        fd, tmp = tempfile.mkstemp(dir=spool_dir, prefix="comptoir-upload-")
        try:
            with os.fdopen(fd, "wb") as f:
                try:
                    async with asyncio.timeout(timeout):
                        async for chunk in request.stream():
                            size += len(chunk)
                            if limit is not None and size > limit:
                                raise HTTPException(
                                    413, f"This upload may send at most {limit} bytes."
                                )
                            h.update(chunk)
                            f.write(chunk)
                except TimeoutError:
                    raise HTTPException(
                        408, "The upload arrived too slowly; nothing was stored, retry."
                    ) from None
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


def _content_length(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 19:
        raise HTTPException(400, "The Content-Length header is not a number.")
    return int(raw)
