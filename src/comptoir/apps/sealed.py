"""Sealed results: what a worker uploads when the request names a result key
(docs/app-contract.md, "Confidential results and logs").

The requester puts its wallet's secp256k1 public key in the first line of the request's
``params`` (``comptoir-result:v1 key=<128 hex> seal=<0|1>``). The params are signed with
the request and recorded on-chain by the deal, and a worker accepts the key only when
its Ethereum address is the deal's requester, so nobody else can substitute theirs. The
rest of the params (after the first newline) is what the app sees as ``COMPTOIR_ARGS``.

The worker then uploads an *envelope*: a public part (the plain result, when the result
is not sealed) and a part encrypted to that key (ECIES: an ephemeral secp256k1 key,
ECDH, HKDF-SHA256, AES-256-GCM) holding the app's stdout/stderr tails and, when sealed,
the result itself. The digest the workers commit to is still the one of the plaintext
result, so replicas agree although each encrypts with its own ephemeral key and its own
logs; the requester checks the decrypted result against the on-chain digest.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import serialization as _ser
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from eth_keys import keys
from eth_keys.exceptions import ValidationError as KeyValidationError
from eth_utils import to_checksum_address

from comptoir.exceptions import ResultError

TERMS_PREFIX = "comptoir-result:v1"
MAGIC = b"CPTRSLT1"
MAX_HEADER = 4096
NONCE_BYTES = 12
HKDF_INFO = b"comptoir-result-v1"
# what the worker keeps of each stream (docs/app-contract.md)
LOG_TAIL_BYTES = 64 << 10
# failure statuses of a request whose result key cannot be used (deterministic: every
# replica reads the same on-chain params)
RESULT_KEY_MISSING = "RESULT_KEY_MISSING"
RESULT_KEY_INVALID = "RESULT_KEY_INVALID"


@dataclass(frozen=True)
class ResultTerms:
    """How a task's result is to be delivered, read from the deal's params."""

    args: str  # what the app sees as COMPTOIR_ARGS
    key: bytes | None  # the requester's 64-byte public key, checked against its address
    sealed: bool  # the result itself is encrypted (always with a dataset)
    failure: str | None = None  # RESULT_KEY_MISSING / RESULT_KEY_INVALID: do not run


def request_params(args: str, public_key: bytes, seal: bool) -> str:
    """The params a requester signs: the terms line, then its arguments verbatim."""
    return f"{TERMS_PREFIX} key={public_key.hex()} seal={int(seal)}\n{args}"


def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte uncompressed secp256k1 public key (without the 0x04 prefix)."""
    return keys.PrivateKey(private_key).public_key.to_bytes()


def app_args(params: str) -> str:
    """The arguments part of ``params`` (the params themselves when they carry no terms)."""
    if not params.startswith(TERMS_PREFIX):
        return params
    return params.partition("\n")[2]


def read_terms(params: str, requester: str, has_dataset: bool) -> ResultTerms:
    """The result terms of a deal. A result computed on a dataset is always sealed, so a
    dataset deal without a usable key must not run (its failure is then the outcome)."""
    if not params.startswith(TERMS_PREFIX):
        return ResultTerms(params, None, has_dataset, RESULT_KEY_MISSING if has_dataset else None)
    line, _, args = params.partition("\n")
    fields = dict(f.partition("=")[::2] for f in line.split()[1:])
    try:
        key = bytes.fromhex(fields.get("key", ""))
        owner = keys.PublicKey(key).to_checksum_address()
    except (ValueError, KeyValidationError):
        return ResultTerms(args, None, True, RESULT_KEY_INVALID)
    if owner != to_checksum_address(requester) or fields.get("seal") not in ("0", "1"):
        return ResultTerms(args, None, True, RESULT_KEY_INVALID)
    return ResultTerms(args, key, has_dataset or fields["seal"] == "1")


@dataclass(frozen=True)
class Logs:
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True)
class Opened:
    """An envelope as its reader sees it."""

    sealed: bool
    recipient: str  # the address the sealed part is encrypted to
    result: bytes | None  # the plain result (None: sealed and not decrypted)
    logs: Logs | None  # None unless decrypted


