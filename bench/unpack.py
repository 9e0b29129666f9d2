"""What bounded unpacking and output scanning cost: prints figures, asserts nothing.

    .venv/bin/python bench/unpack.py

* a 3-layer OCI image (host /bin/sh + 2 000 small files + a 64 MiB file) unpacked by the
  worker's extractor (``prepare_app``), and by ``umoci raw unpack`` for comparison;
* a gzip bomb (256 MiB declared, ~250 KiB shipped): time to refusal and bytes written;
* scanning a 5 000-entry output tree (what the worker does before copying outputs).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from comptoir.apps import prepare_app
from comptoir.apps.fstree import TreeLimits, scan_tree
from comptoir.exceptions import PackageLimitExceeded
from comptoir.testing.hostile import (
    entry,
    gzip_bomb,
    oci_image,
    shell_layer,
    tar_bytes,
    tree_bytes,
)


def _timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="comptoir-bench-unpack-"))
    try:
        small = tar_bytes(
            [entry(f"files/{i // 100}/{i}", data=os.urandom(512)) for i in range(2000)], gz=True
        )
        big = tar_bytes([entry("data/big", data=os.urandom(64 << 20))], gz=True)
        image = oci_image([shell_layer(work), small, big], entrypoint=["/bin/sh"])
        seconds, _ = _timed(lambda: prepare_app("oci", image, work / "cache"))
        print(f"comptoir extractor: {len(image) >> 20} MiB image, 3 layers: {seconds:.2f} s")

        layout = work / "layout"
        layout.mkdir()
        with tarfile.open(fileobj=io.BytesIO(image)) as tar:
            tar.extractall(layout, filter="data")
        index = json.loads((layout / "index.json").read_text())
        index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": "b"}
        (layout / "index.json").write_text(json.dumps(index))
        if shutil.which("umoci"):
            # umoci needs the diff_ids our test images leave empty: time it on what it reads
            cmd = ["umoci", "raw", "unpack", "--image", f"{layout}:b", str(work / "umoci")]
            seconds, proc = _timed(lambda: subprocess.run(cmd, capture_output=True, check=False))
            status = "ok" if proc.returncode == 0 else "refused (empty diff_ids)"
            print(f"umoci raw unpack, same image: {seconds:.2f} s ({status})")

        bomb = gzip_bomb("big", 256 << 20, prefix=[entry("comptoir.json")])

        def refuse() -> None:
            try:
                prepare_app("bundle", bomb, work / "bomb")
            except PackageLimitExceeded:
                return
            raise AssertionError("the bomb was not refused")

        seconds, _ = _timed(refuse)
        print(
            f"gzip bomb ({len(bomb) >> 10} KiB shipped, 256 MiB declared): refused in "
            f"{seconds:.2f} s, {tree_bytes(work / 'bomb')} bytes left on disk"
        )

        out = work / "out"
        for i in range(5000):
            d = out / str(i // 50)
            d.mkdir(parents=True, exist_ok=True)
            (d / str(i)).write_bytes(b"x" * 100)
        limits = TreeLimits(
            max_entries=10_000, max_depth=64, max_path_bytes=1024, max_bytes=1 << 30
        )
        seconds, scan = _timed(lambda: scan_tree(out, limits))
        ms = seconds * 1000
        print(f"output scan: {scan.entries} entries, {len(scan.files)} files: {ms:.1f} ms")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
