"""HTTP client for the blob server; trusts nothing it downloads until the sha256 matches."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog

from comptoir.backoff import Backoff
from comptoir.exceptions import BlobNotFound, ChecksumMismatch, StorageError, StorageUnavailable
from comptoir.httpclients import LazyHttpClients
from comptoir.storage.digest import CHUNK, check_digest, normalize_digest, sha256_bytes
from comptoir.storage.grants import GRANT_HEADER, Network, sign_grant

DIGEST_HEADER = "X-Comptoir-Sha256"
ERROR_HEADER = "X-Comptoir-Error"  # "checksum-mismatch" on a refused upload

Body = bytes | str | Path
Evidence = dict[str, Any] | None
MAX_DOWNLOAD_BYTES = 4 << 30  # the storage service's own default blob cap
T = TypeVar("T")

log = structlog.get_logger("comptoir.storage")


class StorageClient(LazyHttpClients):
    """Sync methods (``upload``, ``download``…) and async twins prefixed with ``a``.

    Every operation is idempotent (blobs are content-addressed), so one that hits an
    unreachable or failing server (:class:`StorageUnavailable`) is tried again up to
    `retries` times with jittered back-off before the error reaches the caller."""

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        signer: Any = None,
        network: Network | None = None,
        max_download_bytes: int = MAX_DOWNLOAD_BYTES,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(timeout=timeout, headers=headers)
        self.base_url = base_url.rstrip("/")
        # who signs upload grants (an eth_account account) and for which network
        self.signer, self.network = signer, network
        self.max_download_bytes = max_download_bytes  # per blob, memory or disk
        self.retries = retries
        self.backoff_s = backoff_s
        self.retried = 0  # attempts repeated after a transient failure (for logs and tests)

    @contextmanager
    def _net(self) -> Iterator[None]:
        try:
            yield
        except httpx.HTTPError as exc:
            raise StorageUnavailable(
                f"The storage server at {self.base_url} could not be used ({exc!r}); "
                "check that it is running and reachable, then retry."
            ) from exc

    def _retry_delay(self, backoff: Backoff, what: str, exc: StorageError) -> float | None:
        if backoff.attempt >= self.retries:
            return None
        delay = backoff.next_delay()
        self.retried += 1
        log.warning(
            "storage.retry", op=what, attempt=backoff.attempt, delay=round(delay, 2), error=str(exc)
        )
        return delay

    def _retrying(self, what: str, fn: Callable[[], T]) -> T:
        backoff = Backoff(self.backoff_s, cap_s=10.0)
        while True:
            try:
                return fn()
            except StorageUnavailable as exc:
                delay = self._retry_delay(backoff, what, exc)
                if delay is None:
                    raise
                time.sleep(delay)

    async def _aretrying(self, what: str, fn: Callable[[], Awaitable[T]]) -> T:
        backoff = Backoff(self.backoff_s, cap_s=10.0)
        while True:
            try:
                return await fn()
            except StorageUnavailable as exc:
                delay = self._retry_delay(backoff, what, exc)
                if delay is None:
                    raise
                await asyncio.sleep(delay)

    def url(self, digest: str) -> str:
        return f"{self.base_url}/blobs/{normalize_digest(digest)}"

    def _fail(self, resp: httpx.Response, digest: str | None = None) -> None:
        if resp.status_code == 404 and digest:
            raise BlobNotFound(f"No blob {digest} at {self.base_url}.")
        if resp.headers.get(ERROR_HEADER) == "checksum-mismatch":
            raise ChecksumMismatch(_detail(resp))
        if resp.status_code >= 500:
            raise StorageUnavailable(
                f"The storage server at {self.base_url} answered {resp.status_code}: "
                f"{_detail(resp)}; retry later."
            )
        if resp.status_code >= 400:
            raise StorageError(
                f"The storage server at {self.base_url} answered {resp.status_code}: "
                f"{_detail(resp)}"
            )

    @staticmethod
    def _prepare(body: Body) -> tuple[str, bytes | Path]:
        if isinstance(body, (str, Path)):
            path = Path(body)
            h = hashlib.sha256()
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(chunk)
            return h.hexdigest(), path
        return sha256_bytes(body), body

    def _check_upload(self, resp: httpx.Response, local: str) -> str:
        self._fail(resp)
        remote = str(resp.json()["digest"])
        if remote != local:
            raise ChecksumMismatch(
                f"{self.base_url} stored the upload as {remote} but it hashes to {local}; "
                "the server or the connection corrupted it."
            )
        return local

    # -- sync ---------------------------------------------------------------------------

    def _grant_headers(
        self, local: str, payload: bytes | Path, purpose: str | None, evidence: Evidence
    ) -> dict[str, str]:
        """A fresh grant per attempt (grants are single-use) when a purpose is named."""
        if purpose is None:
            return {}
        if self.signer is None or self.network is None:
            raise StorageError(
                "Uploading for a task or an asset needs the uploader's wallet and network; "
                "give the storage client a signer and a network."
            )
        size = payload.stat().st_size if isinstance(payload, Path) else len(payload)
        grant = sign_grant(self.signer, local, size, self.network, purpose, evidence)
        return {GRANT_HEADER: grant}

    def upload(
        self,
        body: Body,
        expected: str | None = None,
        *,
        purpose: str | None = None,
        evidence: Evidence = None,
    ) -> str:
        """Upload bytes or a file; returns its digest (verified against the server's).
        `purpose` (``grants.task_purpose`` / ``asset_purpose``) and `evidence` make it
        carry a signed upload grant, which a storage service open to strangers requires."""
        local, payload = self._prepare(body)
        check_digest(local, expected, "upload")
        return self._retrying(
            "upload", lambda: self._upload_once(local, payload, purpose, evidence)
        )

    def _upload_once(
        self, local: str, payload: bytes | Path, purpose: str | None, evidence: Evidence
    ) -> str:
        params = {"expected": local}
        headers = self._grant_headers(local, payload, purpose, evidence)
        url = f"{self.base_url}/blobs"
        with self._net():
            if isinstance(payload, Path):
                with open(payload, "rb") as f:
                    resp = self.http.put(url, params=params, content=f, headers=headers)
            else:
                resp = self.http.put(url, params=params, content=payload, headers=headers)
        return self._check_upload(resp, local)

    def exists(self, digest: str) -> bool:
        return self._retrying("exists", lambda: self._exists_once(digest))

    def _exists_once(self, digest: str) -> bool:
        with self._net():
            resp = self.http.head(self.url(digest))
        if resp.status_code == 404:
            return False
        self._fail(resp)
        return True

    def _limit(self, resp: httpx.Response, d: str) -> StorageError:
        """The refusal of an answer longer than max_download_bytes (raised at once when
        its Content-Length says so): a hostile server cannot fill memory or disk."""
        too_large = StorageError(
            f"The storage server at {self.base_url} sent more than {self.max_download_bytes} "
            f"bytes for blob {d}; nothing was kept."
        )
        declared = resp.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_download_bytes:
            raise too_large
        return too_large

    def download(self, digest: str) -> bytes:
        return self._retrying("download", lambda: self._download_once(digest))

    def _download_once(self, digest: str) -> bytes:
        d = normalize_digest(digest)
        with self._net(), self.http.stream("GET", self.url(d)) as resp:
            self._fail(resp, d)
            too_large = self._limit(resp, d)
            data = b"".join(_capped(resp.iter_bytes(CHUNK), self.max_download_bytes, too_large))
        check_digest(sha256_bytes(data), d, f"blob downloaded from {self.base_url}")
        return data

    def download_to(self, digest: str, dest: str | Path) -> Path:
        """Stream to ``dest`` atomically; a mismatching download leaves no file behind."""
        return self._retrying("download", lambda: self._download_to_once(digest, dest))

    def _download_to_once(self, digest: str, dest: str | Path) -> Path:
        d = normalize_digest(digest)
        with self._net(), self.http.stream("GET", self.url(d)) as resp:
            self._fail(resp, d)
            too_large = self._limit(resp, d)
            chunks = _capped(resp.iter_bytes(CHUNK), self.max_download_bytes, too_large)
            return _write_verified(chunks, d, Path(dest), self.base_url)

    # -- async --------------------------------------------------------------------------

    async def aupload(
        self,
        body: Body,
        expected: str | None = None,
        *,
        purpose: str | None = None,
        evidence: Evidence = None,
    ) -> str:
        """Async twin of :meth:`upload`."""
        local, payload = self._prepare(body)
        check_digest(local, expected, "upload")
        return await self._aretrying(
            "upload", lambda: self._aupload_once(local, payload, purpose, evidence)
        )

    async def _aupload_once(
        self, local: str, payload: bytes | Path, purpose: str | None, evidence: Evidence
    ) -> str:
        headers = self._grant_headers(local, payload, purpose, evidence)
        content = _aiter_file(payload) if isinstance(payload, Path) else payload
        with self._net():
            resp = await self.ahttp.put(
                f"{self.base_url}/blobs",
                params={"expected": local},
                content=content,
                headers=headers,
            )
        return self._check_upload(resp, local)

    async def aexists(self, digest: str) -> bool:
        return await self._aretrying("exists", lambda: self._aexists_once(digest))

    async def _aexists_once(self, digest: str) -> bool:
        with self._net():
            resp = await self.ahttp.head(self.url(digest))
        if resp.status_code == 404:
            return False
        self._fail(resp)
        return True

    async def adownload(self, digest: str) -> bytes:
        return await self._aretrying("download", lambda: self._adownload_once(digest))

    async def _adownload_once(self, digest: str) -> bytes:
        d = normalize_digest(digest)
        with self._net():
            async with self.ahttp.stream("GET", self.url(d)) as resp:
                self._fail(resp, d)
                too_large = self._limit(resp, d)
                chunks = _acapped(resp.aiter_bytes(CHUNK), self.max_download_bytes, too_large)
                data = b"".join([chunk async for chunk in chunks])
        check_digest(sha256_bytes(data), d, f"blob downloaded from {self.base_url}")
        return data

    async def adownload_to(self, digest: str, dest: str | Path) -> Path:
        """Async twin of :meth:`download_to`."""
        return await self._aretrying("download", lambda: self._adownload_to_once(digest, dest))

    async def _adownload_to_once(self, digest: str, dest: str | Path) -> Path:
        d = normalize_digest(digest)
        dest = Path(dest)
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f, self._net():
                async with self.ahttp.stream("GET", self.url(d)) as resp:
                    self._fail(resp, d)
                    too_large = self._limit(resp, d)
                    chunks = _acapped(resp.aiter_bytes(CHUNK), self.max_download_bytes, too_large)
                    async for chunk in chunks:
                        h.update(chunk)
                        f.write(chunk)
            check_digest(h.hexdigest(), d, f"blob downloaded from {self.base_url}")
            os.replace(tmp, dest)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dest


def _capped(chunks: Iterator[bytes], limit: int, too_large: Exception) -> Iterator[bytes]:
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large
        yield chunk


async def _acapped(
    chunks: AsyncIterator[bytes], limit: int, too_large: Exception
) -> AsyncIterator[bytes]:
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large
        yield chunk


async def _aiter_file(path: Path) -> AsyncIterator[bytes]:
    # Streams large files instead of loading them; 1 MiB reads block the loop only briefly.
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _write_verified(chunks: Iterator[bytes], d: str, dest: Path, source: str) -> Path:
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                h.update(chunk)
                f.write(chunk)
        check_digest(h.hexdigest(), d, f"blob downloaded from {source}")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dest


def _detail(resp: httpx.Response) -> str:
    try:
        return str(resp.json().get("detail", resp.text))
    except ValueError:
        return resp.text[:200]
