"""Hostile packages, built here byte by byte: nothing privileged reaches the host, every
limit refuses before the disk fills, nothing is left behind, and the image still runs."""

from __future__ import annotations

import os
import shutil
import tarfile
from pathlib import Path

import pytest

from comptoir.apps import prepare_app
from comptoir.apps.unpack import PACKAGE_UID, UnpackLimits
from comptoir.exceptions import AppPackageError, PackageLimitExceeded
from comptoir.sandbox import BwrapExecutor, Outcome, SandboxJob, SandboxLimits
from comptoir.testing import hostile
from comptoir.testing.hostile import (
    bundle,
    entry,
    gzip_bomb,
    oci_image,
    privileged_files,
    privileged_members,
    sparse_entry,
    tar_bytes,
    tree_bytes,
)

ROOT = os.geteuid() == 0
SH = shutil.which("sh") or "/bin/sh"


@pytest.fixture(scope="module")
def shell_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return hostile.shell_layer(tmp_path_factory.mktemp("shell"))


def _leftovers(cache: Path) -> list[str]:
    return [p.name for p in cache.iterdir()] if cache.exists() else []


def test_privileged_layer_lands_unprivileged_and_the_image_still_runs(
    shell_layer: bytes, tmp_path: Path
) -> None:
    payload = b"#!/bin/sh\necho ran-as-meant > /comptoir/out/r\n"
    layer = tar_bytes(privileged_members(payload), gz=True)
    image = oci_image([shell_layer, layer], entrypoint=["/bin/sh", "/priv/suid-root"])
    app = prepare_app("oci", image, tmp_path / "cache")
    root = app.root
    assert privileged_files(root, forbid_root_owner=ROOT) == []
    assert not (root / "priv" / "null").exists() and not (root / "priv" / "fifo").exists()
    # links stay links, verbatim, resolved only inside the sandbox
    assert os.readlink(root / "priv" / "shadow-link") == "/etc/shadow"
    assert (root / "priv" / "hardlink-to-suid").stat().st_ino == (
        root / "priv" / "suid-root"
    ).stat().st_ino
    if ROOT:
        assert (root / "priv" / "suid-root").stat().st_uid == PACKAGE_UID
    assert (root / "priv" / "suid-root").stat().st_mode & 0o7777 == 0o755
    r = BwrapExecutor().run_sync(
        SandboxJob(app=app, output_dir=tmp_path / "out", limits=SandboxLimits(wall_time_s=20))
    )
    assert r.outcome is Outcome.SUCCESS, (r.message, r.stderr)
    assert (tmp_path / "out" / "r").read_text() == "ran-as-meant\n"


def test_layer_links_cannot_write_outside_the_rootfs(shell_layer: bytes, tmp_path: Path) -> None:
    host_etc = set(os.listdir("/etc"))
    layer = tar_bytes(
        [
            entry("evil", tarfile.SYMTYPE, linkname="/etc"),
            entry("evil/comptoir-planted", data=b"x"),  # lands in the image's /etc
            entry("up", tarfile.SYMTYPE, linkname="../../../../../tmp"),
            entry("up/comptoir-planted", data=b"y"),  # ".." stops at the image's root
        ],
        gz=True,
    )
    app = prepare_app("oci", oci_image([shell_layer, layer], entrypoint=[SH]), tmp_path / "c")
    assert set(os.listdir("/etc")) == host_etc
    assert not Path("/tmp/comptoir-planted").exists()
    assert (app.root / "etc" / "comptoir-planted").read_bytes() == b"x"
    assert (app.root / "tmp" / "comptoir-planted").read_bytes() == b"y"
    escape = tar_bytes([entry("h", tarfile.LNKTYPE, linkname="../../etc/passwd")], gz=True)
    with pytest.raises(AppPackageError):
        prepare_app("oci", oci_image([escape], entrypoint=[SH]), tmp_path / "c2")
    assert _leftovers(tmp_path / "c2") == []


