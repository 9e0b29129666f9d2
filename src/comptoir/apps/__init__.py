"""App packaging (bundles and OCI images) and the app/worker contract."""

from comptoir.apps.bundle import BundleManifest, build_bundle, read_bundle_manifest, unpack_bundle
from comptoir.apps.contract import outputs_manifest, result_archive, result_digest
from comptoir.apps.oci import OciConfig, build_oci_image, copy_host_binaries, unpack_oci_image
from comptoir.apps.prepare import AppKind, PreparedApp, prepare_app

__all__ = [
    "AppKind",
    "BundleManifest",
    "OciConfig",
    "PreparedApp",
    "build_bundle",
    "build_oci_image",
    "copy_host_binaries",
    "outputs_manifest",
    "prepare_app",
    "read_bundle_manifest",
    "result_archive",
    "result_digest",
    "unpack_bundle",
    "unpack_oci_image",
]
