"""The app/worker contract (docs/app-contract.md): paths, environment, result digest.

Everything here is pure and deterministic so any party (worker, requester, auditor)
recomputes the same result digest from the same outputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

from comptoir.exceptions import AppPackageError
from comptoir.storage.digest import sha256_file

IN_DIR = "/comptoir/in"
OUT_DIR = "/comptoir/out"
APP_DIR = "/comptoir/app"
DATASET_PATH = "/comptoir/in/dataset"
ENV_TASK_INDEX = "COMPTOIR_TASK_INDEX"
ENV_TASK_ID = "COMPTOIR_TASK_ID"
ENV_ARGS = "COMPTOIR_ARGS"
ENV_DATASET = "COMPTOIR_DATASET"
DETERMINISM_LABEL = "org.comptoir.determinism"  # OCI image label naming the determinism file


def check_relative_path(rel: str) -> str:
    """A normalized relative POSIX path that cannot leave its base directory."""
    p = PurePosixPath(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel or "\0" in rel:
        raise AppPackageError(f"{rel!r} must be a relative path inside the outputs, without '..'.")
    return str(p)


def output_files(out_dir: str | Path) -> list[tuple[str, Path]]:
    """Regular files under ``out_dir`` as ``(relative posix path, path)``, sorted by the
    UTF-8 bytes of the relative path. Symlinks, sockets, devices and empty directories
    are not outputs: they are neither hashed nor archived (and never followed, so an app
    cannot make the worker read host files through a link)."""
    base = Path(out_dir)
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(base, followlinks=False):
        dirs.sort()
        for name in files:
            path = Path(root) / name
            if stat.S_ISREG(path.lstat().st_mode):
                found.append((path.relative_to(base).as_posix(), path))
    found.sort(key=lambda item: item[0].encode("utf-8", "surrogateescape"))
    return found


def outputs_manifest(out_dir: str | Path) -> bytes:
    """One line per output file, ``<sha256 hex><2 spaces><relative path>\\n`` — the same
    format as ``sha256sum`` — in byte order of the path."""
    lines = [f"{sha256_file(path)}  {rel}\n" for rel, path in output_files(out_dir)]
    return "".join(lines).encode("utf-8", "surrogateescape")


def result_digest(out_dir: str | Path, determinism: str | None = None) -> str:
    """The result digest a worker contributes (sha256 hex).

    With a determinism file: sha256 of that file's bytes (it must exist and be a regular
    file). Without: sha256 of :func:`outputs_manifest`.
    """
    if determinism:
        rel = check_relative_path(determinism)
        path = Path(out_dir) / rel
        if path.is_symlink() or not path.is_file():
            raise AppPackageError(
                f"The app declares {rel!r} as its determinism file but did not write it "
                "as a regular file in /comptoir/out."
            )
        # Refuse a path that escapes through a symlinked parent directory.
        if not path.resolve().is_relative_to(Path(out_dir).resolve()):
            raise AppPackageError(f"The determinism file {rel!r} lies outside the outputs.")
        return sha256_file(path)
    return hashlib.sha256(outputs_manifest(out_dir)).hexdigest()


def result_archive(out_dir: str | Path) -> bytes:
    """A reproducible ``.tar.gz`` of the outputs: regular files only, sorted, mtime 0,
    uid/gid 0, no user names, mode 0644 (0755 when executable), gzip header without
    name or time. Same outputs, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen_dirs: set[str] = set()
        for rel, path in output_files(out_dir):
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    tar.addfile(_entry(d, tarfile.DIRTYPE, 0o755, 0))
            mode = 0o755 if path.stat().st_mode & 0o111 else 0o644
            size = path.stat().st_size
            with open(path, "rb") as f:
                tar.addfile(_entry(rel, tarfile.REGTYPE, mode, size), f)
    return gzip.compress(raw.getvalue(), mtime=0)


def _entry(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def safe_extract(tar: tarfile.TarFile, dest: Path, *, max_bytes: int | None = None) -> None:
    """Extract only regular files and directories with clean relative names into
    ``dest``; anything else (links, devices, absolute or ``..`` paths) is refused before a
    byte is written. Modes become 0644/0755 (0755 for owner-executable files).

    Written by hand rather than relying on tarfile's ``filter="data"``, which Python
    only has from 3.11.4 on.
    """
    members = tar.getmembers()
    total = 0
    for m in members:
        if not (m.isfile() or m.isdir()):
            raise AppPackageError(f"Archive entry {m.name} is not a file or directory.")
        check_relative_path(m.name)
        total += m.size
    if max_bytes is not None and total > max_bytes:
        raise AppPackageError(f"The archive unpacks to {total} bytes, over {max_bytes}.")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    for m in members:
        target = root / str(PurePosixPath(m.name))
        if not target.parent.resolve().is_relative_to(root):
            raise AppPackageError(f"Archive entry {m.name} escapes the destination.")
        if m.isdir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        src = tar.extractfile(m)
        assert src is not None
        mode = 0o755 if m.mode & 0o100 else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
        os.chmod(target, mode)
