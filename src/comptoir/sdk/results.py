"""Checking a downloaded result against the digest the chain settled on.

What workers commit to (docs/app-contract.md, comptoir.worker): for a successful run the
result digest of the outputs (the determinism file's sha256, or the outputs manifest's);
for a deal with a callback, keccak256 of the ``callback`` output; for a failed run, the
sha256 (keccak256 with a callback) of the canonical failure record, which is then what
was uploaded instead of an archive.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

from eth_utils import keccak

from comptoir.apps import result_digest, sealed
from comptoir.apps.contract import output_files, safe_extract
from comptoir.exceptions import AppPackageError
from comptoir.storage.digest import sha256_bytes

CALLBACK_FILE = "callback"
MAX_RESULT_BYTES = 1 << 30
MAX_PARAMS_BYTES = 512  # the hub's String[512]


@dataclass(frozen=True)
class Checked:
    status: str  # verified, failed, mismatch
    message: str
    files: tuple[str, ...]
    preview: str


def check_result(
    blob: bytes,
    onchain_digest: bytes,
    dest: Path,
    determinism: str | None,
    callback: bool = False,
) -> Checked:
    """Unpack `blob` into `dest` and compare it with `onchain_digest`."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if blob[:2] == b"\x1f\x8b":
        try:
            with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
                safe_extract(tar, dest, max_bytes=MAX_RESULT_BYTES)
        except (OSError, tarfile.TarError, AppPackageError) as exc:
            return Checked("mismatch", f"the result archive is unreadable ({exc})", (), "")
        files = tuple(rel for rel, _ in output_files(dest))
        try:
            if callback:
                local = keccak((dest / CALLBACK_FILE).read_bytes())
            else:
                local = bytes.fromhex(result_digest(dest, determinism))
        except (OSError, AppPackageError) as exc:
            return Checked(
                "mismatch", f"the result lacks what its digest covers ({exc})", files, ""
            )
        preview = _preview(dest, determinism or (CALLBACK_FILE if callback else None), files)
        if local == onchain_digest:
            return Checked("verified", "the result's digest matches the chain", files, preview)
        return Checked(
            "mismatch",
            f"the result hashes to 0x{local.hex()}, not the on-chain 0x{onchain_digest.hex()}",
            files,
            preview,
        )
    # not an archive: the failure record the workers agreed on
    local = keccak(blob) if callback else bytes.fromhex(sha256_bytes(blob))
    (dest / "failure.json").write_bytes(blob)
    if local != onchain_digest:
        return Checked(
            "mismatch", "the failure record does not match the chain", ("failure.json",), ""
        )
    try:
        record = json.loads(blob)
        reason = f"the app failed ({record.get('status', 'unknown')})"
        if record.get("exit_code") is not None:
            reason += f", exit code {record['exit_code']}"
    except (ValueError, AttributeError):
        reason = "the app failed"
    return Checked(
        "failed", reason + "; the failure record matches the chain", ("failure.json",), ""
    )


def _preview(dest: Path, main: str | None, files: tuple[str, ...]) -> str:
    """The start of the main output, for display: the first text file (a callback's bytes
    are binary)."""
    for rel in ([main] if main else []) + list(files):
        path = dest / rel if rel else None
        if path is None or not path.is_file():
            continue
        try:
            text = path.read_bytes()[:200].decode()
        except UnicodeDecodeError:
            continue
        if text.isprintable() or "\n" in text:
            return " ".join(text.split())
    return ""


def write_logs(dest: Path, logs: sealed.Logs) -> None:
    """The app's stdout/stderr tails beside its outputs (``<dest>.stdout``, never inside
    ``dest``: they are not part of the result)."""
    dest.with_name(dest.name + ".stdout").write_bytes(logs.stdout)
    dest.with_name(dest.name + ".stderr").write_bytes(logs.stderr)


def log_tails(logs: sealed.Logs | None) -> tuple[str, str]:
    """The tails as text for display (marked when the worker kept only the end)."""
    if logs is None:
        return "", ""
    out = [
        ("[…] " if cut else "") + raw.decode(errors="replace")
        for raw, cut in ((logs.stdout, logs.stdout_truncated), (logs.stderr, logs.stderr_truncated))
    ]
    return out[0], out[1]