def is_envelope(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def seal(result: bytes, logs: Logs, key: bytes, sealed: bool) -> bytes:
    """The envelope a worker uploads: ``MAGIC ‖ len ‖ header ‖ public ‖ nonce ‖ ciphertext``.
    The header and the public part are authenticated with the ciphertext (AAD)."""
    recipient = keys.PublicKey(key)
    ephemeral = ec.generate_private_key(ec.SECP256K1())
    epk = ephemeral.public_key().public_bytes(
        _ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint
    )
    public = b"" if sealed else result
    header = json.dumps(
        {
            "v": 1,
            "sealed": sealed,
            "to": recipient.to_checksum_address(),
            "epk": epk.hex(),
            "public": len(public),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    secret = ephemeral.exchange(ec.ECDH(), _point(b"\x04" + key))
    aes = AESGCM(_derive(secret, epk, key))
    body = struct.pack(
        ">QQQ??",
        len(result) if sealed else 0,
        len(logs.stdout),
        len(logs.stderr),
        logs.stdout_truncated,
        logs.stderr_truncated,
    )
    body += (result if sealed else b"") + logs.stdout + logs.stderr
    nonce = os.urandom(NONCE_BYTES)
    prefix = MAGIC + struct.pack(">I", len(header)) + header + public
    return prefix + nonce + aes.encrypt(nonce, body, prefix)


def open_envelope(blob: bytes, private_key: bytes | None = None) -> Opened:
    """Read an envelope; with the recipient's private key, decrypt and authenticate it.
    Raises :class:`ResultError` (one sentence) for a malformed or altered envelope or a
    key that is not the recipient's."""
    header, public, nonce_and_ct, prefix = _split(blob)
    sealed, recipient = bool(header["sealed"]), str(header["to"])
    if private_key is None:
        return Opened(sealed, recipient, None if sealed else public, None)
    mine = keys.PrivateKey(private_key).public_key
    if mine.to_checksum_address() != recipient:
        raise ResultError(
            f"This result is sealed to its requester {recipient}, not to "
            f"{mine.to_checksum_address()}; only the requester's wallet can read it."
        )
    epk = bytes.fromhex(str(header["epk"]))
    shared = ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP256K1()).exchange(
        ec.ECDH(), _point(epk)
    )
    aes = AESGCM(_derive(shared, epk, mine.to_bytes()))
    nonce, ct = nonce_and_ct[:NONCE_BYTES], nonce_and_ct[NONCE_BYTES:]
    try:
        body = aes.decrypt(nonce, ct, prefix)
    except InvalidTag:
        raise ResultError(
            "The sealed result fails its authentication check: it was altered after the "
            "worker sealed it; do not trust it and fetch it again."
        ) from None
    fixed = struct.calcsize(">QQQ??")
    if len(body) < fixed:  # authentic, but a hostile worker may seal anything
        raise ResultError("The sealed result's sections do not add up; do not trust it.")
    n_res, n_out, n_err, t_out, t_err = struct.unpack(">QQQ??", body[:fixed])
    if fixed + n_res + n_out + n_err != len(body):
        raise ResultError("The sealed result's sections do not add up; do not trust it.")
    res, rest = body[fixed : fixed + n_res], body[fixed + n_res :]
    logs = Logs(rest[:n_out], rest[n_out:], t_out, t_err)
    return Opened(sealed, recipient, res if sealed else public, logs)


def _split(blob: bytes) -> tuple[dict[str, object], bytes, bytes, bytes]:
    bad = ResultError("The result envelope is malformed; do not trust it and fetch it again.")
    if not is_envelope(blob) or len(blob) < len(MAGIC) + 4:
        raise bad
    (n,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if n > MAX_HEADER or start + n > len(blob):
        raise bad
    try:
        header = json.loads(blob[start : start + n])
        public_len = int(header["public"])
        if header["v"] != 1 or not 0 <= public_len <= len(blob) - start - n:
            raise bad
        if not isinstance(header["sealed"], bool):
            raise bad
        str(header["to"]), bytes.fromhex(str(header["epk"]))
    except (ValueError, KeyError, TypeError, RecursionError):
        raise bad from None
    end = start + n + public_len
    if len(blob) - end < NONCE_BYTES + 16:
        raise bad
    return header, blob[start + n : end], blob[end:], blob[:end]


def _point(uncompressed: bytes) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), uncompressed)
    except ValueError:
        raise ResultError("The result envelope names an invalid key; do not trust it.") from None


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO + epk + recipient
    ).derive(shared)
