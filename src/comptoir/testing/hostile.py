"""Hostile app packages, built byte by byte, and checks of the host they must not touch.

Used by the apps, sandbox and end-to-end suites: tarballs with setuid-root members,
file capabilities in PAX headers, device nodes, FIFOs, world-writable directories,
sparse members declaring far more than they store, gzip bombs, deep and long paths; OCI
image layouts around such layers.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import pwd
import shutil
import stat
import subprocess
import tarfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import psutil

Member = tuple[tarfile.TarInfo, bytes | None]

# -- apps (python3 bundle sources) that attack the worker through their outputs --------

SPARSE = """
with open("/comptoir/out/sparse", "wb") as f:
    f.truncate(1 << 30)  # 1 GiB apparent, nothing stored
"""
DEEP = """
import os
fd = os.open("/comptoir/out", os.O_RDONLY)
for _ in range(900):  # under the entry limit: depth is what breaks
    os.mkdir("d", dir_fd=fd)
    nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nxt
open(f"/proc/self/fd/{fd}/leaf", "w").write("x")
"""
LONG_PATH = """
import os
os.chdir("/comptoir/out")
for _ in range(12):
    os.mkdir("n" * 200)
    os.chdir("n" * 200)
open("leaf", "w").write("x")
"""
FLOOD = """
import os
for i in range(5000):
    try:
        os.mkdir(f"/comptoir/out/{i}")
    except OSError:
        break
"""
# COMPTOIR_ARGS = "<host file>:<host dir>". Leaves a daemon swapping an output directory
# for symlinks to host paths while the worker would be copying; also leaves links to host
# files in place.
RACE = """
import os, sys, time
secret_file, secret_dir = os.environ["COMPTOIR_ARGS"].split(":")
os.makedirs("/comptoir/out/d")
open("/comptoir/out/d/f", "w").write("mine")
os.symlink(secret_file, "/comptoir/out/leak")
os.symlink(secret_dir, "/comptoir/out/dirleak")
os.symlink("/etc/passwd", "/comptoir/out/passwd")
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        sys.argv[0] = "comptoir-test-swapper"
        while True:
            try:
                os.rename("/comptoir/out/d", "/comptoir/out/real")
                os.symlink(secret_dir, "/comptoir/out/d")
                os.unlink("/comptoir/out/d")
                os.rename("/comptoir/out/real", "/comptoir/out/d")
            except OSError:
                pass
    os._exit(0)
time.sleep(0.05)
"""

CAPABILITY = "SCHILY.xattr.security.capability"  # how tar carries file capabilities


def entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    *,
    data: bytes = b"",
    mode: int = 0o644,
    uid: int = 0,
    linkname: str = "",
    pax: dict[str, str] | None = None,
) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.uid, info.gid = kind, mode, uid, uid
    info.uname = info.gname = "root" if uid == 0 else ""
    info.linkname = linkname
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    if pax:
        info.pax_headers = dict(pax)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def sparse_entry(name: str, apparent: int, data: bytes = b"hole") -> Member:
    """A GNU sparse member (PAX 0.1): ``data`` stored at offset 0, ``apparent`` declared."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.pax_headers = {
        "GNU.sparse.map": f"0,{len(data)}",
        "GNU.sparse.size": str(apparent),
        "GNU.sparse.name": name,
    }
    return info, data


def tar_bytes(members: Iterable[Member], *, gz: bool = False) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), mtime=0) if gz else raw.getvalue()


def gzip_bomb(name: str, apparent: int, *, prefix: Sequence[Member] = ()) -> bytes:
    """A gzip tar with ``prefix`` then one file of ``apparent`` zero bytes, streamed (it
    never sits in memory: a 256 MiB member compresses to about 250 KiB)."""
    out = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=out, mode="wb", compresslevel=9, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
    ):
        for info, data in prefix:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
        info = tarfile.TarInfo(name)
        info.size = apparent
        tar.addfile(info, _Zeros(apparent))
    return out.getvalue()


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.left if n is None or n < 0 else min(n, self.left)
        self.left -= n
        return bytes(n)


def bundle(command: Sequence[str], members: Iterable[Member] = ()) -> bytes:
    manifest = json.dumps({"name": "hostile", "command": list(command)}).encode()
    return tar_bytes([entry("comptoir.json", data=manifest), *members], gz=True)


def dir_members(root: str | Path) -> list[Member]:
    """Members for the files and directories under ``root`` (owned by root, as images are)."""
    base = Path(root)
    out: list[Member] = []
    for path in sorted(base.rglob("*")):
        rel = path.relative_to(base).as_posix()
        st = path.lstat()
        if stat.S_ISDIR(st.st_mode):
            out.append(entry(rel, tarfile.DIRTYPE, mode=0o755))
        elif stat.S_ISREG(st.st_mode):
            out.append(entry(rel, data=path.read_bytes(), mode=st.st_mode & 0o7777))
        elif stat.S_ISLNK(st.st_mode):
            out.append(entry(rel, tarfile.SYMTYPE, linkname=os.readlink(path)))
    return out


def shell_layer(workdir: str | Path) -> bytes:
    """A gzip layer holding the host's /bin/sh and its libraries, owned by root."""
    from comptoir.apps.oci import copy_host_binaries

    rootfs = Path(workdir) / "shell-rootfs"
    copy_host_binaries(rootfs, ["/bin/sh"])
    return tar_bytes(dir_members(rootfs), gz=True)


