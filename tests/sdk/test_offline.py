"""SDK pieces that need no chain: wallets, configuration, result checks, app packaging."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from eth_account import Account

from comptoir.apps import result_archive
from comptoir.config import load_settings
from comptoir.exceptions import ConfigError, UnknownNameError, WalletError
from comptoir.sdk import (
    Config,
    build_app,
    create_wallet,
    import_wallet,
    init_app,
    list_wallets,
    load_wallet,
    resolve_account,
    show_wallet,
)
from comptoir.sdk.apps import app_determinism, read_app
from comptoir.sdk.config import parse_scheduler_urls
from comptoir.sdk.results import check_result

PASSWORD = "correct horse battery"


def test_wallet_round_trip(tmp_path: Path) -> None:
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path)})
    created = create_wallet(settings, "alice", PASSWORD)
    assert created.path.stat().st_mode & 0o777 == 0o600
    assert show_wallet(settings, "alice").address == created.address
    assert load_wallet(settings, "alice", PASSWORD).address == created.address
    assert "private" not in created.path.read_text()  # encrypted keystore only
    with pytest.raises(WalletError, match="Wrong password"):
        load_wallet(settings, "alice", "not the password")
    with pytest.raises(WalletError, match="already exists"):
        create_wallet(settings, "alice", PASSWORD)
    key = Account.create()
    imported = import_wallet(settings, key.key.hex(), "bob", PASSWORD)
    assert imported.address == key.address
    assert [w.name for w in list_wallets(settings)] == ["alice", "bob"]
    with pytest.raises(UnknownNameError, match="Did you mean 'alice'"):
        show_wallet(settings, "alicia")
    with pytest.raises(WalletError, match="Several wallets"):
        resolve_account(settings, None, PASSWORD)
    with pytest.raises(WalletError, match="not a valid private key"):
        import_wallet(settings, "0x1234", "carol", PASSWORD)
    assert resolve_account(settings, "devnet:1").address == (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    )


def test_config_from_environment(tmp_path: Path) -> None:
    env = {
        "COMPTOIR_HOME": str(tmp_path),
        "COMPTOIR_MARKET_URL": "http://m:1",
        "COMPTOIR_STORAGE_URL": "http://s:2",
        "COMPTOIR_SCHEDULER_URLS": "3=http://a:3, 7=https://b/",
    }
    config = Config.load(load_settings(env), env)
    assert config.market_url == "http://m:1" and config.key_url == "http://s:2"
    assert config.scheduler_url(3) == "http://a:3" and config.scheduler_url(7) == "https://b"
    with pytest.raises(ConfigError, match="malformed"):
        parse_scheduler_urls("pool=http://x")
    empty = Config.load(load_settings({"COMPTOIR_HOME": str(tmp_path)}), {})
    with pytest.raises(ConfigError, match="devnet up"):
        empty.need_market()


def _archive(files: dict[str, bytes], tmp: Path) -> bytes:
    out = tmp / "out"
    out.mkdir()
    for name, data in files.items():
        (out / name).write_bytes(data)
    return result_archive(out)


def test_result_check_catches_tampering(tmp_path: Path) -> None:
    body = b'{"primes": 1229}\n'
    blob = _archive({"result.json": body, "log.txt": b"varies"}, tmp_path)
    digest = hashlib.sha256(body).digest()
    ok = check_result(blob, digest, tmp_path / "a", "result.json")
    assert ok.status == "verified" and set(ok.files) == {"result.json", "log.txt"}
    bad = check_result(blob, hashlib.sha256(b"other").digest(), tmp_path / "b", "result.json")
    assert bad.status == "mismatch" and "not the on-chain" in bad.message
    # a failure record (what workers agree on when the app fails) is checked too
    record = json.dumps({"kind": "comptoir-task-failure", "status": "TIMEOUT", "version": 1})
    failed = check_result(
        record.encode(), hashlib.sha256(record.encode()).digest(), tmp_path / "c", None
    )
    assert failed.status == "failed" and "TIMEOUT" in failed.message
    # an archive with a link inside is refused, never unpacked
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        link = tarfile.TarInfo("evil")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    evil = check_result(gzip.compress(raw.getvalue()), digest, tmp_path / "d", None)
    assert evil.status == "mismatch" and not (tmp_path / "d" / "evil").exists()


def test_sample_app_builds_reproducibly(tmp_path: Path) -> None:
    src = init_app(tmp_path / "app", "demo")
    first = build_app(src, tmp_path / "one.tgz")
    second = build_app(src, tmp_path / "two.tgz")
    assert first.checksum == second.checksum and first.kind == "bundle"
    assert first.determinism == "result.json"
    assert read_app(first.path).checksum == first.checksum
    assert app_determinism(first.path.read_bytes(), first.app_type) == "result.json"
    with pytest.raises(Exception, match="not empty"):
        init_app(src)
