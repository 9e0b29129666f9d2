"""Bundle apps: a reproducible ``.tar.gz`` with ``comptoir.json`` at its root, run with the
worker's own runtime (e.g. ``python3``) from ``/comptoir/app``."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from comptoir.apps.contract import _entry, check_relative_path
from comptoir.apps.unpack import (
    Budget,
    Mode,
    UnpackLimits,
    clean_parts,
    default_owner,
    extract,
    next_member,
    open_root,
    open_stream,
    package_source,
)
from comptoir.exceptions import AppPackageError

MANIFEST = "comptoir.json"
MAX_MANIFEST_BYTES = 64 * 1024


@dataclass(frozen=True)
class BundleManifest:
    name: str
    command: tuple[str, ...]
    determinism: str | None = None

    @classmethod
    def parse(cls, raw: bytes) -> BundleManifest:
        try:
            doc: Any = json.loads(raw)
        except ValueError as exc:
            raise AppPackageError(f"{MANIFEST} is not valid JSON ({exc}).") from None
        if not isinstance(doc, dict):
            raise AppPackageError(f"{MANIFEST} must be a JSON object.")
        name, command, det = doc.get("name"), doc.get("command"), doc.get("determinism")
        if not isinstance(name, str) or not name:
            raise AppPackageError(f'{MANIFEST} needs a non-empty string "name".')
        if (
            not isinstance(command, list)
            or not command
            or not all(isinstance(a, str) and "\0" not in a for a in command)
        ):
            raise AppPackageError(f'{MANIFEST} needs "command": a non-empty list of strings.')
        if det is not None and not isinstance(det, str):
            raise AppPackageError(f'{MANIFEST} "determinism" must be a relative path string.')
        return cls(name, tuple(command), check_relative_path(det) if det else None)

    def to_json(self) -> bytes:
        doc: dict[str, Any] = {"name": self.name, "command": list(self.command)}
        if self.determinism:
            doc["determinism"] = self.determinism
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"


def build_bundle(src_dir: str | Path) -> bytes:
    """Pack ``src_dir`` (which must contain a valid ``comptoir.json``) reproducibly:
    sorted entries, zeroed times and owners, modes 0644/0755. Symlinks and special files
    are refused rather than silently dropped."""
    src = Path(src_dir)
    manifest_path = src / MANIFEST
    if not manifest_path.is_file():
        raise AppPackageError(f"{src} has no {MANIFEST}; write one with name and command.")
    BundleManifest.parse(manifest_path.read_bytes())
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries: list[Path] = []
        for root, dirs, files in os.walk(src):
            dirs.sort()
            entries.extend(Path(root) / d for d in dirs)
            entries.extend(Path(root) / f for f in files)
        for path in sorted(entries, key=lambda p: p.relative_to(src).as_posix().encode()):
            rel = path.relative_to(src).as_posix()
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(_entry(rel, tarfile.DIRTYPE, 0o755, 0))
            elif stat.S_ISREG(st.st_mode):
                mode = 0o755 if st.st_mode & 0o111 else 0o644
                with open(path, "rb") as f:
                    tar.addfile(_entry(rel, tarfile.REGTYPE, mode, st.st_size), f)
            else:
                raise AppPackageError(
                    f"{rel} is not a regular file or directory; bundles may only contain those."
                )
    return gzip.compress(raw.getvalue(), mtime=0)


def read_bundle_manifest(
    bundle: bytes | str | Path, *, limits: UnpackLimits | None = None
) -> BundleManifest:
    """The manifest of a bundle without unpacking it (the scan is bounded like an unpack)."""
    limits = limits or UnpackLimits()
    with package_source(bundle) as (raw, size):
        budget = Budget(limits, size)
        tar = open_stream(raw, budget)
        while True:
            member = next_member(tar)
            if member is None:
                raise AppPackageError(f"The bundle has no {MANIFEST} at its root.")
            budget.charge(member.name, 0)
            if clean_parts(member.name, Mode.STRICT, limits) == [MANIFEST]:
                break
        if not member.isfile() or member.size > MAX_MANIFEST_BYTES:
            raise AppPackageError(f"{MANIFEST} in the bundle is not a small regular file.")
        f = tar.extractfile(member)
        assert f is not None
        return BundleManifest.parse(f.read())


def unpack_bundle(
    bundle: bytes | str | Path,
    dest: str | Path,
    *,
    max_bytes: int | None = None,
    limits: UnpackLimits | None = None,
) -> BundleManifest:
    """Extract into ``dest`` (created; must not exist or be empty) and return the manifest.

    Only regular files and directories with clean relative names are accepted, within
    ``limits`` (see :mod:`comptoir.apps.unpack`). Everything ends up world-readable and
    read-only so the sandbox's unprivileged user can run it but nobody can modify it.
    Over a limit raises :class:`~comptoir.exceptions.PackageLimitExceeded`.
    """
    limits = limits or UnpackLimits()
    if max_bytes is not None:
        limits = replace(limits, max_bytes=min(limits.max_bytes, max_bytes))
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with package_source(bundle) as (raw, size):
        budget = Budget(limits, size)
        tar = open_stream(raw, budget)
        root = open_root(dest)
        try:
            extract(tar, root, budget, Mode.STRICT, owner=default_owner(), read_only=True)
            try:
                fd = os.open(MANIFEST, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=root)
            except FileNotFoundError:
                raise AppPackageError(f"The bundle has no {MANIFEST} at its root.") from None
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise AppPackageError(f"{MANIFEST} in the bundle is not a regular file.")
                raw_manifest = f.read(MAX_MANIFEST_BYTES + 1)
        finally:
            os.close(root)
    if len(raw_manifest) > MAX_MANIFEST_BYTES:
        raise AppPackageError(f"{MANIFEST} in the bundle is not a small regular file.")
    return BundleManifest.parse(raw_manifest)