def oci_image(
    layers: Sequence[bytes],
    *,
    entrypoint: Sequence[str],
    labels: dict[str, str] | None = None,
) -> bytes:
    """An OCI image-layout tarball around ``layers`` (each a tar, gzip or not)."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> dict[str, object]:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": f"sha256:{digest}", "size": len(data)}

    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(entrypoint), "Labels": labels or {}},
        "rootfs": {"type": "layers", "diff_ids": [_diff_id(layer) for layer in layers]},
    }
    layer_descs = [
        {**add(layer), "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}
        for layer in layers
    ]
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            **add(json.dumps(config).encode()),
            "mediaType": "application/vnd.oci.image.config.v1+json",
        },
        "layers": layer_descs,
    }
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                **add(json.dumps(manifest).encode()),
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
            }
        ],
    }
    members = [
        entry("oci-layout", data=b'{"imageLayoutVersion": "1.0.0"}'),
        entry("index.json", data=json.dumps(index).encode()),
        entry("blobs", tarfile.DIRTYPE, mode=0o755),
        entry("blobs/sha256", tarfile.DIRTYPE, mode=0o755),
    ]
    members += [entry(f"blobs/sha256/{d}", data=b) for d, b in sorted(blobs.items())]
    return tar_bytes(members)


def _diff_id(layer: bytes) -> str:
    raw = gzip.decompress(layer) if layer[:2] == b"\x1f\x8b" else layer
    return f"sha256:{hashlib.sha256(raw).hexdigest()}"


def privileged_members(payload: bytes) -> list[Member]:
    """Everything a layer may declare that must never reach a worker's disk as is."""
    cap = {CAPABILITY: "\x01\x00\x00\x02\xff\xff\xff\xff", "SCHILY.xattr.user.note": "x"}
    return [
        entry("priv", tarfile.DIRTYPE, mode=0o755),
        entry("priv/suid-root", data=payload, mode=0o4755),
        entry("priv/sgid", data=payload, mode=0o2755),
        entry("priv/sticky-file", data=b"s", mode=0o1777),
        entry("priv/cap-file", data=payload, mode=0o755, pax=cap),
        entry("priv/hardlink-to-suid", tarfile.LNKTYPE, linkname="priv/suid-root"),
        entry("priv/null", tarfile.CHRTYPE, mode=0o666),
        entry("priv/disk", tarfile.BLKTYPE, mode=0o660),
        entry("priv/fifo", tarfile.FIFOTYPE, mode=0o666),
        entry("priv/world", tarfile.DIRTYPE, mode=0o777),
        entry("priv/tmp", tarfile.DIRTYPE, mode=0o1777),
        entry("priv/world-file", data=b"w", mode=0o666),
        entry("priv/shadow-link", tarfile.SYMTYPE, linkname="/etc/shadow"),
        entry("priv/up-link", tarfile.SYMTYPE, linkname="../../../../etc"),
    ]


def privileged_files(root: str | Path, *, forbid_root_owner: bool) -> list[str]:
    """What under ``root`` a hostile package could use against the host: setuid, setgid
    or sticky files, group/world-writable entries, devices, FIFOs, sockets, extended
    attributes, and (``forbid_root_owner``) entries owned by root."""
    bad: list[str] = []
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            mode = st.st_mode
            why = []
            if stat.S_ISLNK(mode):
                if forbid_root_owner and st.st_uid == 0:
                    why.append("root-owned link")
            else:
                if mode & (stat.S_ISUID | stat.S_ISGID):
                    why.append("setuid/setgid")
                if stat.S_ISREG(mode) and mode & stat.S_ISVTX:
                    why.append("sticky file")
                if mode & 0o022:
                    why.append("group/world-writable")
                if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    why.append("device, FIFO or socket")
                if forbid_root_owner and (st.st_uid == 0 or st.st_gid == 0):
                    why.append("owned by root")
                xattrs = os.listxattr(path, follow_symlinks=False)
                if xattrs:
                    why.append(f"xattrs {xattrs}")
            if why:
                bad.append(f"{path}: {', '.join(why)}")
    return bad


@contextlib.contextmanager
def unprivileged_user(name: str) -> Iterator[pwd.struct_passwd]:
    """An ordinary system account for a test, made if missing and then removed (with
    whatever it still runs); skips the test where accounts cannot be made."""
    import pytest

    if os.geteuid() != 0 or not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("making a test user needs root, useradd and setpriv (the suite runs as root)")
    made = False
    try:
        user = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        made = True
        user = pwd.getpwnam(name)
    try:
        yield user
    finally:
        if made:
            for p in psutil.process_iter(["uids"]):
                if p.info["uids"] and p.info["uids"].real == user.pw_uid:
                    p.kill()
            subprocess.run(["userdel", name], check=False, capture_output=True)


def as_user(user: pwd.struct_passwd, *argv: str) -> list[str]:
    """``argv`` run as ``user`` (no supplementary groups, no capabilities)."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]


def tree_bytes(root: str | Path) -> int:
    """Disk blocks (in bytes) used under ``root``."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
    return total
