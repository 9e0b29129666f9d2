"""Packaging a computed result for upload: sealed to the requester (and to the app's or
the callback's owner its request names, once the chain backs their keys) when its
request names a result key (comptoir.apps.sealed), with the app's stdout/stderr tails
inside the sealed part, never in the digest nor in the public part."""

from __future__ import annotations

from pathlib import Path

from comptoir.apps.sealed import LOG_TAIL_BYTES, Logs, ResultTerms, seal
from comptoir.sandbox.executor import SandboxResult


def logs_of(run: SandboxResult | None) -> Logs:
    """The tails a run left (empty when the app never ran, e.g. an invalid package)."""
    if run is None:
        return Logs(b"", b"")
    return Logs(
        run.stdout[-LOG_TAIL_BYTES:],
        run.stderr[-LOG_TAIL_BYTES:],
        run.stdout_truncated or len(run.stdout) > LOG_TAIL_BYTES,
        run.stderr_truncated or len(run.stderr) > LOG_TAIL_BYTES,
    )


def seal_file(
    path: Path, terms: ResultTerms, run: SandboxResult | None, *, tamper: bool = False
) -> Path:
    """The file to upload for the result at ``path``: ``path`` itself without a result key
    (the logs are then not kept: nobody may read them but the requester), else an envelope
    beside it (``<path>.sealed``), which replaces it."""
    if terms.key is None:
        return path
    sealed = path.with_name(path.name + ".sealed")
    envelope = bytearray(seal(path.read_bytes(), logs_of(run), terms.recipients(), terms.sealed))
    if tamper:  # TEST ONLY (COMPTOIR_WORKER_FAULT=tamper_seal): one ciphertext bit flipped
        envelope[-1] ^= 1
    sealed.write_bytes(envelope)
    path.unlink()
    return sealed
