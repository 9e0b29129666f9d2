"""Turn a verified app package (bundle or OCI image) into something the sandbox runs."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from comptoir.apps.bundle import unpack_bundle
from comptoir.apps.contract import APP_DIR
from comptoir.apps.fstree import remove_tree
from comptoir.apps.oci import unpack_oci_image
from comptoir.apps.unpack import UnpackLimits
from comptoir.exceptions import AppPackageError
from comptoir.storage.digest import check_digest, sha256_bytes, sha256_file

_READY = ".comptoir-app.json"


class AppKind(StrEnum):
    BUNDLE = "bundle"
    OCI = "oci"


@dataclass(frozen=True)
class PreparedApp:
    """An unpacked app. ``root`` is the bundle directory (mounted at /comptoir/app) or the
    OCI rootfs (mounted at /). ``env`` is the image's own environment (OCI only)."""

    kind: AppKind
    root: Path
    argv: tuple[str, ...]
    workdir: str = APP_DIR
    env: tuple[tuple[str, str], ...] = ()
    determinism: str | None = None
    digest: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {
                "kind": self.kind.value,
                "argv": list(self.argv),
                "workdir": self.workdir,
                "env": [list(kv) for kv in self.env],
                "determinism": self.determinism,
                "digest": self.digest,
            }
        )

    @classmethod
    def from_json(cls, root: Path, raw: str) -> PreparedApp:
        doc = json.loads(raw)
        return cls(
            kind=AppKind(doc["kind"]),
            root=root,
            argv=tuple(doc["argv"]),
            workdir=doc["workdir"],
            env=tuple((k, v) for k, v in doc["env"]),
            determinism=doc["determinism"],
            digest=doc["digest"],
        )


def prepare_app(
    kind: AppKind | str,
    package: bytes | str | Path,
    cache_dir: str | Path,
    *,
    expected_digest: str | None = None,
    limits: UnpackLimits | None = None,
) -> PreparedApp:
    """Verify ``package`` against ``expected_digest`` (the on-chain checksum), unpack it
    into ``cache_dir/<digest>/`` once, and describe how to run it.

    Unpacking is atomic (temp dir + rename) so a crash never leaves a half-unpacked app
    that a later run would trust; an already unpacked digest is reused as is. A package
    over ``limits`` raises :class:`~comptoir.exceptions.PackageLimitExceeded` and leaves
    nothing on disk.
    """
    kind = AppKind(kind)
    digest = sha256_bytes(package) if isinstance(package, bytes) else sha256_file(package)
    check_digest(digest, expected_digest, "app package")
    cache = Path(cache_dir)
    final = cache / digest
    ready = final / _READY
    if ready.is_file():
        return PreparedApp.from_json(_root(final, kind), ready.read_text())
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=cache, prefix=".unpack-"))
    try:
        os.chmod(tmp, 0o755)
        if kind is AppKind.BUNDLE:
            manifest = unpack_bundle(package, tmp / "app", limits=limits)
            app = PreparedApp(
                kind, final / "app", manifest.command, APP_DIR, (), manifest.determinism, digest
            )
        else:
            config = unpack_oci_image(package, tmp, limits=limits)
            remove_tree(tmp / "layout")  # the rootfs is all the sandbox needs
            if not config.argv:
                raise AppPackageError("The OCI image has neither Entrypoint nor Cmd to run.")
            app = PreparedApp(
                kind,
                final / "rootfs",
                config.argv,
                config.workdir,
                config.env,
                config.determinism,
                digest,
            )
        (tmp / _READY).write_text(app.to_json())
        try:
            os.rename(tmp, final)
        except OSError:  # another preparer won the race: use its copy
            if not ready.is_file():
                raise
        return PreparedApp.from_json(_root(final, kind), ready.read_text())
    finally:
        remove_tree(tmp)


def _root(final: Path, kind: AppKind) -> Path:
    return final / ("app" if kind is AppKind.BUNDLE else "rootfs")
