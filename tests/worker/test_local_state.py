"""The worker's local pieces: LRU cache, crash-safe journal, failure records, idle check."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from comptoir.sandbox import Outcome
from comptoir.worker.agent import machine_idle
from comptoir.worker.cache import BlobCache
from comptoir.worker.failure import DETERMINISTIC, failure_record, parse_record, record_digest
from comptoir.worker.journal import Journal


def _put(cache: BlobCache, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    tmp = cache.temp_file()
    tmp.write_bytes(data)
    cache.add(digest, tmp)
    return digest


def _age(cache: BlobCache, digest: str, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(cache.path(digest), (t, t))


def test_cache_evicts_least_recently_used_first(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=250)
    a, b = _put(cache, b"a" * 100), _put(cache, b"b" * 100)
    _age(cache, a, 20)
    _age(cache, b, 10)
    assert cache.get(a) is not None  # using `a` makes `b` the oldest
    c = _put(cache, b"c" * 100)
    assert set(cache.checksums()) == {a, c}
    assert cache.size() <= 250
    assert b not in cache.checksums() and cache.get(b) is None


def test_cache_never_evicts_pinned_blobs(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=150)
    a = _put(cache, b"a" * 100)
    _age(cache, a, 60)
    cache.pin(a)
    b = _put(cache, b"b" * 100)
    assert a in cache.checksums()  # over the bound while pinned
    assert b not in cache.checksums()  # the unpinned newcomer went instead
    cache.unpin(a)
    c = _put(cache, b"c" * 100)
    assert cache.checksums() == [c]  # `a`, the oldest, goes once unpinned


def test_cache_drops_the_unpacked_app_with_its_blob(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=100)
    a = _put(cache, b"a" * 100)
    (cache.apps / a).mkdir()
    (cache.apps / a / "file").write_text("x")
    _age(cache, a, 60)
    _put(cache, b"b" * 100)
    assert not (cache.apps / a).exists()


def test_cache_forgets_partial_downloads_on_restart(tmp_path: Path) -> None:
    cache = BlobCache(tmp_path, max_bytes=1000)
    cache.temp_file().write_bytes(b"half a download")
    BlobCache(tmp_path, max_bytes=1000)
    assert list(cache.tmp.iterdir()) == []


def test_journal_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    j = Journal(path)
    j.put(7, phase="running", assignment={"id": 7})
    j.put(7, phase="committed", digest="0x01")
    j.put(8, phase="running")
    j.drop(8)
    again = Journal(path)
    assert again.entries() == {7: {"phase": "committed", "assignment": {"id": 7}, "digest": "0x01"}}
    assert not list(tmp_path.glob(".journal-*"))  # no temp file left behind


def test_a_torn_journal_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "journal.json"
    path.write_text('{"7": {"phase": "runn')
    assert Journal(path).entries() == {}
    assert path.with_suffix(".corrupt").exists()


def test_failure_records_are_canonical() -> None:
    record = failure_record("TIMEOUT")
    assert record == '{"kind":"comptoir-task-failure","status":"TIMEOUT","version":1}'
    assert record_digest(record) == hashlib.sha256(record.encode()).digest()
    failed = failure_record("APP_FAILED", 3)
    assert json.loads(failed)["exit_code"] == 3
    assert parse_record(failed) == json.loads(failed)
    assert parse_record(b"task 0 square 0") is None
    assert parse_record('{"status": "TIMEOUT"}') is None  # not ours: no kind
    # every deterministic sandbox outcome maps to one status name
    assert {o.value.upper() for o in DETERMINISTIC} == {
        "APP_FAILED",
        "TIMEOUT",
        "MEMORY_LIMIT",
        "OUTPUT_LIMIT",
        "PROCESS_LIMIT",
    }
    assert Outcome.SANDBOX_ERROR not in DETERMINISTIC  # the worker's problem, not the app's


def test_idle_check_compares_the_host_load_with_the_threshold() -> None:
    assert machine_idle(100.1, sample_s=0.05)  # load never exceeds 100 %
    assert not machine_idle(0.0, sample_s=0.05)
