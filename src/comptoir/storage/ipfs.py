"""IPFS blob store through the Kubo HTTP RPC API, still addressed by sha256.

IPFS names content by CID (a multihash over a UnixFS DAG, not the sha256 of the raw
bytes), so a small SQLite index maps ``sha256 -> (cid, size)``. Callers, the chain and
the worker keep using sha256; the CID is exposed for sharing via any IPFS gateway.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx

from comptoir.exceptions import BlobNotFound, StorageError
from comptoir.storage.base import BlobStore
from comptoir.storage.digest import CHUNK, check_digest, normalize_digest, verified_chunks


class IpfsBlobStore(BlobStore):
    def __init__(
        self,
        api_url: str = "http://127.0.0.1:5001",
        *,
        index_path: str | Path,
        timeout: float = 60.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._http = client or httpx.Client(timeout=timeout)
        self._lock = threading.Lock()
        Path(index_path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(index_path), check_same_thread=False)
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS blobs (sha256 TEXT PRIMARY KEY, cid TEXT NOT NULL,"
                " size INTEGER NOT NULL)"
            )

    def _rpc(self, path: str) -> str:
        return f"{self.api_url}/api/v0/{path}"

    def cid(self, digest: str) -> str:
        """The CID the blob is pinned under; raises BlobNotFound if unknown here."""
        return self._row(digest)[0]

    def _row(self, digest: str) -> tuple[str, int]:
        d = normalize_digest(digest)
        with self._lock:
            row = self._db.execute("SELECT cid, size FROM blobs WHERE sha256 = ?", (d,)).fetchone()
        if row is None:
            raise BlobNotFound(f"No blob {d} recorded in the IPFS index.")
        return str(row[0]), int(row[1])

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        h = hashlib.sha256()
        size = 0
        with tempfile.TemporaryFile() as spool:
            for chunk in chunks:
                h.update(chunk)
                size += len(chunk)
                spool.write(chunk)
            digest = h.hexdigest()
            check_digest(digest, expected)
            spool.seek(0)
            try:
                resp = self._http.post(
                    self._rpc("add"),
                    params={"pin": "true", "cid-version": "1", "quieter": "true"},
                    files={"file": (digest, spool, "application/octet-stream")},
                )
                resp.raise_for_status()
                cid = str(resp.json()["Hash"])
            except (httpx.HTTPError, KeyError, ValueError) as exc:
                raise StorageError(
                    f"The IPFS node at {self.api_url} refused the upload ({exc}); is Kubo running?"
                ) from exc
        with self._lock, self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO blobs (sha256, cid, size) VALUES (?, ?, ?)",
                (digest, cid, size),
            )
        return digest

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        d = normalize_digest(digest)
        cid, _ = self._row(d)
        return verified_chunks(self._cat(cid, chunk_size), d)

    def _cat(self, cid: str, chunk_size: int) -> Iterator[bytes]:
        try:
            with self._http.stream("POST", self._rpc("cat"), params={"arg": cid}) as resp:
                resp.raise_for_status()
                yield from resp.iter_bytes(chunk_size)
        except httpx.HTTPError as exc:
            raise StorageError(
                f"The IPFS node at {self.api_url} could not cat {cid} ({exc})."
            ) from exc

    def has(self, digest: str) -> bool:
        try:
            self._row(digest)
        except BlobNotFound:
            return False
        return True

    def size(self, digest: str) -> int:
        return self._row(digest)[1]

    def delete(self, digest: str) -> None:
        d = normalize_digest(digest)
        try:
            cid, _ = self._row(d)
        except BlobNotFound:
            return
        # Unpinning lets Kubo's GC reclaim the blocks; the CID may live on at other nodes.
        with contextlib.suppress(httpx.HTTPError):
            self._http.post(self._rpc("pin/rm"), params={"arg": cid})
        with self._lock, self._db:
            self._db.execute("DELETE FROM blobs WHERE sha256 = ?", (d,))
