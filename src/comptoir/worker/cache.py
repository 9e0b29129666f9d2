"""Size-bounded, content-addressed cache of app and dataset blobs (LRU eviction).

Files are ``<root>/blobs/<sha256>``, named by the digest they were verified against;
the last use is the file's mtime, so the LRU order survives restarts. Blobs in use are
pinned and never evicted; an unpacked app (``<root>/apps/<sha256>``) goes with its blob.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

from comptoir.storage.digest import normalize_digest


class BlobCache:
    def __init__(self, root: str | Path, max_bytes: int) -> None:
        self.root = Path(root)
        self.blobs = self.root / "blobs"
        self.apps = self.root / "apps"
        self.tmp = self.root / "tmp"
        for d in (self.blobs, self.apps, self.tmp):
            d.mkdir(parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():  # partial downloads of a crashed run
            leftover.unlink(missing_ok=True)
        self.max_bytes = max_bytes
        self._pins: dict[str, int] = {}
        self._lock = threading.Lock()

    def path(self, digest: str) -> Path:
        return self.blobs / normalize_digest(digest)

    def get(self, digest: str) -> Path | None:
        """The cached blob (its use recorded), or None."""
        p = self.path(digest)
        try:
            os.utime(p)
        except FileNotFoundError:
            return None
        return p

    def add(self, digest: str, src: Path) -> Path:
        """Move a verified file into the cache, then evict down to the bound."""
        dest = self.path(digest)
        os.replace(src, dest)
        os.utime(dest)
        self.evict()
        return dest

    def checksums(self) -> list[str]:
        return sorted(p.name for p in self.blobs.iterdir() if p.is_file())

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.blobs.iterdir() if p.is_file())

    def pin(self, digest: str) -> None:
        with self._lock:
            d = normalize_digest(digest)
            self._pins[d] = self._pins.get(d, 0) + 1

    def unpin(self, digest: str) -> None:
        with self._lock:
            d = normalize_digest(digest)
            left = self._pins.get(d, 0) - 1
            if left <= 0:
                self._pins.pop(d, None)
            else:
                self._pins[d] = left

    def evict(self) -> list[str]:
        """Drop least recently used, unpinned blobs until the cache fits its bound."""
        with self._lock:
            entries = []
            for p in self.blobs.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    st = p.stat()
                    entries.append((st.st_mtime, st.st_size, p))
            total = sum(size for _, size, _ in entries)
            dropped: list[str] = []
            for _, size, p in sorted(entries):
                if total <= self.max_bytes:
                    break
                if p.name in self._pins:
                    continue
                p.unlink(missing_ok=True)
                shutil.rmtree(self.apps / p.name, ignore_errors=True)
                total -= size
                dropped.append(p.name)
            return dropped

    def temp_file(self) -> Path:
        return self.tmp / f"{os.getpid()}-{time.monotonic_ns()}"
