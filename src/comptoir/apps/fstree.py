"""Iterative, bounded, link-proof operations on trees an app or a package controls.

Every directory is opened relative to its parent's descriptor with ``O_NOFOLLOW``, so a
symlink (or one swapped in mid-walk) is never followed and path length never matters to
the host: a tree too deep for ``PATH_MAX`` is still walked, bounded and removed. Nothing
recurses on the Python stack.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO never blocks


def open_dir_at(parent_fd: int, name: str) -> int:
    """Open the real directory ``name`` under ``parent_fd`` (never a link). A directory
    its owner made unreadable (e.g. mode 000) is given back u+rwx first: only the
    worker's own user can reach it, so this hands nothing to anyone else."""
    try:
        return os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            if not stat.S_ISDIR(os.fstat(path_fd).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, name) from None
            os.chmod(f"/proc/self/fd/{path_fd}", 0o700)
            return os.open(f"/proc/self/fd/{path_fd}", DIR_FLAGS & ~os.O_NOFOLLOW)
        finally:
            os.close(path_fd)


def open_file_at(parent_fd: int, name: str) -> int:
    """Open the regular file ``name`` under ``parent_fd`` for reading, never through a link
    (an unreadable file of the worker's own user gets u+r first, as in open_dir_at)."""
    try:
        fd = os.open(name, FILE_FLAGS, dir_fd=parent_fd)
    except PermissionError:
        path_fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent_fd)
        try:
            if not stat.S_ISREG(os.fstat(path_fd).st_mode):
                raise
            os.chmod(f"/proc/self/fd/{path_fd}", 0o600)
            fd = os.open(f"/proc/self/fd/{path_fd}", FILE_FLAGS & ~os.O_NOFOLLOW)
        finally:
            os.close(path_fd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"{name} is not a regular file")
    return fd


def open_path(root: str | Path, rel: str) -> int:
    """Open regular file ``root/rel`` with every component of ``rel`` opened without
    following links (``root`` itself is the caller's, trusted)."""
    parts = [p for p in rel.split("/") if p]
    fd = os.open(root, DIR_FLAGS & ~os.O_NOFOLLOW)
    try:
        for name in parts[:-1]:
            nxt = open_dir_at(fd, name)
            os.close(fd)
            fd = nxt
        return open_file_at(fd, parts[-1])
    finally:
        os.close(fd)


@dataclass(frozen=True)
class TreeLimits:
    """Bounds of a walk. ``max_entries`` counts files, directories and everything else."""

    max_entries: int
    max_depth: int
    max_path_bytes: int
    max_bytes: int  # total apparent size of regular files (what an archive would carry)


@dataclass(frozen=True)
class FileEntry:
    rel: str  # posix path relative to the root (surrogate-escaped when not UTF-8)
    size: int  # apparent size (st_size), sparse or not
    executable: bool


@dataclass
class TreeScan:
    files: list[FileEntry]
    entries: int = 0
    bytes: int = 0
    over: str | None = None  # why the tree is over its limits, or None


