"""OCI images as image-layout tarballs, built and unpacked with umoci (no Docker daemon).

An OCI app is a tar of an OCI image layout directory (``oci-layout``, ``index.json``,
``blobs/sha256/…``), addressed on-chain by the sha256 of that tarball.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from comptoir.apps.contract import DETERMINISM_LABEL, _entry, check_relative_path
from comptoir.apps.fstree import remove_tree
from comptoir.apps.unpack import (
    Budget,
    Mode,
    UnpackLimits,
    default_owner,
    extract,
    open_root,
    open_stream,
    package_source,
)
from comptoir.exceptions import AppPackageError, ChecksumMismatch, ConfigError
from comptoir.storage.digest import sha256_file

MANIFEST_TYPES = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
}
INDEX_TYPES = {
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
}
# Directories the sandbox mounts over inside an image's rootfs.
MOUNT_POINTS = ("proc", "dev", "tmp", "comptoir", "comptoir/in", "comptoir/out", "comptoir/app")
_TAG = "comptoir"


@dataclass(frozen=True)
class OciConfig:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    workdir: str = "/"
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def argv(self) -> tuple[str, ...]:
        return self.entrypoint + self.cmd

    @property
    def determinism(self) -> str | None:
        det = self.labels.get(DETERMINISM_LABEL)
        return check_relative_path(det) if det else None

    @classmethod
    def from_image_config(cls, doc: Mapping[str, Any]) -> OciConfig:
        cfg = doc.get("config") or {}
        env: list[tuple[str, str]] = []
        for item in cfg.get("Env") or []:
            key, sep, value = str(item).partition("=")
            if sep:
                env.append((key, value))
        return cls(
            entrypoint=tuple(str(a) for a in cfg.get("Entrypoint") or ()),
            cmd=tuple(str(a) for a in cfg.get("Cmd") or ()),
            env=tuple(env),
            workdir=str(cfg.get("WorkingDir") or "/"),
            labels={str(k): str(v) for k, v in (cfg.get("Labels") or {}).items()},
        )


def _umoci(*args: str | Path) -> None:
    exe = shutil.which("umoci")
    if exe is None:
        raise ConfigError(
            "umoci is not installed; install it (apt-get install umoci) to run OCI images."
        )
    proc = subprocess.run([exe, *map(str, args)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AppPackageError(f"umoci {args[0]} failed: {proc.stderr.strip()[-500:]}")


def _rootless() -> list[str]:
    return [] if os.geteuid() == 0 else ["--rootless"]


def build_oci_image(
    rootfs_dir: str | Path,
    *,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    workdir: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> bytes:
    """A single-layer OCI image-layout tarball of ``rootfs_dir`` (for tests and demos)."""
    with tempfile.TemporaryDirectory(prefix="comptoir-oci-") as tmp:
        layout = Path(tmp) / "layout"
        image = f"{layout}:{_TAG}"
        # reproducible: the same folder gives the same checksum whenever it is built, so
        # file times are pinned in a copy, and so are the image's and history's dates
        rootfs = Path(tmp) / "rootfs"
        shutil.copytree(rootfs_dir, rootfs, symlinks=True)
        _pin_times(rootfs)
        _umoci("init", "--layout", layout)
        _umoci("new", "--image", image)
        _umoci("insert", *_rootless(), "--history.created", EPOCH, "--image", image, rootfs, "/")
        args: list[str] = ["--created", EPOCH, "--history.created", EPOCH]
        args += [f"--config.entrypoint={a}" for a in entrypoint]
        args += [f"--config.cmd={a}" for a in cmd]
        args += [f"--config.env={k}={v}" for k, v in (env or {}).items()]
        args += [f"--config.label={k}={v}" for k, v in (labels or {}).items()]
        if workdir:
            args.append(f"--config.workingdir={workdir}")
        _umoci("config", "--image", image, *args)
        _umoci("gc", "--layout", layout)
        return deterministic_tar(layout)


EPOCH = "1970-01-01T00:00:00Z"  # every date an image built here records


def _pin_times(root: Path) -> None:
    """Every entry's access and modification times at the epoch (links themselves too)."""
    for top, dirs, files in os.walk(root, topdown=False):  # never through a link
        for name in files + dirs:
            os.utime(os.path.join(top, name), (0, 0), follow_symlinks=False)
    os.utime(root, (0, 0))


