"""App packaging for app developers: a sample app, bundles and OCI archives.

An app folder is either a **bundle** (``comptoir.json`` at its root, run with the
worker's runtime) or an **OCI image** source (``oci.json`` with entrypoint/cmd/env/labels
plus a ``rootfs/`` folder, packed with umoci). See docs/app-contract.md.
"""

from __future__ import annotations

import io
import json
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from comptoir.apps import build_bundle, build_oci_image, read_bundle_manifest
from comptoir.apps.contract import safe_extract
from comptoir.apps.oci import OciConfig
from comptoir.chain.client import APP_TYPE_BUNDLE, APP_TYPE_OCI
from comptoir.exceptions import AppPackageError
from comptoir.storage.digest import sha256_bytes

BUNDLE_MANIFEST = "comptoir.json"
OCI_MANIFEST = "oci.json"

# The sample app `comptoir app init` writes: deterministic work derived from the task
# index and the arguments, so every replica of a task agrees on the digest.
SAMPLE_MAIN = '''\
"""Sample Comptoir app: counts the primes below a bound derived from the task index.

Inputs (docs/app-contract.md): COMPTOIR_TASK_INDEX, COMPTOIR_ARGS, COMPTOIR_DATASET.
Outputs: /comptoir/out/result.json (the determinism file) and a human-readable log.
"""

import hashlib
import json
import os
from pathlib import Path
from typing import Any

OUT = Path("/comptoir/out")


def count_primes(limit: int) -> int:
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\\x00\\x00"
    for i in range(2, int(limit**0.5) + 1):
        if sieve[i]:
            sieve[i * i :: i] = bytearray(len(sieve[i * i :: i]))
    return sum(sieve)


def main() -> None:
    index = int(os.environ.get("COMPTOIR_TASK_INDEX", "0"))
    args = os.environ.get("COMPTOIR_ARGS", "")
    words = args.split()
    base = int(words[0]) if words and words[0].isdigit() else 10_000
    limit = base * (index + 1)
    dataset = os.environ.get("COMPTOIR_DATASET") or ""
    data_sha = hashlib.sha256(Path(dataset).read_bytes()).hexdigest() if dataset else None
    result = {"index": index, "args": args, "limit": limit, "primes": count_primes(limit)}
    if data_sha:
        result["dataset_sha256"] = data_sha
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(result, sort_keys=True) + "\\n")
    print(f"task {index}: {result['primes']} primes below {limit}")


if __name__ == "__main__":
    main()
'''


@dataclass(frozen=True)
class BuiltApp:
    path: Path
    checksum: str  # sha256 hex of the archive: what is registered on-chain
    app_type: int  # APP_TYPE_BUNDLE or APP_TYPE_OCI
    name: str
    determinism: str | None

    @property
    def kind(self) -> str:
        return "bundle" if self.app_type == APP_TYPE_BUNDLE else "oci"


def init_app(directory: str | Path, name: str = "primes") -> Path:
    """Write the sample bundle app into `directory` (created; must be empty)."""
    path = Path(directory)
    if path.exists() and any(path.iterdir()):
        raise AppPackageError(f"{path} is not empty; pick a new folder for the app.")
    path.mkdir(parents=True, exist_ok=True)
    (path / "main.py").write_text(SAMPLE_MAIN)
    manifest = {"name": name, "command": ["python3", "main.py"], "determinism": "result.json"}
    (path / BUNDLE_MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def build_app(directory: str | Path, output: str | Path | None = None) -> BuiltApp:
    """Pack an app folder reproducibly (same sources, same checksum); returns the archive."""
    src = Path(directory)
    if not src.is_dir():
        raise AppPackageError(f"{src} is not a folder; create one with 'comptoir app init'.")
    if (src / BUNDLE_MANIFEST).is_file():
        data = build_bundle(src)
        manifest = read_bundle_manifest(data)
        name, app_type, det, suffix = manifest.name, APP_TYPE_BUNDLE, manifest.determinism, ".tgz"
    elif (src / OCI_MANIFEST).is_file():
        try:
            spec = json.loads((src / OCI_MANIFEST).read_text())
        except ValueError as exc:
            raise AppPackageError(f"{src / OCI_MANIFEST} is not valid JSON ({exc}).") from None
        if not (src / "rootfs").is_dir():
            raise AppPackageError(
                f"{src} has {OCI_MANIFEST} but no rootfs/ folder; put the image's root "
                "filesystem there (docs/app-contract.md shows ways to make one without Docker)."
            )
        data = build_oci_image(
            src / "rootfs",
            entrypoint=spec.get("entrypoint", ()),
            cmd=spec.get("cmd", ()),
            env=spec.get("env"),
            workdir=spec.get("workdir"),
            labels=spec.get("labels"),
        )
        name, app_type, suffix = str(spec.get("name") or src.name), APP_TYPE_OCI, ".oci.tar"
        det = oci_determinism(data)
    else:
        raise AppPackageError(
            f"{src} has neither {BUNDLE_MANIFEST} (bundle) nor {OCI_MANIFEST} (OCI image); "
            "start from 'comptoir app init'."
        )
    out = Path(output) if output else src.parent / f"{src.name}{suffix}"
    out.write_bytes(data)
    return BuiltApp(out, sha256_bytes(data), app_type, name, det)


def read_app(archive: str | Path) -> BuiltApp:
    """Describe an already built archive (bundle .tgz or OCI .tar)."""
    path = Path(archive)
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        manifest = read_bundle_manifest(data)
        return BuiltApp(
            path, sha256_bytes(data), APP_TYPE_BUNDLE, manifest.name, manifest.determinism
        )
    return BuiltApp(path, sha256_bytes(data), APP_TYPE_OCI, path.stem, oci_determinism(data))


def app_determinism(package: bytes, app_type: int) -> str | None:
    """The determinism file an app package declares (None: the outputs manifest)."""
    if app_type == APP_TYPE_BUNDLE:
        return read_bundle_manifest(package).determinism
    return oci_determinism(package)


def oci_determinism(image: bytes) -> str | None:
    """The ``org.comptoir.determinism`` label of an OCI image-layout tarball."""
    with tempfile.TemporaryDirectory(prefix="comptoir-oci-read-") as tmp:
        root = Path(tmp)
        with tarfile.open(fileobj=io.BytesIO(image)) as tar:
            safe_extract(tar, root)
        try:
            index = json.loads((root / "index.json").read_text())
            manifest = _blob_json(root, index["manifests"][0]["digest"])
            if "manifests" in manifest:  # nested index: first entry
                manifest = _blob_json(root, manifest["manifests"][0]["digest"])
            config = _blob_json(root, manifest["config"]["digest"])
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise AppPackageError(f"The OCI image is malformed ({exc!r}).") from None
        return OciConfig.from_image_config(config).determinism


def _blob_json(root: Path, digest: str) -> dict[str, Any]:
    algo, _, hexdigest = str(digest).partition(":")
    if (
        algo != "sha256"
        or len(hexdigest) != 64
        or not all(c in "0123456789abcdef" for c in hexdigest)
    ):
        raise ValueError(f"bad digest {digest!r}")
    doc = json.loads((root / "blobs" / "sha256" / hexdigest).read_text())
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    return doc
