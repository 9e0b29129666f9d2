"""Sealed results (comptoir.apps.sealed): who can read them (the requester, the app's
owner for the logs, a callback's owner for the result), what an altered envelope gives,
and which result keys a worker accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from comptoir.apps import sealed
from comptoir.exceptions import ResultError
from comptoir.sandbox import Outcome
from comptoir.sandbox.executor import SandboxResult
from comptoir.worker.packaging import logs_of, seal_file

REQUESTER = Account.from_key(b"\x11" * 32)
STRANGER = Account.from_key(b"\x22" * 32)
APP_DEV = Account.from_key(b"\x33" * 32)
CALLBACK_OWNER = Account.from_key(b"\x44" * 32)
KEY = sealed.public_key_of(bytes(REQUESTER.key))
ME = [sealed.Recipient(sealed.REQUESTER, KEY, sealed.SCOPES["all"])]
OWNER_LOGS = sealed.Recipient(
    sealed.APP_OWNER, sealed.public_key_of(bytes(APP_DEV.key)), sealed.SCOPES["logs"]
)
CB_RESULT = sealed.Recipient(
    sealed.CALLBACK_OWNER, sealed.public_key_of(bytes(CALLBACK_OWNER.key)), sealed.SCOPES["result"]
)
LOGS = sealed.Logs(b"step 1 done\n", b"warning: slow disk\n", False, True)


def test_a_sealed_result_opens_only_with_the_requesters_key() -> None:
    blob = sealed.seal(b"the plaintext result", LOGS, ME, sealed=True)
    assert b"plaintext" not in blob and b"step 1" not in blob
    public = sealed.open_envelope(blob)
    assert public.sealed and public.requester == REQUESTER.address
    assert public.result is None and public.logs is None
    with pytest.raises(ResultError, match=f"sealed to its requester {REQUESTER.address}"):
        sealed.open_envelope(blob, bytes(STRANGER.key))
    opened = sealed.open_envelope(blob, bytes(REQUESTER.key))
    assert opened.result == b"the plaintext result" and opened.logs == LOGS


def test_an_unsealed_result_is_public_but_its_logs_are_not() -> None:
    blob = sealed.seal(b"public numbers", LOGS, ME, sealed=False)
    public = sealed.open_envelope(blob)
    assert not public.sealed and public.result == b"public numbers" and public.logs is None
    assert b"step 1" not in blob
    assert sealed.open_envelope(blob, bytes(REQUESTER.key)).logs == LOGS


def test_each_seal_uses_a_fresh_ephemeral_key() -> None:
    one, two = (sealed.seal(b"same", LOGS, ME, sealed=True) for _ in range(2))
    assert one != two  # replicas upload different blobs for the same digest
    assert sealed.open_envelope(one, bytes(REQUESTER.key)).result == b"same"


@pytest.mark.parametrize("where", ["ciphertext", "public part", "header"])
def test_an_altered_envelope_is_refused_in_one_sentence(where: str) -> None:
    blob = bytearray(sealed.seal(b"result", LOGS, ME, sealed=where != "public part"))
    if where == "ciphertext":
        blob[-3] ^= 0x40
    elif where == "public part":
        blob[blob.index(b"result")] ^= 0x01
    else:  # another hex digit in the ephemeral key: still a well-formed header
        at = blob.index(b'"epk":"') + 20
        blob[at] = ord("1") if blob[at] != ord("1") else ord("2")
    with pytest.raises(ResultError) as err:
        sealed.open_envelope(bytes(blob), bytes(REQUESTER.key))
    message = str(err.value)
    assert message.endswith(".") and message.count(". ") == 0, message
    assert "do not trust it" in message


@pytest.mark.parametrize(
    "blob",
    [b"", b"CPTRSLT1", b"CPTRSLT1\xff\xff\xff\xff{}", b"CPTRSLT1\x00\x00\x00\x02{}" + b"x" * 40],
)
def test_a_malformed_envelope_is_refused(blob: bytes) -> None:
    with pytest.raises(ResultError, match="malformed"):
        sealed.open_envelope(blob, bytes(REQUESTER.key))


def test_terms_bind_the_key_to_the_deals_requester() -> None:
    params = sealed.request_params("n=5\nsecond line", KEY, seal=False)
    terms = sealed.read_terms(params, REQUESTER.address, has_dataset=False)
    assert terms == sealed.ResultTerms("n=5\nsecond line", KEY, sealed=False)
    assert sealed.app_args(params) == "n=5\nsecond line"
    # with a dataset the result is sealed whatever the flag says
    assert sealed.read_terms(params, REQUESTER.address, has_dataset=True).sealed
    # someone else's key in a request: never used
    other = sealed.request_params("", sealed.public_key_of(bytes(STRANGER.key)), seal=True)
    assert sealed.read_terms(other, REQUESTER.address, False).failure == sealed.RESULT_KEY_INVALID
    for broken in (f"{sealed.TERMS_PREFIX} key=zz seal=1", f"{sealed.TERMS_PREFIX} seal=1"):
        assert sealed.read_terms(broken, REQUESTER.address, False).failure == "RESULT_KEY_INVALID"
    assert sealed.read_terms(params.replace("seal=0", "seal=2"), REQUESTER.address, False).failure


def test_no_key_means_plain_results_but_never_for_a_dataset() -> None:
    plain = sealed.read_terms("hello", REQUESTER.address, has_dataset=False)
    assert plain == sealed.ResultTerms("hello", None, sealed=False)
    refused = sealed.read_terms("hello", REQUESTER.address, has_dataset=True)
    assert refused.failure == sealed.RESULT_KEY_MISSING and refused.sealed


def _run(stdout: bytes, stderr: bytes) -> SandboxResult:
    return SandboxResult(Outcome.SUCCESS, "", 0, stdout, stderr, False, False, 0.1, Path("."))


def test_the_worker_keeps_a_bounded_tail_inside_the_sealed_part(tmp_path: Path) -> None:
    logs = logs_of(_run(b"x" * 100_000 + b"THE END", b"short"))
    assert len(logs.stdout) == sealed.LOG_TAIL_BYTES and logs.stdout.endswith(b"THE END")
    assert logs.stdout_truncated and not logs.stderr_truncated
    result = tmp_path / "1.tar.gz"
    result.write_bytes(b"archive bytes")
    terms = sealed.ResultTerms("", KEY, sealed=True)
    uploaded = seal_file(result, terms, _run(b"out", b"err"))
    assert uploaded.name == "1.tar.gz.sealed" and not result.exists()
    opened = sealed.open_envelope(uploaded.read_bytes(), bytes(REQUESTER.key))
    assert opened.result == b"archive bytes" and opened.logs == sealed.Logs(b"out", b"err")
    # without a key the result is uploaded as it is and no log leaves the worker
    result.write_bytes(b"archive bytes")
    assert seal_file(result, sealed.ResultTerms("", None, False), _run(b"o", b"e")) == result


def _envelope(header: bytes, tail: bytes = b"x" * 40) -> bytes:
    return sealed.MAGIC + len(header).to_bytes(4, "big") + header + tail


def _hostile_body(body: bytes) -> bytes:
    """An envelope a hostile worker sealed properly to the requester, around `body`."""
    return sealed.assemble({sealed.LOGS: body}, b"", ME, sealed=False)


@pytest.mark.parametrize(
    "blob",
    [
        _envelope(b"[" * 2000 + b"]" * 2000),  # nested past the JSON decoder's recursion limit
        _envelope(b'{"v":2,"public":0,"sections":{},"to":[]}'),  # no "sealed"
        _envelope(b"[1]"),
        _hostile_body(b"short"),  # authentic, but shorter than its own section sizes
    ],
)
def test_a_hostile_workers_envelope_is_refused_in_one_sentence(blob: bytes) -> None:
    with pytest.raises(ResultError, match="do not trust it"):
        sealed.open_envelope(blob, bytes(REQUESTER.key))


def test_the_app_owner_reads_the_logs_and_the_callback_owner_the_result() -> None:
    blob = sealed.seal(b"the result", LOGS, [*ME, OWNER_LOGS, CB_RESULT], sealed=True)
    assert b"the result" not in blob and b"step 1" not in blob
    mine = sealed.open_envelope(blob, bytes(REQUESTER.key))
    assert mine.result == b"the result" and mine.logs == LOGS
    dev = sealed.open_envelope(blob, bytes(APP_DEV.key))
    assert dev.result is None and dev.logs == LOGS and dev.reader == dev.reader_of(APP_DEV.address)
    cb = sealed.open_envelope(blob, bytes(CALLBACK_OWNER.key))
    assert cb.result == b"the result" and cb.logs is None
    assert dev.who_reads(sealed.RESULT) == (
        f"its requester {REQUESTER.address} and the callback's owner {CALLBACK_OWNER.address}"
    )
    with pytest.raises(ResultError, match=f"the app's owner {APP_DEV.address}") as err:
        sealed.open_envelope(blob, bytes(STRANGER.key))
    assert f"sealed to its requester {REQUESTER.address}" in str(err.value)


def test_one_recipients_key_cannot_open_anothers_section() -> None:
    """Each recipient's wraps are its own: swapping the app owner's wrap of the logs key
    for the requester's own wrap of the result key is detected, not decrypted."""
    import json

    blob = sealed.seal(b"secret", LOGS, [*ME, OWNER_LOGS], sealed=True)
    n = int.from_bytes(blob[8:12], "big")
    header = json.loads(blob[12 : 12 + n])
    header["to"][1]["result"] = header["to"][0]["result"]  # the dev claims the result wrap
    forged = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    blob2 = blob[:8] + len(forged).to_bytes(4, "big") + forged + blob[12 + n :]
    with pytest.raises(ResultError, match="altered after the worker sealed it"):
        sealed.open_envelope(blob2, bytes(APP_DEV.key))


