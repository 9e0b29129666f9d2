"""Crash-safe record of the assignments a worker holds (one small JSON file).

Written atomically (temp file, fsync, rename) before every step that another party
will rely on: before running (so a restart releases it), and before committing (so a
restart can still reveal the digest it committed to).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

RUNNING, COMMITTED = "running", "committed"


class Journal:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._entries: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
        except FileNotFoundError:
            self._entries = {}
        except ValueError:  # torn by something other than us: start clean, keep a copy
            os.replace(self.path, self.path.with_suffix(".corrupt"))
            self._entries = {}

    def entries(self) -> dict[int, dict[str, Any]]:
        with self._lock:
            return {int(k): dict(v) for k, v in self._entries.items()}

    def put(self, aid: int, **entry: Any) -> None:
        with self._lock:
            self._entries[str(aid)] = {**self._entries.get(str(aid), {}), **entry}
            self._write()

    def drop(self, aid: int) -> None:
        with self._lock:
            if self._entries.pop(str(aid), None) is not None:
                self._write()

    def _write(self) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".journal-")
        with os.fdopen(fd, "w") as f:
            json.dump(self._entries, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
