"""Bounded, unprivileged-in-effect extraction of bundles, OCI layouts and OCI layers.

One streaming extractor serves all three. It never trusts the archive:

* **bounded before written**: every member's *apparent* size (a sparse member counts
  what it declares, not what it stores) is charged to the package's budget before a byte
  is written, with the number of entries, the path depth and length, and the expansion
  ratio (unpacked bytes over package bytes); the decompressed stream itself is capped,
  and no single tar header may exceed :data:`MAX_HEADER_BYTES`, so neither disk, memory
  nor CPU go past the limits whatever the archive declares;
* **nothing privileged survives**: no setuid/setgid/sticky bit, no group- or
  world-writable mode, no extended attribute (``security.capability`` and the like are
  never applied), no device node or FIFO, and nothing owned by root: a root worker hands
  every file to :data:`PACKAGE_UID`, an account no process runs as;
* **link-proof**: every path component is opened relative to its parent's descriptor
  with ``O_NOFOLLOW``; an OCI layer's symlinks are resolved inside the image's own root
  (as a container runtime would), never on the host.

Over a limit is :class:`PackageLimitExceeded` (the same bytes break the same limits on
every worker: a deterministic failure); anything else unsafe or malformed is
:class:`~comptoir.exceptions.AppPackageError`.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import BinaryIO

from comptoir.apps.fstree import DIR_FLAGS, open_dir_at, remove_at
from comptoir.exceptions import AppPackageError, PackageLimitExceeded

PACKAGE_UID = 1_499_999_999  # owns unpacked apps on a root worker; no process runs as it
MAX_HEADER_BYTES = 1 << 20  # one tar header (PAX records, GNU long names) in memory
MAX_NAME_BYTES = 255  # NAME_MAX on every Linux file system
HEADER_ALLOWANCE = 4096  # decompressed bytes allowed per entry for its headers
MAX_SYMLINK_HOPS = 40
WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


@dataclass(frozen=True)
class UnpackLimits:
    """What one package may unpack to (worker settings; docs/app-contract.md)."""

    max_bytes: int = 2 << 30  # total apparent bytes of every file
    max_entries: int = 100_000  # files, directories, links, across all layers
    max_depth: int = 64  # path components
    max_path_bytes: int = 1024  # one path, UTF-8
    max_ratio: int = 100  # unpacked bytes per package byte ...
    ratio_floor_bytes: int = 32 << 20  # ... once past this many unpacked bytes

    def allowed_bytes(self, package_bytes: int) -> int:
        by_ratio = max(self.ratio_floor_bytes, self.max_ratio * package_bytes)
        return min(self.max_bytes, by_ratio)


class Mode(Enum):
    STRICT = "strict"  # bundles, OCI layouts: regular files and directories only
    LAYER = "layer"  # OCI layers: also links, whiteouts; devices and FIFOs dropped


@dataclass
class Budget:
    """One package's allowance, shared by everything unpacked from it."""

    limits: UnpackLimits
    package_bytes: int
    bytes: int = 0
    entries: int = 0
    allowed: int = field(init=False)

    def __post_init__(self) -> None:
        self.allowed = self.limits.allowed_bytes(self.package_bytes)

    def charge(self, name: str, size: int) -> None:
        self.entries += 1
        if self.entries > self.limits.max_entries:
            raise PackageLimitExceeded(
                f"The package holds more than {self.limits.max_entries} entries; "
                "this worker's limit refuses it."
            )
        self.bytes += max(size, 0)
        if self.bytes > self.allowed:
            why = (
                f"{self.limits.max_ratio} times its {self.package_bytes}-byte size"
                if self.allowed < self.limits.max_bytes
                else f"the {self.limits.max_bytes}-byte limit"
            )
            raise PackageLimitExceeded(
                f"The package unpacks to more than {self.allowed} bytes ({why}) at {name!r}; "
                "it is refused as a decompression bomb."
            )

    def stream_cap(self) -> int:
        return self.allowed + self.limits.max_entries * HEADER_ALLOWANCE + (1 << 20)


