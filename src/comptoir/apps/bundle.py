"""Bundle apps: a reproducible ``.tar.gz`` with ``comptoir.json`` at its root, run with the
worker's own runtime (e.g. ``python3``) from ``/comptoir/app``."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.apps.contract import _entry, check_relative_path, safe_extract
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


def read_bundle_manifest(bundle: bytes | str | Path) -> BundleManifest:
    """The manifest of a bundle without unpacking it."""
    with _open(bundle) as tar:
        try:
            member = tar.getmember(MANIFEST)
        except KeyError:
            raise AppPackageError(f"The bundle has no {MANIFEST} at its root.") from None
        if not member.isfile() or member.size > MAX_MANIFEST_BYTES:
            raise AppPackageError(f"{MANIFEST} in the bundle is not a small regular file.")
        f = tar.extractfile(member)
        assert f is not None
        return BundleManifest.parse(f.read())


def unpack_bundle(
    bundle: bytes | str | Path, dest: str | Path, *, max_bytes: int | None = None
) -> BundleManifest:
    """Extract into ``dest`` (created; must not exist or be empty) and return the manifest.

    Only regular files and directories with clean relative names are accepted (see
    :func:`safe_extract`). Everything ends up world-readable and
    read-only so the sandbox's unprivileged user can run it but nobody can modify it.
    """
    manifest = read_bundle_manifest(bundle)
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    with _open(bundle) as tar:
        try:
            safe_extract(tar, dest, max_bytes=max_bytes)
        except (tarfile.TarError, OSError) as exc:
            raise AppPackageError(f"The bundle cannot be unpacked safely: {exc}.") from None
    for root, dirs, files in os.walk(dest):
        for d in dirs:
            os.chmod(Path(root) / d, 0o755)
        for f in files:
            p = Path(root) / f
            os.chmod(p, 0o555 if p.stat().st_mode & 0o111 else 0o444)
    return manifest


def _open(bundle: bytes | str | Path) -> tarfile.TarFile:
    try:
        if isinstance(bundle, bytes):
            return tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz")
        return tarfile.open(bundle, mode="r:gz")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AppPackageError(f"The bundle is not a readable .tar.gz ({exc}).") from None
