"""AES-256-GCM encryption at rest for datasets.

Blob format: ``nonce (12 bytes) || ciphertext || tag (16 bytes)``. The dataset's on-chain
checksum is the sha256 of this encrypted blob, so storage nodes and the chain only ever
see ciphertext; the key travels separately through the key service.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from comptoir.exceptions import DecryptionError
from comptoir.storage.digest import sha256_bytes

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16


def encrypt_dataset(plaintext: bytes, key: bytes | None = None) -> tuple[bytes, bytes]:
    """Return ``(encrypted_blob, key)``; a fresh random key unless one is given.

    A fresh random nonce per call makes reusing a key safe for a handful of blobs,
    but the intended use is one key per dataset.
    """
    key = AESGCM.generate_key(bit_length=256) if key is None else key
    if len(key) != KEY_BYTES:
        raise DecryptionError(f"Dataset keys are {KEY_BYTES} bytes (AES-256); got {len(key)}.")
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, None), key


def decrypt_dataset(blob: bytes, key: bytes) -> bytes:
    """Inverse of :func:`encrypt_dataset`; raises DecryptionError on a wrong key or tampering."""
    if len(key) != KEY_BYTES:
        raise DecryptionError(f"Dataset keys are {KEY_BYTES} bytes (AES-256); got {len(key)}.")
    if len(blob) < NONCE_BYTES + TAG_BYTES:
        raise DecryptionError("The encrypted dataset is shorter than a nonce and a tag.")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], None)
    except InvalidTag:
        raise DecryptionError(
            f"Dataset {sha256_bytes(blob)} does not decrypt with this key: the key is wrong "
            "or the encrypted bytes were tampered with."
        ) from None
