"""OCI images built without Docker (umoci), unpacked and run under bubblewrap."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from comptoir.apps import (
    AppKind,
    build_oci_image,
    copy_host_binaries,
    prepare_app,
    unpack_oci_image,
)
from comptoir.apps.oci import MOUNT_POINTS
from comptoir.exceptions import AppPackageError, ChecksumMismatch
from comptoir.sandbox import BwrapExecutor, Outcome, SandboxJob, SandboxLimits

SCRIPT = """\
echo "$GREETING task=$COMPTOIR_TASK_INDEX cwd=$(pwd) dataset=$COMPTOIR_DATASET" \\
  > /comptoir/out/greeting
echo 42 > /comptoir/out/answer
for p in /usr/bin/python3 /work /root/.bashrc /etc/shadow; do [ -e "$p" ] && echo "LEAK $p"; done
echo "args=$COMPTOIR_ARGS"
"""


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    rootfs = tmp_path_factory.mktemp("rootfs")
    copy_host_binaries(rootfs, ["/bin/sh"])
    (rootfs / "app").mkdir()
    (rootfs / "app" / "run.sh").write_text(SCRIPT)
    return build_oci_image(
        rootfs,
        entrypoint=["/bin/sh"],
        cmd=["/app/run.sh"],
        env={"GREETING": "bonjour"},
        workdir="/app",
        labels={"org.comptoir.determinism": "answer"},
    )


def test_image_layout_and_config(image: bytes, tmp_path: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(image)) as tar:
        names = tar.getnames()
    assert "oci-layout" in names and "index.json" in names
    config = unpack_oci_image(image, tmp_path / "x")
    assert config.argv == ("/bin/sh", "/app/run.sh")
    assert dict(config.env)["GREETING"] == "bonjour"
    assert config.workdir == "/app" and config.determinism == "answer"
    rootfs = tmp_path / "x" / "rootfs"
    assert (rootfs / "app" / "run.sh").read_text() == SCRIPT
    assert all((rootfs / p).is_dir() and not (rootfs / p).is_symlink() for p in MOUNT_POINTS)


def test_oci_app_runs_in_the_sandbox(image: bytes, tmp_path: Path) -> None:
    digest = hashlib.sha256(image).hexdigest()
    app = prepare_app("oci", image, tmp_path / "cache", expected_digest=digest)
    assert app.kind is AppKind.OCI and app.digest == digest
    assert prepare_app("oci", image, tmp_path / "cache") == app  # cached
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "dataset").write_text("rows")
    job = SandboxJob(
        app=app,
        output_dir=tmp_path / "out",
        input_dir=inputs,
        task_index=5,
        args="a b",
        limits=SandboxLimits(wall_time_s=20),
    )
    r = BwrapExecutor().run_sync(job)
    assert r.outcome is Outcome.SUCCESS, (r.message, r.stderr)
    assert r.stdout == b"args=a b\n"  # and no LEAK line
    greeting = (tmp_path / "out" / "greeting").read_text()
    assert greeting == "bonjour task=5 cwd=/app dataset=/comptoir/in/dataset\n"
    assert r.result_digest == hashlib.sha256(b"42\n").hexdigest()


def test_missing_workdir_is_created(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    copy_host_binaries(rootfs, ["/bin/sh"])
    (rootfs / "etc").mkdir()
    (rootfs / "link").symlink_to("/etc")  # must not lead to the host's /etc
    image = build_oci_image(
        rootfs, entrypoint=["/bin/sh", "-c", "pwd > /comptoir/out/cwd"], workdir="/srv/job"
    )
    app = prepare_app("oci", image, tmp_path / "cache")
    assert (app.root / "srv" / "job").is_dir()
    r = BwrapExecutor().run_sync(SandboxJob(app=app, output_dir=tmp_path / "out"))
    assert r.ok, (r.message, r.stderr)
    assert (tmp_path / "out" / "cwd").read_text() == "/srv/job\n"
    linked = build_oci_image(rootfs, entrypoint=["/bin/sh"], workdir="/link/new")
    before = set(Path("/etc").iterdir())
    prepare_app("oci", linked, tmp_path / "cache2")
    assert set(Path("/etc").iterdir()) == before


def test_wrong_digest_and_corrupted_images(image: bytes, tmp_path: Path) -> None:
    with pytest.raises(ChecksumMismatch):
        prepare_app("oci", image, tmp_path / "c", expected_digest="0" * 64)
    assert not (tmp_path / "c").exists()  # refused before anything was unpacked
    with pytest.raises(AppPackageError):
        unpack_oci_image(b"not a tarball", tmp_path / "bad")
    # Flip a byte inside the manifest blob: the layout no longer matches its digests.
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(image)) as src, tarfile.open(fileobj=out, mode="w") as dst:
        index = json.loads(src.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest_name = "blobs/sha256/" + index["manifests"][0]["digest"].split(":")[1]
        for member in src.getmembers():
            data = src.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            if member.name == manifest_name and data is not None:
                data = data.replace(b"sha256", b"sha257", 1)
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    with pytest.raises(ChecksumMismatch):
        unpack_oci_image(out.getvalue(), tmp_path / "tampered")


def test_the_same_folder_always_builds_the_same_image(tmp_path: Path) -> None:
    """`comptoir app deploy` of an oci.json folder: same sources, same on-chain checksum,
    whenever and however often it is built (file times and image dates are pinned)."""
    import os

    from comptoir.sdk.apps import build_app

    app = tmp_path / "app"
    (app / "rootfs" / "bin").mkdir(parents=True)
    (app / "rootfs" / "bin" / "hello.sh").write_text("echo hello\n")
    (app / "oci.json").write_text(json.dumps({"name": "oci-hello", "entrypoint": ["/bin/sh"]}))
    first = build_app(app, tmp_path / "first.tar")
    os.utime(app / "rootfs" / "bin" / "hello.sh", (1e9, 1e9))  # touched, then rebuilt
    os.utime(app / "rootfs", (2e9, 2e9))
    again = build_app(app, tmp_path / "again.tar")
    assert first.checksum == again.checksum and first.name == "oci-hello"  # not "app"
    assert os.stat(app / "rootfs" / "bin" / "hello.sh").st_mtime == 1e9  # sources untouched
    (app / "rootfs" / "bin" / "hello.sh").write_text("echo changed\n")
    assert build_app(app, tmp_path / "changed.tar").checksum != first.checksum