def test_replicas_envelopes_differ_but_carry_the_same_result() -> None:
    everyone = [*ME, OWNER_LOGS, CB_RESULT]
    one, two = (sealed.seal(b"same", LOGS, everyone, sealed=True) for _ in range(2))
    assert one != two
    for who in (REQUESTER, CALLBACK_OWNER):
        assert sealed.open_envelope(one, bytes(who.key)).result == b"same"
        assert sealed.open_envelope(two, bytes(who.key)).result == b"same"


def test_terms_bind_the_other_recipients_to_the_chain() -> None:
    dev_key = sealed.public_key_of(bytes(APP_DEV.key))
    cb_key = sealed.public_key_of(bytes(CALLBACK_OWNER.key))
    params = sealed.request_params("n=1", KEY, False, [OWNER_LOGS, CB_RESULT])
    assert len(params.encode()) < 300  # compressed keys: room is left for arguments
    terms = sealed.read_terms(params, REQUESTER.address, False, APP_DEV.address, True)
    assert terms.failure is None and terms.args == "n=1"
    assert [(r.role, r.key, r.reads) for r in terms.recipients()] == [
        (sealed.REQUESTER, KEY, sealed.SCOPES["all"]),
        (sealed.APP_OWNER, dev_key, sealed.SCOPES["logs"]),
        (sealed.CALLBACK_OWNER, cb_key, sealed.SCOPES["result"]),
    ]
    assert terms.sealed  # a result shared with a callback's owner is sealed
    # the deal's app owner is someone else: the key is refused, nothing runs
    other_dev = sealed.read_terms(params, REQUESTER.address, False, STRANGER.address, True)
    assert other_dev.failure == sealed.APP_OWNER_KEY_INVALID
    # a callback owner's key in a deal without a callback, or a scope it may not read
    assert sealed.read_terms(params, REQUESTER.address, False, APP_DEV.address).failure
    greedy = params.replace(":result", ":all")
    assert sealed.read_terms(greedy, REQUESTER.address, False, APP_DEV.address, True).failure
    unknown = params.replace("\n", " tee=1\n", 1)
    assert sealed.read_terms(unknown, REQUESTER.address, False, APP_DEV.address, True).failure
    # the callback's owner() decides, at the deal's block
    assert sealed.check_callback_owner(terms, CALLBACK_OWNER.address) == terms
    for owner in (STRANGER.address, None):
        checked = sealed.check_callback_owner(terms, owner)
        assert checked.failure == sealed.CALLBACK_OWNER_KEY_INVALID and checked.key is None


def test_the_requesters_old_uncompressed_key_is_still_read() -> None:
    params = f"{sealed.TERMS_PREFIX} key={KEY.hex()} seal=1\nargs"
    terms = sealed.read_terms(params, REQUESTER.address, False)
    assert terms == sealed.ResultTerms("args", KEY, sealed=True)


@pytest.mark.parametrize("text", ["", "zz", "02" + "ff" * 32, "00" * 64, "04" + "11" * 63])
def test_a_malformed_public_key_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        sealed.parse_public_key(text)
