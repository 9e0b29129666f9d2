"""Local-directory blob store: the default backend, also the worker's cache."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from comptoir.exceptions import BlobNotFound, ChecksumMismatch
from comptoir.storage.base import BlobStore
from comptoir.storage.digest import CHUNK, check_digest, normalize_digest


class LocalBlobStore(BlobStore):
    """Blobs under ``root/ab/abcdef…`` (two-hex-digit fan-out keeps directories small).

    Writes go to ``root/tmp`` then ``os.replace`` so a crash never leaves a partial blob
    under its final name; reads re-hash, so bit rot or tampering on disk is detected.
    """

    def __init__(self, root: str | Path, *, fsync: bool = True) -> None:
        self.root = Path(root)
        self._tmp = self.root / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        self._fsync = fsync

    def path(self, digest: str) -> Path:
        d = normalize_digest(digest)
        return self.root / d[:2] / d

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        h = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in chunks:
                    h.update(chunk)
                    f.write(chunk)
                if self._fsync:
                    f.flush()
                    os.fsync(f.fileno())
            digest = h.hexdigest()
            check_digest(digest, expected)
            final = self.path(digest)
            final.parent.mkdir(exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)  # same content under the same name: replacing is harmless
            return digest
        finally:
            Path(tmp).unlink(missing_ok=True)

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        d = normalize_digest(digest)
        try:
            f = open(self.path(d), "rb")  # noqa: SIM115 - closed by the generator below
        except FileNotFoundError:
            raise BlobNotFound(f"No blob {d} in {self.root}.") from None
        return self._read(f, d, chunk_size)

    def _read(self, f: BinaryIO, d: str, chunk_size: int) -> Iterator[bytes]:
        h = hashlib.sha256()
        with f as fh:
            while chunk := fh.read(chunk_size):
                h.update(chunk)
                yield chunk
        if h.hexdigest() != d:
            raise ChecksumMismatch(
                f"Blob {d} on disk in {self.root} is corrupted (its bytes hash to "
                f"{h.hexdigest()}); delete it and fetch it again."
            )

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(f"No blob {normalize_digest(digest)} in {self.root}.") from None

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def verify(self, digest: str) -> bool:
        """Re-hash a stored blob; False (and the blob deleted) when it is corrupted."""
        try:
            for _ in self.stream(digest):
                pass
        except ChecksumMismatch:
            self.delete(digest)
            return False
        except BlobNotFound:
            return False
        return True

    def digests(self) -> Iterator[str]:
        for sub in self.root.iterdir():
            if len(sub.name) == 2 and sub.is_dir():
                yield from (p.name for p in sub.iterdir() if len(p.name) == 64)