def test_whiteouts_apply_to_lower_layers(shell_layer: bytes, tmp_path: Path) -> None:
    lower = tar_bytes(
        [entry("a/old", data=b"1"), entry("a/keep-not", data=b"2"), entry("gone", data=b"3")],
        gz=True,
    )
    upper = tar_bytes(
        [entry("a/new", data=b"4"), entry("a/.wh..wh..opq"), entry(".wh.gone")], gz=True
    )
    app = prepare_app("oci", oci_image([shell_layer, lower, upper], entrypoint=[SH]), tmp_path)
    assert sorted(os.listdir(app.root / "a")) == ["new"]
    assert not (app.root / "gone").exists()


@pytest.mark.parametrize(
    "name,package,kind",
    [
        ("sparse bundle", bundle(["true"], [sparse_entry("big", 512 << 20)]), "bundle"),
        ("gzip bundle", gzip_bomb("big", 256 << 20, prefix=[entry("comptoir.json")]), "bundle"),
        ("sparse layer", "layer-sparse", "oci"),
        ("gzip layer", "layer-gzip", "oci"),
    ],
)
def test_decompression_bombs_are_refused_before_the_disk_fills(
    name: str, package: bytes | str, kind: str, tmp_path: Path
) -> None:
    if package == "layer-sparse":
        package = oci_image([tar_bytes([sparse_entry("big", 512 << 20)], gz=True)], entrypoint=[SH])
    elif package == "layer-gzip":
        package = oci_image([gzip_bomb("big", 256 << 20)], entrypoint=[SH])
    assert isinstance(package, bytes) and len(package) < 2 << 20  # a small download
    cache = tmp_path / "cache"
    with pytest.raises(PackageLimitExceeded, match="decompression bomb"):
        prepare_app(kind, package, cache)
    assert _leftovers(cache) == []  # nothing kept, not even a partial unpack
    assert tree_bytes(tmp_path) < 1 << 20


def test_the_same_packages_fit_when_the_limits_allow_them(tmp_path: Path) -> None:
    """The bomb test above refuses because of the limits, not because it cannot unpack."""
    roomy = UnpackLimits(max_ratio=10_000_000)
    package = bundle(["true"], [sparse_entry("big", 64 << 20)])
    app = prepare_app("bundle", package, tmp_path / "cache", limits=roomy)
    assert (app.root / "big").stat().st_size == 64 << 20


def test_entries_depth_and_path_limits(tmp_path: Path) -> None:
    limits = UnpackLimits(max_entries=50)
    many = bundle(["true"], [entry(f"f{i}", data=b"x") for i in range(60)])
    with pytest.raises(PackageLimitExceeded, match="entries"):
        prepare_app("bundle", many, tmp_path / "c1", limits=limits)
    deep = bundle(["true"], [entry("/".join(["d"] * 100) + "/f", data=b"x")])
    with pytest.raises(PackageLimitExceeded, match="levels deep"):
        prepare_app("bundle", deep, tmp_path / "c2")
    long_path = bundle(["true"], [entry("/".join(["n" * 200] * 6), data=b"x")])
    with pytest.raises(PackageLimitExceeded, match="byte path"):
        prepare_app("bundle", long_path, tmp_path / "c3")
    long_name = bundle(["true"], [entry("n" * 300, data=b"x")])
    with pytest.raises(PackageLimitExceeded, match="name over"):
        prepare_app("bundle", long_name, tmp_path / "c4")
    for c in ("c1", "c2", "c3", "c4"):
        assert _leftovers(tmp_path / c) == []
    ok = bundle(["true"], [entry("/".join(["d"] * 40) + "/f", data=b"x")])
    assert prepare_app("bundle", ok, tmp_path / "c5").root.is_dir()


def test_bundles_still_refuse_links_devices_and_setuid(tmp_path: Path) -> None:
    for member in (
        entry("dev", tarfile.CHRTYPE),
        entry("link", tarfile.SYMTYPE, linkname="/etc/shadow"),
        entry("hard", tarfile.LNKTYPE, linkname="comptoir.json"),
    ):
        with pytest.raises(AppPackageError):
            prepare_app("bundle", bundle(["true"], [member]), tmp_path / "c")
    app = prepare_app("bundle", bundle(["true"], [entry("s", data=b"x", mode=0o6777)]), tmp_path)
    assert privileged_files(app.root, forbid_root_owner=ROOT) == []
    assert (app.root / "s").stat().st_mode & 0o7777 == 0o555