def deterministic_tar(directory: str | Path) -> bytes:
    """Uncompressed tar of a directory's files and dirs, sorted, with zeroed metadata."""
    base = Path(directory)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        paths = sorted(base.rglob("*"), key=lambda p: p.relative_to(base).as_posix().encode())
        for path in paths:
            rel = path.relative_to(base).as_posix()
            st = path.lstat()
            if stat.S_ISDIR(st.st_mode):
                tar.addfile(_entry(rel, tarfile.DIRTYPE, 0o755, 0))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    tar.addfile(_entry(rel, tarfile.REGTYPE, 0o644, st.st_size), f)
    return raw.getvalue()


def _blob(layout: Path, digest: str) -> Path:
    algo, _, hexdigest = digest.partition(":")
    if algo != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise AppPackageError(f"Unsupported blob digest {digest!r} in the OCI image.")
    path = layout / "blobs" / "sha256" / hexdigest
    if not path.is_file():
        raise AppPackageError(f"The OCI image lacks blob {digest}.")
    if sha256_file(path) != hexdigest:
        raise ChecksumMismatch(f"Blob {digest} of the OCI image is corrupted.")
    return path


def _pick_manifest(layout: Path, index: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if not manifests or depth > 2:
        raise AppPackageError("The OCI image index lists no usable manifest.")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)

    def score(m: Mapping[str, Any]) -> int:
        plat = m.get("platform") or {}
        return int(plat.get("os", "linux") == "linux") + int(plat.get("architecture", arch) == arch)

    best = max(manifests, key=score)
    if best.get("mediaType") in INDEX_TYPES:
        nested = json.loads(_blob(layout, str(best["digest"])).read_bytes())
        return _pick_manifest(layout, nested, depth + 1)
    return dict(best)


def unpack_oci_image(
    image: bytes | str | Path, dest: str | Path, *, limits: UnpackLimits | None = None
) -> OciConfig:
    """Unpack an image-layout tarball: ``dest/layout`` (the layout) and ``dest/rootfs``.

    The layers are applied in order by :mod:`comptoir.apps.unpack` (whiteouts, links
    resolved inside the rootfs), within ``limits`` for the whole image; no setuid bit,
    file capability, device node or root-owned file reaches the host, whatever the image
    says. The rootfs gets the sandbox mount points as real directories, so nothing in the
    image (e.g. a ``/proc`` symlink to a host path) can redirect the sandbox's mounts.
    Over a limit raises :class:`~comptoir.exceptions.PackageLimitExceeded`.
    """
    limits = limits or UnpackLimits()
    dest = Path(dest)
    layout, rootfs = dest / "layout", dest / "rootfs"
    layout.mkdir(parents=True, exist_ok=True)
    owner = default_owner()
    with package_source(image) as (raw, size):
        budget = Budget(limits, size)
        _extract_into(raw, layout, budget, Mode.STRICT, owner)
    # Accept a tarball whose layout sits in a single top-level directory.
    if not (layout / "index.json").is_file():
        subdirs = [p for p in layout.iterdir() if p.is_dir() and not p.is_symlink()]
        if len(subdirs) == 1 and (subdirs[0] / "index.json").is_file():
            layout = subdirs[0]
        else:
            raise AppPackageError("The OCI image tarball has no index.json.")
    try:
        index = _read_json(layout / "index.json")
        desc = _pick_manifest(layout, index)
        manifest = _read_json(_blob(layout, str(desc["digest"])))
        config_doc = _read_json(_blob(layout, str(manifest["config"]["digest"])))
        layers = [_blob(layout, str(d["digest"])) for d in manifest.get("layers") or []]
    except (ValueError, KeyError, TypeError) as exc:
        raise AppPackageError(f"The OCI image metadata is malformed ({exc}).") from None
    if rootfs.exists():
        remove_tree(rootfs)
    rootfs.mkdir(mode=0o755)
    if owner is not None:
        os.chown(rootfs, owner, owner)
    for layer in layers:
        budget.charge(layer.name, 0)
        with open(layer, "rb") as raw_layer:
            _extract_into(raw_layer, rootfs, budget, Mode.LAYER, owner)
    ensure_mount_points(rootfs, owner)
    config = OciConfig.from_image_config(config_doc)
    _ensure_workdir(rootfs, config.workdir, owner)
    return config


