"""S3 (or any S3-compatible service: MinIO, Ceph RGW, R2…) blob store via boto3."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

from comptoir.exceptions import BlobNotFound, ConfigError, StorageError
from comptoir.storage.base import BlobStore
from comptoir.storage.digest import CHUNK, check_digest, normalize_digest, verified_chunks


class S3BlobStore(BlobStore):
    """Blobs stored as objects ``{prefix}{digest}`` in ``bucket``.

    The digest is computed locally before upload (the bytes are spooled to a temporary
    file so arbitrarily large blobs never sit in memory) and re-verified on every read:
    the object store is not trusted to return what it was given.
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "blobs/",
        endpoint_url: str | None = None,
        region_name: str | None = None,
        client: Any | None = None,
        **client_kwargs: Any,
    ) -> None:
        self.bucket, self.prefix = bucket, prefix
        if client is None:
            try:
                import boto3
                from botocore.config import Config
            except ImportError:
                raise ConfigError("S3 storage needs boto3; install 'comptoir[s3]'.") from None

            # Checksums only "when required": the default aws-chunked trailer encoding is
            # rejected by several S3-compatible servers, and we verify sha256 ourselves.
            config = Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if endpoint_url else None,
            )
            client = boto3.client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=region_name,
                config=config,
                **client_kwargs,
            )
        self._s3 = client

    def key(self, digest: str) -> str:
        return f"{self.prefix}{normalize_digest(digest)}"

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in {"404", "NoSuchKey", "NotFound"}

    def put_stream(self, chunks: Iterable[bytes], expected: str | None = None) -> str:
        import hashlib

        h = hashlib.sha256()
        with tempfile.TemporaryFile() as spool:
            for chunk in chunks:
                h.update(chunk)
                spool.write(chunk)
            digest = h.hexdigest()
            check_digest(digest, expected)
            if self.has(digest):
                return digest
            spool.seek(0)
            try:
                self._s3.upload_fileobj(spool, self.bucket, self.key(digest))
            except Exception as exc:
                raise StorageError(
                    f"Upload of {digest} to s3://{self.bucket}/{self.prefix} failed ({exc}); "
                    "check the bucket, endpoint and credentials."
                ) from exc
        return digest

    def stream(self, digest: str, chunk_size: int = CHUNK) -> Iterator[bytes]:
        d = normalize_digest(digest)
        try:
            obj = self._s3.get_object(Bucket=self.bucket, Key=self.key(d))
        except Exception as exc:
            if self._missing(exc):
                raise BlobNotFound(f"No blob {d} in s3://{self.bucket}/{self.prefix}.") from None
            raise StorageError(f"Reading {d} from s3://{self.bucket} failed ({exc}).") from exc
        body = obj["Body"]
        return verified_chunks(iter(lambda: body.read(chunk_size), b""), d)

    def has(self, digest: str) -> bool:
        try:
            self._s3.head_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if self._missing(exc):
                return False
            raise StorageError(f"s3://{self.bucket} did not answer ({exc}).") from exc
        return True

    def size(self, digest: str) -> int:
        try:
            head = self._s3.head_object(Bucket=self.bucket, Key=self.key(digest))
        except Exception as exc:
            if self._missing(exc):
                raise BlobNotFound(
                    f"No blob {normalize_digest(digest)} in s3://{self.bucket}."
                ) from None
            raise StorageError(f"s3://{self.bucket} did not answer ({exc}).") from exc
        return int(head["ContentLength"])

    def delete(self, digest: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=self.key(digest))


def s3_store_from_env(env: dict[str, str] | None = None) -> S3BlobStore:
    """Build from ``COMPTOIR_S3_BUCKET``/``_PREFIX``/``_ENDPOINT_URL``/``_REGION``."""
    env = dict(os.environ if env is None else env)
    bucket = env.get("COMPTOIR_S3_BUCKET")
    if not bucket:
        from comptoir.exceptions import ConfigError

        raise ConfigError("Set COMPTOIR_S3_BUCKET to use the S3 storage backend.")
    return S3BlobStore(
        bucket,
        prefix=env.get("COMPTOIR_S3_PREFIX", "blobs/"),
        endpoint_url=env.get("COMPTOIR_S3_ENDPOINT_URL") or None,
        region_name=env.get("COMPTOIR_S3_REGION") or None,
    )
