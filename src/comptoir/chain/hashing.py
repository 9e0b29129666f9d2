"""keccak-256 for the hashes computed on every request (commitments, seals, EIP-712
digests): pycryptodome's directly, without eth_utils' argument validation, which cost
more than the hash itself (18 µs against 7 µs for 96 bytes)."""

from __future__ import annotations

from Crypto.Hash import keccak as _keccak


def keccak256(data: bytes) -> bytes:
    """keccak-256 (Ethereum's, not NIST SHA3-256) of `data`."""
    return _keccak.new(digest_bits=256, data=data).digest()
