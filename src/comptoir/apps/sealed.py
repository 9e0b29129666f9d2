"""Sealed results: what a worker uploads when the request names result keys
(docs/app-contract.md, "Confidential results and logs").

The requester puts its wallet's secp256k1 public key in the first line of the request's
``params``: ``comptoir-result:v1 key=<hex> seal=<0|1>``, optionally followed by
``app-owner=<hex>:<logs|all>`` (the app's owner reads the logs, or everything) and
``callback-owner=<hex>:result`` (the owner of the deal's callback contract reads the
result). The params are signed with the request and recorded on-chain by the deal. A
worker uses a key only when the chain backs it: the requester's key must be the deal's
requester's, the app owner's the deal's app owner's, and the callback owner's the
address the callback contract's ``owner()`` returned at the deal's block
(:func:`check_callback_owner`); anything else fails the task in a deterministic record,
so nobody can slip their own key in. The rest of the params (after the first newline)
is what the app sees as ``COMPTOIR_ARGS``.

The worker uploads an *envelope*: a public part (the plain result, when the result is
not sealed) and two sections encrypted under fresh content keys, the logs (the app's
stdout/stderr tails) and, when sealed, the result. Each content key is wrapped to each
recipient allowed to read that section (ECIES: an ephemeral secp256k1 key per
recipient, ECDH, HKDF-SHA256, AES-256-GCM). The digest the workers commit to is still
the one of the plaintext result, so replicas agree although each encrypts with its own
keys and its own logs; a reader checks the decrypted result against the on-chain digest.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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
VERSION = 2
MAX_HEADER = 4096
MAX_RECIPIENTS = 4
NONCE_BYTES = 12
HKDF_INFO = b"comptoir-result-v1"
# what the worker keeps of each stream (docs/app-contract.md)
LOG_TAIL_BYTES = 64 << 10
# the sections of an envelope, and who reads what
LOGS, RESULT = "logs", "result"
SECTIONS = (LOGS, RESULT)
REQUESTER, APP_OWNER, CALLBACK_OWNER = "requester", "app-owner", "callback-owner"
ROLE_NAMES = {
    REQUESTER: "its requester",
    APP_OWNER: "the app's owner",
    CALLBACK_OWNER: "the callback's owner",
}
SCOPES = {"logs": frozenset({LOGS}), "result": frozenset({RESULT}), "all": frozenset(SECTIONS)}
# failure statuses of a request whose result keys cannot be used (deterministic: every
# replica reads the same on-chain params and the same on-chain owners)
RESULT_KEY_MISSING = "RESULT_KEY_MISSING"
RESULT_KEY_INVALID = "RESULT_KEY_INVALID"
APP_OWNER_KEY_INVALID = "APP_OWNER_KEY_INVALID"
CALLBACK_OWNER_KEY_INVALID = "CALLBACK_OWNER_KEY_INVALID"


@dataclass(frozen=True)
class Recipient:
    """Someone a worker seals to: a role, a 64-byte public key and the sections it reads."""

    role: str
    key: bytes
    reads: frozenset[str]

    @property
    def address(self) -> str:
        return keys.PublicKey(self.key).to_checksum_address()


@dataclass(frozen=True)
class ResultTerms:
    """How a task's result is to be delivered, read from the deal's params."""

    args: str  # what the app sees as COMPTOIR_ARGS
    key: bytes | None  # the requester's 64-byte public key, checked against its address
    sealed: bool  # the result itself is encrypted (always with a dataset)
    failure: str | None = None  # one of the *_KEY_* statuses: do not run
    others: tuple[Recipient, ...] = ()  # the app's and the callback's owners, when asked

    def recipients(self) -> tuple[Recipient, ...]:
        """Everyone the envelope is sealed to, the requester (reading everything) first."""
        if self.key is None:
            return ()
        return (Recipient(REQUESTER, self.key, SCOPES["all"]), *self.others)

    @property
    def callback_owner(self) -> Recipient | None:
        return next((r for r in self.others if r.role == CALLBACK_OWNER), None)


def parse_public_key(text: str | bytes) -> bytes:
    """A secp256k1 public key as 64 bytes, from 64 raw bytes, 65 with the 0x04 prefix or
    33 compressed, given as bytes or hex; ValueError when it is none of these."""
    raw = bytes.fromhex(text.removeprefix("0x")) if isinstance(text, str) else bytes(text)
    try:
        if len(raw) == 33:
            return keys.PublicKey.from_compressed_bytes(raw).to_bytes()
        if len(raw) == 65 and raw[0] == 4:
            raw = raw[1:]
        if len(raw) == 64:
            _point(b"\x04" + raw, ValueError("not a point on secp256k1"))
            return keys.PublicKey(raw).to_bytes()
    except (KeyValidationError, ResultError) as exc:
        raise ValueError(str(exc)) from None
    raise ValueError("a public key is 33 (compressed) or 64 bytes")


def compressed(key: bytes) -> bytes:
    return keys.PublicKey(key).to_compressed_bytes()


def request_params(
    args: str, public_key: bytes, seal: bool, others: Sequence[Recipient] = ()
) -> str:
    """The params a requester signs: the terms line (compressed keys, so the arguments
    keep room in the hub's 512 bytes), then its arguments verbatim."""
    line = f"{TERMS_PREFIX} key={compressed(public_key).hex()} seal={int(seal)}"
    for r in others:
        scope = next(name for name, sections in SCOPES.items() if sections == r.reads)
        line += f" {r.role}={compressed(r.key).hex()}:{scope}"
    return f"{line}\n{args}"


def public_key_of(private_key: bytes) -> bytes:
    """The 64-byte uncompressed secp256k1 public key (without the 0x04 prefix)."""
    return keys.PrivateKey(private_key).public_key.to_bytes()


def app_args(params: str) -> str:
    """The arguments part of ``params`` (the params themselves when they carry no terms)."""
    if not params.startswith(TERMS_PREFIX):
        return params
    return params.partition("\n")[2]


def read_terms(
    params: str,
    requester: str,
    has_dataset: bool,
    app_owner: str | None = None,
    has_callback: bool = False,
) -> ResultTerms:
    """The result terms of a deal. A result computed on a dataset is always sealed, so a
    dataset deal without a usable key must not run (its failure is then the outcome). The
    app owner's key must be ``app_owner``'s (the deal's); a callback owner's key is only
    well-formed here: :func:`check_callback_owner` checks it against the chain."""
    if not params.startswith(TERMS_PREFIX):
        return ResultTerms(params, None, has_dataset, RESULT_KEY_MISSING if has_dataset else None)
    line, _, args = params.partition("\n")
    fields = dict(f.partition("=")[::2] for f in line.split()[1:])
    invalid = ResultTerms(args, None, True, RESULT_KEY_INVALID)
    try:
        key = parse_public_key(fields.pop("key", ""))
    except ValueError:
        return invalid
    seal = fields.pop("seal", None)
    if keys.PublicKey(key).to_checksum_address() != to_checksum_address(requester):
        return invalid
    if seal not in ("0", "1"):
        return invalid
    others: list[Recipient] = []
    for role, allowed in ((APP_OWNER, ("logs", "all")), (CALLBACK_OWNER, ("result",))):
        if role not in fields:
            continue
        value, _, scope = fields.pop(role).partition(":")
        try:
            other = Recipient(role, parse_public_key(value), SCOPES[scope])
        except (ValueError, KeyError):
            return invalid
        if scope not in allowed or (role == CALLBACK_OWNER and not has_callback):
            return invalid
        if role == APP_OWNER and (
            app_owner is None or other.address != to_checksum_address(app_owner)
        ):
            return ResultTerms(args, None, True, APP_OWNER_KEY_INVALID)
        others.append(other)
    if fields:  # a field this worker does not know: it cannot honour the request
        return invalid
    # a request that names a callback owner asked for a sealed result
    sealed = has_dataset or seal == "1" or any(r.role == CALLBACK_OWNER for r in others)
    return ResultTerms(args, key, sealed, None, tuple(others))


def check_callback_owner(terms: ResultTerms, owner: str | None) -> ResultTerms:
    """`terms` failed with CALLBACK_OWNER_KEY_INVALID unless the callback owner's key is
    the address the callback's ``owner()`` returned (None: it has no such function)."""
    named = terms.callback_owner
    if named is None or (owner is not None and named.address == to_checksum_address(owner)):
        return terms
    return ResultTerms(terms.args, None, True, CALLBACK_OWNER_KEY_INVALID)


@dataclass(frozen=True)
class Logs:
    stdout: bytes
    stderr: bytes
    stdout_truncated: bool = False
    stderr_truncated: bool = False


@dataclass(frozen=True)
class Reader:
    """One recipient as the envelope's header names it."""

    role: str
    address: str
    reads: frozenset[str]

    def describe(self) -> str:
        return f"{ROLE_NAMES.get(self.role, self.role)} {self.address}"


@dataclass(frozen=True)
class Opened:
    """An envelope as its reader sees it."""

    sealed: bool
    readers: tuple[Reader, ...]  # everyone it is sealed to, the requester first
    result: bytes | None  # the plain result (None: sealed and not readable by this key)
    logs: Logs | None  # None unless decrypted by one of the logs' readers
    reader: Reader | None = None  # the recipient whose key opened it

    @property
    def requester(self) -> str:
        return next((r.address for r in self.readers if r.role == REQUESTER), "")

    def reader_of(self, address: str) -> Reader | None:
        return next((r for r in self.readers if r.address == address), None)

    def who_reads(self, section: str | None = None) -> str:
        """'its requester 0x… and the app's owner 0x…': who may read `section` (any)."""
        return " and ".join(
            r.describe() for r in self.readers if section is None or section in r.reads
        )


def is_envelope(blob: bytes) -> bool:
    return blob[: len(MAGIC)] == MAGIC


def seal(result: bytes, logs: Logs, recipients: Sequence[Recipient], sealed: bool) -> bytes:
    """The envelope a worker uploads: the logs sealed to every recipient that reads them,
    the result sealed to those that read it (public when not `sealed`)."""
    sizes = (len(logs.stdout), len(logs.stderr), logs.stdout_truncated, logs.stderr_truncated)
    body = struct.pack(">QQ??", *sizes) + logs.stdout + logs.stderr
    sections = {LOGS: body, RESULT: result} if sealed else {LOGS: body}
    return assemble(sections, b"" if sealed else result, recipients, sealed)


def assemble(
    sections: dict[str, bytes], public: bytes, recipients: Sequence[Recipient], sealed: bool
) -> bytes:
    """``MAGIC ‖ len ‖ header ‖ public ‖ sections``: each section ``nonce ‖ AES-GCM``
    under a fresh content key, the header and the public part as its AAD; the header
    holds each recipient's wrap of the content keys it may read."""
    if not 1 <= len(recipients) <= MAX_RECIPIENTS:
        raise ValueError(f"an envelope has 1 to {MAX_RECIPIENTS} recipients")
    content = {s: AESGCM.generate_key(256) for s in sections}
    to = []
    for r in recipients:
        ephemeral = ec.generate_private_key(ec.SECP256K1())
        epk = ephemeral.public_key().public_bytes(
            _ser.Encoding.X962, _ser.PublicFormat.UncompressedPoint
        )
        kek = AESGCM(_derive(ephemeral.exchange(ec.ECDH(), _point(b"\x04" + r.key)), epk, r.key))
        entry = {"role": r.role, "to": r.address, "epk": epk.hex()}
        for s in sorted(r.reads & content.keys()):
            nonce = os.urandom(NONCE_BYTES)
            entry[s] = (nonce + kek.encrypt(nonce, content[s], s.encode())).hex()
        to.append(entry)
    sizes = {s: NONCE_BYTES + len(body) + 16 for s, body in sections.items()}
    header = json.dumps(
        {"v": VERSION, "sealed": sealed, "public": len(public), "sections": sizes, "to": to},
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    prefix = MAGIC + struct.pack(">I", len(header)) + header + public
    out = bytearray(prefix)
    for s in SECTIONS:
        if s in sections:
            nonce = os.urandom(NONCE_BYTES)
            out += nonce + AESGCM(content[s]).encrypt(nonce, sections[s], prefix)
    return bytes(out)


_MALFORMED = "The result envelope is malformed; do not trust it and fetch it again."
_ALTERED = (
    "The sealed result fails its authentication check: it was altered after the worker "
    "sealed it; do not trust it and fetch it again."
)


@dataclass(frozen=True)
class _Parsed:
    header: dict[str, Any]
    readers: tuple[Reader, ...]
    public: bytes
    sections: dict[str, bytes]  # section -> nonce ‖ ciphertext
    prefix: bytes  # the AAD


def open_envelope(blob: bytes, private_key: bytes | None = None) -> Opened:
    """Read an envelope; with a recipient's private key, decrypt and authenticate the
    sections it may read. Raises :class:`ResultError` (one sentence) for a malformed or
    altered envelope or a key that is none of its recipients'."""
    p = _split(blob)
    sealed = bool(p.header["sealed"])
    public = None if sealed else p.public
    if private_key is None:
        return Opened(sealed, p.readers, public, None)
    mine = keys.PrivateKey(private_key).public_key
    index = next(
        (i for i, r in enumerate(p.readers) if r.address == mine.to_checksum_address()), None
    )
    if index is None:
        who = " and ".join(r.describe() for r in p.readers)
        raise ResultError(
            f"This result is sealed to {who}, not to {mine.to_checksum_address()}; only "
            "those wallets can read it."
        )
    entry = p.header["to"][index]
    epk = bytes.fromhex(str(entry["epk"]))
    shared = ec.derive_private_key(int.from_bytes(private_key, "big"), ec.SECP256K1()).exchange(
        ec.ECDH(), _point(epk)
    )
    kek = AESGCM(_derive(shared, epk, mine.to_bytes()))
    plain: dict[str, bytes] = {}
    for s in p.readers[index].reads:
        wrapped = bytes.fromhex(str(entry[s]))
        try:
            key = kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], s.encode())
            ct = p.sections[s]
            plain[s] = AESGCM(key).decrypt(ct[:NONCE_BYTES], ct[NONCE_BYTES:], p.prefix)
        except (InvalidTag, ValueError):
            raise ResultError(_ALTERED) from None
    logs = _logs(plain[LOGS]) if LOGS in plain else None
    result = plain.get(RESULT) if sealed else public
    return Opened(sealed, p.readers, result, logs, p.readers[index])


