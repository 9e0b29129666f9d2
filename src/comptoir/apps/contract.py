"""The app/worker contract (docs/app-contract.md): paths, environment, result digest.

Everything here is pure and deterministic so any party (worker, requester, auditor)
recomputes the same result digest from the same outputs.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path, PurePosixPath

from comptoir.apps.fstree import TreeLimits, open_path, scan_tree
from comptoir.apps.unpack import Budget, Mode, UnpackLimits, extract, open_root
from comptoir.exceptions import AppPackageError

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


# Walk bounds for trees that were already bounded when written (the worker's copy of a
# job's outputs, an extracted result): generous, but a walk never recurses nor loops.
UNBOUNDED_WALK = TreeLimits(
    max_entries=1 << 40, max_depth=1 << 20, max_path_bytes=1 << 30, max_bytes=1 << 62
)


def output_files(out_dir: str | Path) -> list[tuple[str, Path]]:
    """Regular files under ``out_dir`` as ``(relative posix path, path)``, sorted by the
    UTF-8 bytes of the relative path. Symlinks, sockets, devices and empty directories
    are not outputs: they are neither hashed nor archived (and never followed, so an app
    cannot make the worker read host files through a link)."""
    base = Path(out_dir)
    return [(f.rel, base / f.rel) for f in scan_tree(base, UNBOUNDED_WALK).files]


def _sha256_at(out_dir: str | Path, rel: str) -> str:
    h = hashlib.sha256()
    fd = open_path(out_dir, rel)
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def outputs_manifest(out_dir: str | Path) -> bytes:
    """One line per output file, ``<sha256 hex><2 spaces><relative path>\\n`` — the same
    format as ``sha256sum`` — in byte order of the path."""
    lines = [f"{_sha256_at(out_dir, rel)}  {rel}\n" for rel, _ in output_files(out_dir)]
    return "".join(lines).encode("utf-8", "surrogateescape")


def result_digest(out_dir: str | Path, determinism: str | None = None) -> str:
    """The result digest a worker contributes (sha256 hex).

    With a determinism file: sha256 of that file's bytes (it must exist and be a regular
    file, reached without any symlink). Without: sha256 of :func:`outputs_manifest`.
    """
    if determinism:
        rel = check_relative_path(determinism)
        try:
            return _sha256_at(out_dir, rel)
        except OSError:
            raise AppPackageError(
                f"The app declares {rel!r} as its determinism file but did not write it "
                "as a regular file in /comptoir/out."
            ) from None
    return hashlib.sha256(outputs_manifest(out_dir)).hexdigest()


def result_archive(out_dir: str | Path) -> bytes:
    """A reproducible ``.tar.gz`` of the outputs: regular files only, sorted, mtime 0,
    uid/gid 0, no user names, mode 0644 (0755 when executable), gzip header without
    name or time. Same outputs, same bytes."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        seen_dirs: set[str] = set()
        for f in scan_tree(out_dir, UNBOUNDED_WALK).files:
            parts = f.rel.split("/")
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen_dirs:
                    seen_dirs.add(d)
                    tar.addfile(_entry(d, tarfile.DIRTYPE, 0o755, 0))
            mode = 0o755 if f.executable else 0o644
            with os.fdopen(open_path(out_dir, f.rel), "rb") as src:
                size = os.fstat(src.fileno()).st_size
                tar.addfile(_entry(f.rel, tarfile.REGTYPE, mode, size), src)
    return gzip.compress(raw.getvalue(), mtime=0)


def _entry(name: str, kind: bytes, mode: int, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size = kind, mode, size
    info.mtime = info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def safe_extract(tar: tarfile.TarFile, dest: Path, *, max_bytes: int | None = None) -> None:
    """Extract only regular files and directories with clean relative names into
    ``dest``; anything else (links, devices, absolute or ``..`` paths) is refused, and so
    is an archive past ``max_bytes`` (apparent bytes) or the default entry, depth and
    path limits of :class:`~comptoir.apps.unpack.UnpackLimits`. Modes become 0644/0755
    (0755 for owner-executable files); nothing is written through a link."""
    cap = max_bytes if max_bytes is not None else 1 << 62
    limits = UnpackLimits(max_bytes=cap, max_ratio=1, ratio_floor_bytes=cap)
    dest.mkdir(parents=True, exist_ok=True)
    root = open_root(dest)
    try:
        extract(tar, root, Budget(limits, 0), Mode.STRICT)
    finally:
        os.close(root)
