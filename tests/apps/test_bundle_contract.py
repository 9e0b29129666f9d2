from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from comptoir.apps import (
    BundleManifest,
    build_bundle,
    outputs_manifest,
    prepare_app,
    read_bundle_manifest,
    result_archive,
    result_digest,
    unpack_bundle,
)
from comptoir.exceptions import AppPackageError, ChecksumMismatch


def make_src(root: Path, manifest: dict[str, object] | None = None) -> Path:
    root.mkdir(parents=True)
    (root / "comptoir.json").write_text(
        json.dumps(
            manifest
            or {"name": "demo", "command": ["python3", "main.py"], "determinism": "out.txt"}
        )
    )
    (root / "main.py").write_text("print('hi')\n")
    (root / "lib").mkdir()
    (root / "lib" / "tool.sh").write_text("#!/bin/sh\necho tool\n")
    (root / "lib" / "tool.sh").chmod(0o700)
    return root


def test_bundle_is_reproducible(tmp_path: Path) -> None:
    a = build_bundle(make_src(tmp_path / "a"))
    b_src = make_src(tmp_path / "b")
    os.utime(b_src / "main.py", (1, 1))
    assert build_bundle(b_src) == a
    manifest = read_bundle_manifest(a)
    assert manifest == BundleManifest("demo", ("python3", "main.py"), "out.txt")
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        assert tar.getnames() == ["comptoir.json", "lib", "lib/tool.sh", "main.py"]
        assert {m.mtime for m in tar.getmembers()} == {0}
        assert tar.getmember("lib/tool.sh").mode == 0o755


def test_unpack_and_prepare(tmp_path: Path) -> None:
    blob = build_bundle(make_src(tmp_path / "src"))
    dest = tmp_path / "dest"
    assert unpack_bundle(blob, dest).command == ("python3", "main.py")
    assert (dest / "main.py").read_text() == "print('hi')\n"
    assert os.access(dest / "lib" / "tool.sh", os.X_OK)
    assert (dest / "main.py").stat().st_mode & 0o777 == 0o444
    digest = hashlib.sha256(blob).hexdigest()
    app = prepare_app("bundle", blob, tmp_path / "cache", expected_digest="0x" + digest)
    assert app.root == tmp_path / "cache" / digest / "app"
    assert app.argv == ("python3", "main.py") and app.determinism == "out.txt"
    with pytest.raises(ChecksumMismatch):
        prepare_app("bundle", blob, tmp_path / "cache", expected_digest="1" * 64)


@pytest.mark.parametrize(
    "manifest",
    [
        {"command": ["x"]},
        {"name": "x", "command": []},
        {"name": "x", "command": "python3 main.py"},
        {"name": "x", "command": ["x"], "determinism": "../etc/passwd"},
        {"name": "x", "command": ["x"], "determinism": "/abs"},
    ],
)
def test_bad_manifests_are_refused(tmp_path: Path, manifest: dict[str, object]) -> None:
    with pytest.raises(AppPackageError):
        build_bundle(make_src(tmp_path / "s", manifest))


def _evil_bundle(entry: tarfile.TarInfo, data: bytes = b"") -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        good = json.dumps({"name": "x", "command": ["x"]}).encode()
        info = tarfile.TarInfo("comptoir.json")
        info.size = len(good)
        tar.addfile(info, io.BytesIO(good))
        entry.size = len(data)
        tar.addfile(entry, io.BytesIO(data))
    return gzip.compress(raw.getvalue())


@pytest.mark.parametrize(
    "name,kind",
    [
        ("../escape", tarfile.REGTYPE),
        ("/etc/evil", tarfile.REGTYPE),
        ("link", tarfile.SYMTYPE),
        ("dev", tarfile.CHRTYPE),
    ],
)
def test_unsafe_bundles_are_refused(tmp_path: Path, name: str, kind: bytes) -> None:
    entry = tarfile.TarInfo(name)
    entry.type = kind
    entry.linkname = "/etc/shadow"
    with pytest.raises(AppPackageError):
        unpack_bundle(_evil_bundle(entry, b"x" if kind == tarfile.REGTYPE else b""), tmp_path / "d")
    assert not (tmp_path / "escape").exists()
    with pytest.raises(AppPackageError):
        unpack_bundle(b"garbage", tmp_path / "g")


def test_result_digest_definition(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "b").mkdir(parents=True)
    (out / "a.txt").write_bytes(b"alpha")
    (out / "b" / "c.bin").write_bytes(b"\x00\x01")
    (out / "B.txt").write_bytes(b"upper")  # byte order: "B" < "a" < "b/"
    (out / "empty-dir").mkdir()
    (out / "link").symlink_to("/etc/passwd")  # never followed, never hashed
    expected_manifest = (
        f"{hashlib.sha256(b'upper').hexdigest()}  B.txt\n"
        f"{hashlib.sha256(b'alpha').hexdigest()}  a.txt\n"
        f"{hashlib.sha256(bytes([0, 1])).hexdigest()}  b/c.bin\n"
    ).encode()
    assert outputs_manifest(out) == expected_manifest
    assert result_digest(out) == hashlib.sha256(expected_manifest).hexdigest()
    assert result_digest(out, "a.txt") == hashlib.sha256(b"alpha").hexdigest()
    for bad in ("missing", "link", "../out/a.txt", "b"):
        with pytest.raises(AppPackageError):
            result_digest(out, bad)


def test_result_archive_is_reproducible(tmp_path: Path) -> None:
    def outputs(root: Path, mtime: int) -> Path:
        (root / "d").mkdir(parents=True)
        for rel, data in {"x": b"1", "d/y": b"22"}.items():
            (root / rel).write_bytes(data)
            os.utime(root / rel, (mtime, mtime))
        return root

    a = result_archive(outputs(tmp_path / "a", 1000))
    b = result_archive(outputs(tmp_path / "b", 2000))
    assert a == b
    with tarfile.open(fileobj=io.BytesIO(a)) as tar:
        assert tar.getnames() == ["d", "d/y", "x"]
        assert tar.extractfile("d/y").read() == b"22"  # type: ignore[union-attr]
        assert {(m.uid, m.gid, m.mtime, m.uname) for m in tar.getmembers()} == {(0, 0, 0, "")}