def _logs(body: bytes) -> Logs:
    fixed = struct.calcsize(">QQ??")
    if len(body) < fixed:  # authentic, but a hostile worker may seal anything
        raise ResultError("The sealed result's sections do not add up; do not trust it.")
    n_out, n_err, t_out, t_err = struct.unpack(">QQ??", body[:fixed])
    if fixed + n_out + n_err != len(body):
        raise ResultError("The sealed result's sections do not add up; do not trust it.")
    rest = body[fixed:]
    return Logs(rest[:n_out], rest[n_out:], t_out, t_err)


def _split(blob: bytes) -> _Parsed:
    bad = ResultError(_MALFORMED)
    if not is_envelope(blob) or len(blob) < len(MAGIC) + 4:
        raise bad
    (n,) = struct.unpack(">I", blob[len(MAGIC) : len(MAGIC) + 4])
    start = len(MAGIC) + 4
    if n > MAX_HEADER or start + n > len(blob):
        raise bad
    try:
        header = json.loads(blob[start : start + n])
        public_len, sizes, to = int(header["public"]), header["sections"], header["to"]
        if header["v"] != VERSION or not isinstance(header["sealed"], bool):
            raise bad
        if not isinstance(sizes, dict) or not isinstance(to, list):
            raise bad
        if set(sizes) - set(SECTIONS) or LOGS not in sizes or header["sealed"] != (RESULT in sizes):
            raise bad
        if not 1 <= len(to) <= MAX_RECIPIENTS:
            raise bad
        readers = tuple(_reader(entry, sizes) for entry in to)
        lengths = [int(sizes[s]) for s in SECTIONS if s in sizes]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise bad from None
    end = start + n + public_len
    if public_len < 0 or any(size < NONCE_BYTES + 16 for size in lengths):
        raise bad
    if end + sum(lengths) != len(blob):
        raise bad
    cuts, at = {}, end
    for s in SECTIONS:
        if s in sizes:
            cuts[s] = blob[at : at + int(sizes[s])]
            at += int(sizes[s])
    return _Parsed(header, readers, blob[start + n : end], cuts, blob[:end])


def _reader(entry: Any, sizes: dict[str, Any]) -> Reader:
    if not isinstance(entry, dict) or entry.get("role") not in ROLE_NAMES:
        raise ValueError("not a recipient")
    address = to_checksum_address(str(entry["to"]))
    if len(bytes.fromhex(str(entry["epk"]))) != 65:
        raise ValueError("not an ephemeral key")
    reads = frozenset(s for s in SECTIONS if s in entry and s in sizes)
    for s in reads:
        if len(bytes.fromhex(str(entry[s]))) != NONCE_BYTES + 32 + 16:
            raise ValueError("not a wrapped key")
    return Reader(str(entry["role"]), address, reads)


def _point(uncompressed: bytes, error: Exception | None = None) -> ec.EllipticCurvePublicKey:
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256K1(), uncompressed)
    except ValueError:
        raise error or ResultError(
            "The result envelope names an invalid key; do not trust it."
        ) from None


def _derive(shared: bytes, epk: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO + epk + recipient
    ).derive(shared)