MAX_JSON_BYTES = 4 << 20  # index, manifest, config


def _read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        data = f.read(MAX_JSON_BYTES + 1)
    if len(data) > MAX_JSON_BYTES:
        raise AppPackageError(f"The OCI image's {path.name} is over {MAX_JSON_BYTES} bytes.")
    doc = json.loads(data)
    if not isinstance(doc, dict):
        raise AppPackageError(f"The OCI image's {path.name} is not a JSON object.")
    return doc


def _extract_into(raw: BinaryIO, dest: Path, budget: Budget, mode: Mode, owner: int | None) -> None:
    tar = open_stream(raw, budget)
    root = open_root(dest)
    try:
        extract(tar, root, budget, mode, owner=owner)
    finally:
        os.close(root)


def _ensure_workdir(rootfs: Path, workdir: str, owner: int | None = None) -> None:
    """Create a missing WorkingDir as container runtimes do, without ever following a link
    of the image on the host: a symlinked component is left for the sandbox to resolve
    inside the image's own root."""
    parts = [p for p in workdir.split("/") if p and p != "."]
    if ".." in parts:
        raise AppPackageError(f"The image's WorkingDir {workdir!r} must not contain '..'.")
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        for name in parts:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.mkdir(name, 0o755, dir_fd=fd)
                if owner is not None:
                    os.chown(name, owner, owner, dir_fd=fd, follow_symlinks=False)
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if not stat.S_ISDIR(st.st_mode):
                return
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def ensure_mount_points(rootfs: Path, owner: int | None = None) -> None:
    """Make each sandbox mount point a real directory, replacing whatever the image put
    there (symlink, file): bwrap must never follow an image-controlled link. ``owner``
    (root workers) gets the directories created here."""
    root_fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.chmod(root_fd, 0o755)
        for rel in MOUNT_POINTS:
            parent_fd = root_fd
            opened: list[int] = []
            try:
                parts = rel.split("/")
                for name in parts:
                    try:
                        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
                        if not stat.S_ISDIR(st.st_mode):
                            os.unlink(name, dir_fd=parent_fd)
                            _mkdir_owned(name, parent_fd, owner)
                    except FileNotFoundError:
                        _mkdir_owned(name, parent_fd, owner)
                    fd = os.open(
                        name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd
                    )
                    opened.append(fd)
                    parent_fd = fd
            finally:
                for fd in opened:
                    os.close(fd)
    finally:
        os.close(root_fd)


def _mkdir_owned(name: str, parent_fd: int, owner: int | None) -> None:
    os.mkdir(name, 0o755, dir_fd=parent_fd)
    if owner is not None:
        os.chown(name, owner, owner, dir_fd=parent_fd, follow_symlinks=False)


def copy_host_binaries(rootfs: str | Path, binaries: Iterable[str]) -> None:
    """Copy host executables and the shared libraries ``ldd`` lists into ``rootfs`` at the
    same paths: enough to build tiny self-contained images without a registry."""
    root = Path(rootfs)
    for name in binaries:
        exe = shutil.which(name) if "/" not in name else name
        if exe is None:
            raise ConfigError(f"{name} is not installed on this host.")
        target = exe if name.startswith("/") else f"/usr/bin/{Path(exe).name}"
        files = {target: os.path.realpath(exe)}
        out = subprocess.run(["ldd", exe], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            m = re.search(r"(/\S+) \(0x", line)
            if m:
                files[m.group(1)] = os.path.realpath(m.group(1))
        for dst, src in files.items():
            path = root / dst.lstrip("/")
            path.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, path)
