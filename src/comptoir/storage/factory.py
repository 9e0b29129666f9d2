"""Pick a blob store backend from one configuration string."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from comptoir.exceptions import ConfigError
from comptoir.storage.base import BlobStore


def open_blob_store(spec: str) -> BlobStore:
    """``/path`` or ``file:///path`` (local directory, the default);
    ``s3://bucket/prefix?endpoint_url=http://minio:9000&region=eu-west-1``;
    ``ipfs+http://127.0.0.1:5001?index=/var/lib/comptoir/ipfs.db`` (Kubo RPC API).
    S3 credentials come from boto3's usual sources (environment, profile, instance role).
    """
    url = urlsplit(spec)
    query = {k: v[-1] for k, v in parse_qs(url.query).items()}
    if url.scheme in ("", "file"):
        from comptoir.storage.local import LocalBlobStore

        return LocalBlobStore(Path(url.path if url.scheme else spec))
    if url.scheme == "s3":
        from comptoir.storage.s3 import S3BlobStore

        if not url.netloc:
            raise ConfigError(f"{spec!r} names no bucket; use s3://bucket/prefix.")
        prefix = url.path.lstrip("/")
        return S3BlobStore(
            url.netloc,
            prefix=prefix + "/" if prefix and not prefix.endswith("/") else prefix,
            endpoint_url=query.get("endpoint_url"),
            region_name=query.get("region"),
        )
    if url.scheme in ("ipfs+http", "ipfs+https"):
        from comptoir.storage.ipfs import IpfsBlobStore

        if "index" not in query:
            raise ConfigError(f"{spec!r} needs ?index=/path/to/index.db (sha256 -> CID map).")
        return IpfsBlobStore(
            f"{url.scheme.removeprefix('ipfs+')}://{url.netloc}", index_path=query["index"]
        )
    raise ConfigError(
        f"Unknown storage {spec!r}; use a directory, s3://bucket/prefix or ipfs+http://host:port."
    )