class _BoundedReader(io.RawIOBase):
    """The decompressed archive stream, read forward only and capped: a gzip bomb or a
    huge header is refused as it is read, before tarfile can hold it in memory."""

    def __init__(self, raw: BinaryIO, cap: int) -> None:
        self.raw, self.cap, self.pos = raw, cap, 0
        self.padding: int | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > MAX_HEADER_BYTES:
            raise PackageLimitExceeded(
                f"The package has a tar header or read of {n} bytes, over {MAX_HEADER_BYTES}."
            )
        if self.pos + n > self.cap:
            raise PackageLimitExceeded(
                f"The package decompresses to more than {self.cap} bytes; "
                "it is refused as a decompression bomb."
            )
        data = self.raw.read(n)
        while len(data) < n:  # tarfile wants whole reads; raw streams may be short
            more = self.raw.read(n - len(data))
            if not more:
                data += self._end_padding(n - len(data), self.pos + len(data))
                break
            data += more
        self.pos += len(data)
        return data

    def _end_padding(self, n: int, at: int) -> bytes:
        """Some writers (umoci's ``insert`` among them) end a layer right after its last
        file's data: serve the block padding and end-of-archive blocks it left out, once,
        as zeros (every worker reads the same bytes the same way)."""
        if self.padding is None:
            self.padding = (-at % 512) + 1024
        give = min(n, self.padding)
        self.padding -= give
        return bytes(give)

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        target = offset if whence == io.SEEK_SET else self.pos + offset
        if whence not in (io.SEEK_SET, io.SEEK_CUR) or target < self.pos:
            raise AppPackageError("The package's tar stream cannot be read forward only.")
        while self.pos < target:
            if not self.read(min(target - self.pos, MAX_HEADER_BYTES)):
                break
        return self.pos


def open_stream(raw: BinaryIO, budget: Budget) -> tarfile.TarFile:
    """A tar reader over ``raw`` (plain or gzip, by its magic bytes), within ``budget``."""
    head = raw.read(4)
    raw.seek(-len(head), io.SEEK_CUR)
    source: BinaryIO = raw
    if head.startswith(_GZIP_MAGIC):
        source = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif head == _ZSTD_MAGIC:
        raise AppPackageError(
            "The package uses zstd compression, which workers do not read; "
            "compress it (or its layers) with gzip."
        )
    reader = _BoundedReader(source, budget.stream_cap())
    try:
        return tarfile.open(fileobj=reader, mode="r:")  # type: ignore[arg-type]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise AppPackageError(f"The package is not a readable tar archive ({exc}).") from None


def extract(
    tar: tarfile.TarFile,
    dest_fd: int,
    budget: Budget,
    mode: Mode,
    *,
    owner: int | None = None,
    read_only: bool = False,
) -> None:
    """Apply every member of ``tar`` to the directory ``dest_fd`` (see the module doc).
    ``owner``: the uid/gid to give every entry (root workers), else the caller's.
    ``read_only`` (strict mode): files 0444/0555 instead of 0644/0755."""
    applier = _Applier(tar, dest_fd, budget, mode, owner, read_only)
    try:
        while (member := next_member(tar)) is not None:
            applier.apply(member)
        applier.finish()
    except OSError as exc:
        # Whatever the host refused (a name its file system rejects, say) was asked by
        # the package's bytes, so every worker refuses it alike.
        raise AppPackageError(f"The package cannot be unpacked ({exc.strerror or exc}).") from None


def next_member(tar: tarfile.TarFile) -> tarfile.TarInfo | None:
    """The next member, tarfile's own list of members kept empty so memory stays flat
    (nothing here looks a member up by name again)."""
    try:
        member = tar.next()
    except (tarfile.TarError, EOFError) as exc:
        raise AppPackageError(f"The package's tar stream is corrupt ({exc}).") from None
    tar.members.clear()  # type: ignore[attr-defined]
    return member


def clean_parts(name: str, mode: Mode, limits: UnpackLimits) -> list[str]:
    """The member's path components, checked (no ``..``, no NUL, within the limits)."""
    if "\0" in name:
        raise AppPackageError(f"Archive entry {name!r} has a NUL in its name.")
    if mode is Mode.STRICT and (name.startswith("/") or "\\" in name):
        raise AppPackageError(f"Archive entry {name!r} must be a relative path without '\\'.")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise AppPackageError(f"Archive entry {name!r} must not contain '..'.")
    if len(parts) > limits.max_depth:
        raise PackageLimitExceeded(
            f"Archive entry {name[:80]!r}... is nested {len(parts)} levels deep, "
            f"over the {limits.max_depth}-level limit."
        )
    encoded = "/".join(parts).encode("utf-8", "surrogateescape")
    if len(encoded) > limits.max_path_bytes:
        raise PackageLimitExceeded(
            f"Archive entry {name[:80]!r}... has a {len(encoded)}-byte path, "
            f"over the {limits.max_path_bytes}-byte limit."
        )
    for p in parts:
        if len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise PackageLimitExceeded(
                f"Archive entry {name[:80]!r}... has a name over {MAX_NAME_BYTES} bytes."
            )
    return parts


