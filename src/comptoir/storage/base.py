"""The content-addressed blob store interface every backend implements."""

from __future__ import annotations

import io
import os
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from comptoir.storage.digest import CHUNK, normalize_digest


class BlobStore(ABC):
    """Blobs addressed by the sha256 hex digest of their bytes.

    Backends are synchronous (files, boto3); async callers use a thread
    (``asyncio.to_thread``) — the HTTP server does exactly that.
    Every read path verifies the digest: a backend never returns bytes whose sha256
    differs from the digest asked for (streams raise ChecksumMismatch at their end).
    """

    @abstractmethod
    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        """Store the concatenated ``chunks``; return their digest.

        Raises ChecksumMismatch (and stores nothing) when ``expected`` is given and differs.
        """

    @abstractmethod
    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        """Yield the blob's bytes; raises BlobNotFound before the first chunk if absent."""

    @abstractmethod
    def has(self, digest: str) -> bool: ...

    @abstractmethod
    def size(self, digest: str) -> int:
        """Size in bytes; raises BlobNotFound."""

    @abstractmethod
    def delete(self, digest: str) -> None:
        """Remove the blob if present (cache eviction); never raises for a missing blob."""

    # Conveniences built on the primitives above.

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        return self.put_stream([data], expected)

    def put_file(self, path: str | Path, expected: str | None = None) -> str:
        with open(path, "rb") as f:
            return self.put_stream(iter(lambda: f.read(CHUNK), b""), expected)

    def get(self, digest: str) -> bytes:
        return b"".join(self.stream(digest))

    def get_to_file(self, digest: str, dest: str | Path) -> Path:
        """Write the blob to ``dest`` atomically; ``dest`` never holds unverified bytes."""
        dest = Path(dest)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in self.stream(digest):
                    f.write(chunk)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return dest

    def open(self, digest: str) -> BinaryIO:
        """A read-only binary file over the blob; reading to EOF verifies the digest."""
        return io.BufferedReader(_IterRaw(self.stream(normalize_digest(digest))))  # type: ignore[return-value]


class _IterRaw(io.RawIOBase):
    """Adapts an iterator of chunks to a raw binary stream."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
