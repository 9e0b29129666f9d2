"""Content-addressed storage: blob stores, the HTTP blob server and client, dataset
encryption and the dataset key service."""

from comptoir.storage.base import BlobStore
from comptoir.storage.client import StorageClient
from comptoir.storage.crypto import decrypt_dataset, encrypt_dataset
from comptoir.storage.digest import normalize_digest, sha256_bytes, sha256_file
from comptoir.storage.factory import open_blob_store
from comptoir.storage.local import LocalBlobStore

__all__ = [
    "BlobStore",
    "LocalBlobStore",
    "StorageClient",
    "decrypt_dataset",
    "encrypt_dataset",
    "normalize_digest",
    "open_blob_store",
    "sha256_bytes",
    "sha256_file",
]