class _Applier:
    def __init__(
        self,
        tar: tarfile.TarFile,
        root_fd: int,
        budget: Budget,
        mode: Mode,
        owner: int | None,
        read_only: bool,
    ) -> None:
        self.tar, self.root_fd, self.budget = tar, root_fd, budget
        self.mode, self.owner, self.read_only = mode, owner, read_only
        self.dir_modes: dict[tuple[str, ...], int] = {}  # applied at the end (children first)
        self.created: set[tuple[str, ...]] = set()  # this layer's own entries

    # -- member kinds ------------------------------------------------------------------

    def apply(self, m: tarfile.TarInfo) -> None:
        parts = clean_parts(m.name, self.mode, self.budget.limits)
        size = m.size if m.isreg() else 0
        self.budget.charge(m.name, size)
        if not parts:  # the root itself ("./")
            if m.isdir():
                self.dir_modes[()] = m.mode
            return
        if self.mode is Mode.STRICT and not (m.isreg() or m.isdir()):
            raise AppPackageError(f"Archive entry {m.name} is not a file or directory.")
        base = parts[-1]
        if self.mode is Mode.LAYER and base.startswith(WHITEOUT):
            self._whiteout(parts)
            return
        if m.isreg():
            self._file(parts, m)
        elif m.isdir():
            self._dir(parts, m)
        elif m.issym():
            self._symlink(parts, m)
        elif m.islnk():
            self._hardlink(parts, m)
        elif m.ischr() or m.isblk() or m.isfifo():
            return  # never on the host: the sandbox's /dev is its own
        else:
            raise AppPackageError(f"Archive entry {m.name} has an unsupported type {m.type!r}.")
        self.created.add(tuple(parts))

    def _file(self, parts: list[str], m: tarfile.TarInfo) -> None:
        parent = self._parent(parts)
        try:
            self._clear(parent, parts[-1])
            fd = os.open(
                parts[-1],
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=parent,
            )
            try:
                src = self.tar.extractfile(m)
                assert src is not None
                while chunk := src.read(1 << 20):
                    os.write(fd, chunk)  # short writes on regular files: never on Linux
                if self.owner is not None:
                    os.fchown(fd, self.owner, self.owner)
                os.fchmod(fd, self._file_mode(m.mode))
            finally:
                os.close(fd)
        finally:
            os.close(parent)

    def _dir(self, parts: list[str], m: tarfile.TarInfo) -> None:
        parent = self._parent(parts)
        try:
            fd = self._mkdir(parent, parts[-1])
            os.close(fd)
        finally:
            os.close(parent)
        self.dir_modes[tuple(parts)] = m.mode

    def _symlink(self, parts: list[str], m: tarfile.TarInfo) -> None:
        if "\0" in m.linkname or len(m.linkname.encode("utf-8", "surrogateescape")) > 4095:
            raise AppPackageError(f"Archive entry {m.name} has an invalid link target.")
        parent = self._parent(parts)
        try:
            self._clear(parent, parts[-1])
            # The target is stored as is: it is only ever resolved inside the sandbox.
            os.symlink(m.linkname, parts[-1], dir_fd=parent)
            if self.owner is not None:
                os.chown(parts[-1], self.owner, self.owner, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(parent)

    def _hardlink(self, parts: list[str], m: tarfile.TarInfo) -> None:
        target = clean_parts(m.linkname, Mode.LAYER, self.budget.limits)
        if not target:
            raise AppPackageError(f"Archive entry {m.name} links to the root.")
        src_parent = self._parent(target, create=False)
        try:
            st = os.stat(target[-1], dir_fd=src_parent, follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                raise AppPackageError(f"Archive entry {m.name} hard-links to a non-file.")
            parent = self._parent(parts)
            try:
                if (st.st_dev, st.st_ino) == _stat_key(parent, parts[-1]):
                    return  # linking a file onto itself
                self._clear(parent, parts[-1])
                os.link(
                    target[-1],
                    parts[-1],
                    src_dir_fd=src_parent,
                    dst_dir_fd=parent,
                    follow_symlinks=False,
                )
            finally:
                os.close(parent)
        except FileNotFoundError:
            raise AppPackageError(
                f"Archive entry {m.name} hard-links to {m.linkname}, which is not there."
            ) from None
        finally:
            os.close(src_parent)

    def _whiteout(self, parts: list[str]) -> None:
        parent = self._parent(parts)
        try:
            if parts[-1] == OPAQUE:  # hide what lower layers put in this directory
                prefix = tuple(parts[:-1])
                with os.scandir(parent) as it:
                    names = [e.name for e in it]
                for name in names:
                    if (*prefix, name) not in self.created:
                        remove_at(parent, name)
            else:
                remove_at(parent, parts[-1][len(WHITEOUT) :])
        finally:
            os.close(parent)

    def finish(self) -> None:
        """Directory modes last, deepest first, so read-only directories do not stop
        their own extraction (as tar does)."""
        for parts in sorted(self.dir_modes, key=len, reverse=True):
            try:
                fd = self._open_dir(list(parts))
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed or replaced by a later entry
            try:
                if self.owner is not None:
                    os.fchown(fd, self.owner, self.owner)
                os.fchmod(fd, self._dir_mode(self.dir_modes[parts]))
            finally:
                os.close(fd)

    # -- modes -------------------------------------------------------------------------

    def _file_mode(self, mode: int) -> int:
        if self.mode is Mode.STRICT:
            return (0o555 if mode & 0o100 else 0o444) | (0 if self.read_only else 0o200)
        # no setuid/setgid/sticky; nobody but the owner may write; the owner may read
        return (mode & 0o755) | 0o400

    def _dir_mode(self, mode: int) -> int:
        if self.mode is Mode.STRICT:
            return 0o755
        return (mode & 0o755) | 0o700

    # -- paths -------------------------------------------------------------------------

    def _parent(self, parts: list[str], *, create: bool = True) -> int:
        """A descriptor of the member's parent directory, resolved inside the root."""
        return self._open_dir(parts[:-1], create=create)

    def _open_dir(self, parts: list[str], *, create: bool = False) -> int:
        """Walk ``parts`` from the root: missing directories are created (``create``),
        an OCI layer's symlinks are followed *inside the root* (``..`` stops at it)."""
        todo = list(reversed(parts))
        stack = [os.dup(self.root_fd)]
        hops = 0
        try:
            while todo:
                name = todo.pop()
                if name in ("", "."):
                    continue
                if name == "..":
                    if len(stack) > 1:
                        os.close(stack.pop())
                    continue
                if len(stack) > self.budget.limits.max_depth + MAX_SYMLINK_HOPS:
                    raise AppPackageError("The package's links nest too deep.")
                cur = stack[-1]
                try:
                    st = os.stat(name, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise
                    stack.append(self._mkdir(cur, name))
                    continue
                if stat.S_ISLNK(st.st_mode) and self.mode is Mode.LAYER:
                    hops += 1
                    if hops > MAX_SYMLINK_HOPS:
                        raise AppPackageError("The package's symlinks loop.")
                    link = os.readlink(name, dir_fd=cur)
                    if link.startswith("/"):
                        while len(stack) > 1:
                            os.close(stack.pop())
                    todo.extend(reversed(link.split("/")))
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    if not create:
                        raise NotADirectoryError(name)
                    remove_at(cur, name)  # a later layer turns a file into a directory
                    stack.append(self._mkdir(cur, name))
                    continue
                stack.append(open_dir_at(cur, name))
            return stack.pop()
        finally:
            for fd in stack:
                os.close(fd)

    def _mkdir(self, parent: int, name: str) -> int:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=parent)
        try:
            return open_dir_at(parent, name)
        except NotADirectoryError:  # a file or a symlink: a directory replaces it
            remove_at(parent, name)
            os.mkdir(name, 0o700, dir_fd=parent)
            return open_dir_at(parent, name)

    def _clear(self, parent: int, name: str) -> None:
        """Make room for a new entry: what a lower layer (or an earlier member) left."""
        if self.mode is Mode.STRICT:
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                raise AppPackageError(
                    f"Archive entry {name!r} appears twice."
                    if stat.S_ISREG(st.st_mode)
                    else f"Archive entry {name!r} replaces a directory."
                )
            return
        remove_at(parent, name)


def _stat_key(parent: int, name: str) -> tuple[int, int] | None:
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


@contextlib.contextmanager
def package_source(package: bytes | str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, int]]:
    """A package's bytes (in memory or a file) as a readable file, and their size."""
    if isinstance(package, bytes):
        yield io.BytesIO(package), len(package)
        return
    try:
        f = open(package, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AppPackageError(f"The app package cannot be read ({exc.strerror}).") from None
    with f:
        yield f, os.fstat(f.fileno()).st_size


def open_root(path: str | os.PathLike[str]) -> int:
    """A descriptor of a destination directory the caller created."""
    return os.open(path, DIR_FLAGS & ~os.O_NOFOLLOW)


def default_owner() -> int | None:
    """Root hands unpacked files to :data:`PACKAGE_UID`; anyone else keeps them."""
    return PACKAGE_UID if os.geteuid() == 0 else None
