"""Deterministic app failures as results.

An app that times out, exceeds its memory, output or process limit, or exits non-zero
fails the same way on every honest worker, so the failure is contributed like a result:
a canonical JSON record (sorted keys, no whitespace, nothing host-specific such as
durations or stderr) whose sha256 is the digest. Honest workers agree on it, consensus
settles it, and the requester reads a clear failed status instead of a missing result.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from comptoir.sandbox import Outcome

RECORD_KIND = "comptoir-task-failure"
DETERMINISTIC = (
    Outcome.APP_FAILED,
    Outcome.TIMEOUT,
    Outcome.MEMORY_LIMIT,
    Outcome.OUTPUT_LIMIT,
    Outcome.PROCESS_LIMIT,
)


# Failures of the package itself, before anything runs: same bytes, same verdict.
APP_INVALID = "APP_INVALID"  # malformed or unsafe package
PACKAGE_LIMIT = "PACKAGE_LIMIT"  # unpacks past the pool's limits (e.g. a decompression bomb)


def failure_record(status: str, exit_code: int | None = None) -> str:
    """The canonical record of a failure ``status`` (an Outcome name, e.g. ``TIMEOUT``,
    :data:`APP_INVALID` or :data:`PACKAGE_LIMIT`)."""
    doc: dict[str, Any] = {"kind": RECORD_KIND, "status": status, "version": 1}
    if status == Outcome.APP_FAILED.value.upper():
        doc["exit_code"] = exit_code
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def record_digest(record: str) -> bytes:
    return hashlib.sha256(record.encode()).digest()


def parse_record(raw: str | bytes) -> dict[str, Any] | None:
    """The record's fields when `raw` is a failure record, else None."""
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) and doc.get("kind") == RECORD_KIND else None
