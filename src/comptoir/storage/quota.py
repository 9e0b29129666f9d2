"""Who filled the disk: per-identity upload quotas and the storage service's global cap.

| variable | default | meaning |
|---|---|---|
| COMPTOIR_STORAGE_MAX_BLOB_BYTES | 4294967296 | largest blob one upload may store (413) |
| COMPTOIR_STORAGE_QUOTA_BYTES | 8589934592 | bytes one identity may add per window (413) |
| COMPTOIR_STORAGE_QUOTA_BLOBS | 10000 | blobs one identity may add per window (413) |
| COMPTOIR_STORAGE_QUOTA_WINDOW | 86400 | seconds over which the quotas count |
| COMPTOIR_STORAGE_MAX_TOTAL_BYTES | (none) | bytes of blobs held at most (507) |
| COMPTOIR_STORAGE_MIN_FREE_BYTES | 1073741824 | free disk an upload must leave (507) |

An identity is a worker, the scheduler of its deal, or an asset's owner (`storage serve`).
Every upload is charged, before its first byte is read, to each identity the chain check
named (from the size its grant signs; the stream is cut past it), and recorded once
stored in a SQLite ledger beside the blobs, so a restart does not forget who used what.
A blob already stored costs nobody anything.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from comptoir.exceptions import ConfigError
from comptoir.storage.grants import GrantRefused

GIB = 1 << 30


@dataclass(frozen=True)
class StorageLimits:
    max_blob_bytes: int = 4 * GIB
    quota_bytes: int = 8 * GIB
    quota_blobs: int = 10_000
    window_s: float = 86_400.0
    max_total_bytes: int | None = None
    min_free_bytes: int = GIB
    # a body must arrive within grace + size / rate (a trickle cannot hold a reservation)
    upload_grace_s: float = 600.0
    min_upload_rate: int = 256 * 1024
    max_in_flight: int = 8  # uploads one identity may stream at once (429 past it)

    def upload_timeout(self, size: int) -> float:
        return self.upload_grace_s + size / max(self.min_upload_rate, 1)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageLimits:
        def number(name: str, default: int | None) -> int | None:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a whole number, not {raw!r}.") from None
            return max(value, 0)

        d = cls()
        return cls(
            max_blob_bytes=number("COMPTOIR_STORAGE_MAX_BLOB_BYTES", d.max_blob_bytes) or 0,
            quota_bytes=number("COMPTOIR_STORAGE_QUOTA_BYTES", d.quota_bytes) or 0,
            quota_blobs=number("COMPTOIR_STORAGE_QUOTA_BLOBS", d.quota_blobs) or 0,
            window_s=float(number("COMPTOIR_STORAGE_QUOTA_WINDOW", int(d.window_s)) or 1),
            max_total_bytes=number("COMPTOIR_STORAGE_MAX_TOTAL_BYTES", None),
            min_free_bytes=number("COMPTOIR_STORAGE_MIN_FREE_BYTES", d.min_free_bytes) or 0,
        )


class UploadLedger:
    """What each identity uploaded (SQLite; in memory without a path) plus the uploads in
    flight, so concurrent uploads cannot each pass a quota only one of them fits."""

    def __init__(
        self,
        limits: StorageLimits,
        path: str | Path | None = None,
        disk: str | Path | None = None,
    ) -> None:
        self.limits, self._disk = limits, disk
        self._lock = threading.Lock()
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path) if path else ":memory:", check_same_thread=False)
        # WAL: a record is one append, not a rewrite; a crash of the process loses nothing
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS uploads (identity TEXT NOT NULL, digest TEXT NOT NULL,"
                " size INTEGER NOT NULL, at REAL NOT NULL)"
            )
            self._db.execute(
                "CREATE INDEX IF NOT EXISTS ix_uploads_identity ON uploads (identity, at)"
            )
            self._db.execute("CREATE INDEX IF NOT EXISTS ix_uploads_at ON uploads (at)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, size INTEGER NOT NULL)"
            )
        row = self._db.execute("SELECT COALESCE(SUM(size), 0) FROM blobs").fetchone()
        self._total = int(row[0])
        self._pending: dict[str, tuple[int, int]] = {}  # identity -> (bytes, blobs) in flight
        self._pending_total = 0

    def _used(self, identity: str, since: float) -> tuple[int, int]:
        size, count = self._db.execute(
            "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM uploads WHERE identity = ? AND at > ?",
            (identity, since),
        ).fetchone()
        extra = self._pending.get(identity, (0, 0))
        return int(size) + extra[0], int(count) + extra[1]

    @contextmanager
    def reserve(
        self, identities: Sequence[str], digest: str, size: int, now: float | None = None
    ) -> Iterator[None]:
        """Holds `size` bytes against every identity and the global cap while the body
        streams in, and records them once the block ends without error; GrantRefused (413
        or 507, one sentence) when it does not fit."""
        lim, now = self.limits, time.time() if now is None else now
        names = sorted({i.lower() for i in identities})
        with self._lock:
            if size > lim.max_blob_bytes:
                raise GrantRefused(
                    413, f"Blobs are limited to {lim.max_blob_bytes} bytes here; send less."
                )
            for name in names:
                if self._pending.get(name, (0, 0))[1] >= lim.max_in_flight:
                    raise GrantRefused(
                        429,
                        f"{name} has {lim.max_in_flight} uploads in progress here; "
                        "retry when one has finished.",
                    )
                used, count = self._used(name, now - lim.window_s)
                if used + size > lim.quota_bytes or count + 1 > lim.quota_blobs:
                    raise GrantRefused(
                        413,
                        f"{name} has used its upload quota here ({lim.quota_bytes} bytes or "
                        f"{lim.quota_blobs} blobs per {int(lim.window_s)} s); retry later.",
                    )
            total = self._total + self._pending_total + size
            if lim.max_total_bytes is not None and total > lim.max_total_bytes:
                raise GrantRefused(
                    507, "This storage service is full; nothing was stored, retry later."
                )
            if self._disk is not None:
                free = shutil.disk_usage(self._disk).free - self._pending_total - size
                if free < lim.min_free_bytes:
                    raise GrantRefused(
                        507, "This storage service's disk is full; nothing was stored, retry later."
                    )
            for name in names:
                b, c = self._pending.get(name, (0, 0))
                self._pending[name] = (b + size, c + 1)
            self._pending_total += size
        ok = False
        try:
            yield
            ok = True
        finally:
            with self._lock:
                for name in names:
                    b, c = self._pending.pop(name)
                    if (b - size, c - 1) != (0, 0):
                        self._pending[name] = (b - size, c - 1)
                self._pending_total -= size
                if ok:
                    self._record(names, digest, size, now)

    def _record(self, names: Sequence[str], digest: str, size: int, now: float) -> None:
        with self._db:
            added = self._db.execute(
                "INSERT OR IGNORE INTO blobs (digest, size) VALUES (?, ?)", (digest, size)
            ).rowcount
            self._db.executemany(
                "INSERT INTO uploads (identity, digest, size, at) VALUES (?, ?, ?, ?)",
                [(name, digest, size, now) for name in names],
            )
            # forget what no window counts any more: the table stays as small as the window
            self._db.execute("DELETE FROM uploads WHERE at <= ?", (now - self.limits.window_s,))
        self._total += size if added else 0

    @property
    def in_flight_bytes(self) -> int:
        with self._lock:
            return self._pending_total

    @property
    def total_bytes(self) -> int:
        with self._lock:
            return self._total