def scan_tree(root: str | Path, limits: TreeLimits) -> TreeScan:
    """Every regular file under ``root``, or the first limit the tree breaks. Links,
    devices, FIFOs and sockets are counted as entries but never opened or followed.
    Depth-first, one open descriptor per level of the current branch only."""
    scan = TreeScan(files=[])
    try:
        root_fd = os.open(root, DIR_FLAGS & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return scan
    # frames: (fd, rel, depth, subdirectories still to visit)
    stack: list[tuple[int, str, int, list[str]]] = []
    try:
        stack.append((root_fd, "", 0, _scan_dir(root_fd, "", 0, limits, scan)))
        while stack and scan.over is None:
            fd, rel, depth, subdirs = stack[-1]
            if not subdirs:
                os.close(stack.pop()[0])
                continue
            name = subdirs.pop()
            child = f"{rel}/{name}" if rel else name
            sub_fd = open_dir_at(fd, name)
            stack.append((sub_fd, child, depth + 1, []))
            stack[-1][3].extend(_scan_dir(sub_fd, child, depth + 1, limits, scan))
    finally:
        for fd, _, _, _ in stack:
            os.close(fd)
    scan.files.sort(key=lambda f: f.rel.encode("utf-8", "surrogateescape"))
    return scan


def _scan_dir(fd: int, rel: str, depth: int, limits: TreeLimits, scan: TreeScan) -> list[str]:
    """Count one directory's entries into ``scan``; return its subdirectories."""
    subdirs: list[str] = []
    with os.scandir(fd) as it:
        for entry in it:
            scan.entries += 1
            if scan.entries > limits.max_entries:
                scan.over = f"more than {limits.max_entries} files and directories"
                return []
            child = f"{rel}/{entry.name}" if rel else entry.name
            if len(child.encode("utf-8", "surrogateescape")) > limits.max_path_bytes:
                scan.over = f"a path longer than {limits.max_path_bytes} bytes"
                return []
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                if depth + 1 >= limits.max_depth:
                    scan.over = f"directories nested deeper than {limits.max_depth} levels"
                    return []
                subdirs.append(entry.name)
            elif stat.S_ISREG(st.st_mode):
                scan.bytes += st.st_size
                if scan.bytes > limits.max_bytes:
                    scan.over = f"more than {limits.max_bytes} bytes"
                    return []
                scan.files.append(FileEntry(child, st.st_size, bool(st.st_mode & 0o100)))
    return subdirs


def remove_tree(path: str | Path) -> None:
    """Delete ``path`` and everything under it, however deep, never following a link and
    giving back write permission to directories an app or a package made read-only."""
    parent, name = os.path.split(os.path.abspath(path))
    try:
        parent_fd = os.open(parent, DIR_FLAGS & ~os.O_NOFOLLOW)
    except FileNotFoundError:
        return
    try:
        remove_at(parent_fd, name)
    finally:
        os.close(parent_fd)


MAX_OPEN_LEVELS = 32  # deeper directories are moved up rather than held open


def remove_at(parent_fd: int, name: str) -> None:
    """Delete ``name`` under ``parent_fd``: a file or link at once, a directory
    iteratively. A branch deeper than :data:`MAX_OPEN_LEVELS` is cut by renaming its
    deep part into the top directory, so descriptors stay few whatever the depth."""
    try:
        os.unlink(name, dir_fd=parent_fd)
        return
    except FileNotFoundError:
        return
    except IsADirectoryError:
        pass
    except PermissionError:  # EPERM for a directory on Linux
        if not _is_dir_at(parent_fd, name):
            raise
    try:
        top = open_dir_at(parent_fd, name)
    except FileNotFoundError:
        return
    # frames: (parent fd, name, fd, subdirectories still to delete)
    stack: list[tuple[int, str, int, list[str]]] = [(parent_fd, name, top, _clear_files(top))]
    moved = 0
    try:
        while stack:
            pfd, dname, dfd, subdirs = stack[-1]
            if not subdirs:
                stack.pop()
                os.close(dfd)
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(dname, dir_fd=pfd)
                continue
            sub = subdirs.pop()
            if len(stack) >= MAX_OPEN_LEVELS:
                while _exists_at(top, flat := f".comptoir-cut-{moved}"):
                    moved += 1
                os.rename(sub, flat, src_dir_fd=dfd, dst_dir_fd=top)
                stack[0][3].append(flat)
                continue
            try:
                fd = open_dir_at(dfd, sub)
            except FileNotFoundError:
                continue
            stack.append((dfd, sub, fd, _clear_files(fd)))
    finally:
        for _, _, dfd, _ in stack:
            os.close(dfd)


def _exists_at(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _clear_files(dfd: int) -> list[str]:
    """Unlink every non-directory in ``dfd``; return its subdirectories."""
    with contextlib.suppress(PermissionError):
        if os.fstat(dfd).st_mode & 0o700 != 0o700:
            os.chmod(f"/proc/self/fd/{dfd}", 0o700)
    subdirs = []
    with os.scandir(dfd) as it:
        for entry in it:
            if entry.is_dir(follow_symlinks=False):
                subdirs.append(entry.name)
                continue
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.name, dir_fd=dfd)
    return subdirs


def _is_dir_at(parent_fd: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=parent_fd, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False
