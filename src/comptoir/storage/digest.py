"""sha256 digests: the one way Comptoir names blobs (apps, datasets, results)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from comptoir.exceptions import ChecksumMismatch, InvalidDigest

CHUNK = 1 << 20
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def normalize_digest(digest: str) -> str:
    """Return ``digest`` as 64 lowercase hex digits; accepts a ``0x`` or ``sha256:`` prefix.

    On-chain checksums are bytes32 (``0x...``) and OCI uses ``sha256:...``; everything
    off-chain uses the bare form so paths and URLs never disagree.
    """
    d = digest.strip().lower()
    for prefix in ("0x", "sha256:"):
        if d.startswith(prefix):
            d = d[len(prefix) :]
    if not _DIGEST_RE.fullmatch(d):
        shown = digest if len(digest) <= 80 else digest[:40] + "..."  # never echo a flood
        raise InvalidDigest(f"{shown!r} is not a sha256 digest; expected 64 hex digits.")
    return d


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_stream(f: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := f.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def check_digest(actual: str, expected: str | None, what: str = "blob") -> None:
    if expected is not None and actual != normalize_digest(expected):
        raise ChecksumMismatch(
            f"The {what} has sha256 {actual} but {normalize_digest(expected)} was expected; "
            "it was corrupted or tampered with, fetch it again from a trusted source."
        )


def verified_chunks(chunks: Iterable[bytes], expected: str, what: str = "blob") -> Iterator[bytes]:
    """Yield ``chunks`` unchanged and raise ChecksumMismatch at the end if the digest differs.

    Streaming consumers must treat everything they received as untrusted until the
    iterator is exhausted without error.
    """
    h = hashlib.sha256()
    for chunk in chunks:
        h.update(chunk)
        yield chunk
    check_digest(h.hexdigest(), expected, what)
