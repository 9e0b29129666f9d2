"""SDK pieces that need no chain: exact amounts, asset references, keystore import, and the
blocking facade's methods matching the async client's."""

from __future__ import annotations

import inspect
import json
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account

from comptoir.config import load_settings
from comptoir.exceptions import ConfigError, InvalidAmount, WalletError
from comptoir.sdk import Comptoir, ComptoirSync, import_keystore, load_wallet, parse_amount
from comptoir.sdk.amounts import MAX_UINT256, format_units, parse_value
from comptoir.sdk.names import AssetRef, parse_ref

PASSWORD = "correct horse battery"


@pytest.mark.parametrize(
    ("typed", "units"),
    [
        ("1000", 1000),
        ("1_000", 1000),
        ("1,000", 1000),
        ("1e21", 10**21),
        ("1.1CPT", 1_100_000_000_000_000_000),  # a float would give ...000128
        ("1.1 cpt", 1_100_000_000_000_000_000),
        ("0.000000000000000001CPT", 1),
        (str(MAX_UINT256), MAX_UINT256),
        (7, 7),
        (Decimal("12"), 12),
    ],
)
def test_amounts_are_exact(typed: str | int | Decimal, units: int) -> None:
    assert parse_amount(typed) == units


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("-1", "cannot be negative"),
        ("-0.5CPT", "cannot be negative"),
        (-3, "cannot be negative"),
        ("1.5", "not a whole number of token units"),
        ("0.0000000000000000001CPT", "more than 18 decimals"),
        (str(MAX_UINT256 + 1), "does not fit in 256 bits"),
        ("1e100000", "does not fit in 256 bits"),
        ("nan", "is not an amount"),
        ("five", "is not an amount"),
        ("1ETH", "not ether"),
    ],
)
def test_bad_amounts_are_one_sentence(typed: str | int, message: str) -> None:
    with pytest.raises(InvalidAmount, match=message):
        parse_amount(typed)


def test_ether_and_display() -> None:
    assert parse_value("0.25ETH") == (250_000_000_000_000_000, "ETH")
    assert format_units(1_100_000_000_000_000_000) == "1,100,000,000,000,000,000 (1.1 CPT)"
    assert format_units(42) == "42"


def test_asset_references() -> None:
    owner = "0x" + "ab" * 20
    assert parse_ref(12) == AssetRef(asset=12)
    assert parse_ref("12") == AssetRef(asset=12)
    assert parse_ref("primes") == AssetRef(name="primes")
    ref = parse_ref(f"primes@{owner}")
    assert ref.name == "primes" and ref.owner is not None and ref.owner.lower() == owner
    assert parse_ref("me@home") == AssetRef(name="me@home")  # not an address: part of the name
    with pytest.raises(ConfigError, match="not an address"):
        parse_ref("primes@0x1234")


def test_geth_and_foundry_keystores_import(tmp_path: Path) -> None:
    settings = load_settings({"COMPTOIR_HOME": str(tmp_path / "home")})
    geth_key, forge_key = Account.create(), Account.create()
    geth = tmp_path / f"UTC--2026-12-01T00-00-00.0Z--{geth_key.address[2:].lower()}"
    geth.write_text(json.dumps(Account.encrypt(geth_key.key, PASSWORD, kdf="pbkdf2")))
    forge_json = Account.encrypt(forge_key.key, PASSWORD, kdf="scrypt")
    del forge_json["address"]
    forge = tmp_path / "forge"
    forge.write_text(json.dumps(forge_json))
    assert import_keystore(settings, geth, "geth", PASSWORD).address == geth_key.address
    assert import_keystore(settings, forge, "forge", PASSWORD).address == forge_key.address
    # saved re-encrypted under the same password
    assert load_wallet(settings, "forge", PASSWORD).address == forge_key.address
    with pytest.raises(WalletError, match="Wrong password for the keystore"):
        import_keystore(settings, geth, "again", "not the password")
    (tmp_path / "v1.json").write_text(json.dumps({"version": 1, "crypto": {}}))
    with pytest.raises(WalletError, match="not a version 3 keystore"):
        import_keystore(settings, tmp_path / "v1.json", "old", PASSWORD)
    with pytest.raises(WalletError, match="No keystore file"):
        import_keystore(settings, tmp_path / "missing", "none", PASSWORD)


def _public_async_methods() -> dict[str, inspect.Signature]:
    out = {}
    for name, fn in inspect.getmembers(Comptoir, inspect.isfunction):
        if name.startswith("_") or name in ("aclose", "chain"):
            continue
        if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
            out[name] = inspect.signature(fn)
    return out


def test_the_sync_facade_has_every_method_with_the_same_signature() -> None:
    assert "__getattr__" not in vars(ComptoirSync)  # real methods, not a proxy
    methods = _public_async_methods()
    assert {"run", "deposit", "cancel_order", "claim_deal", "deals", "send"} <= set(methods)
    for name, signature in methods.items():
        twin = getattr(ComptoirSync, name, None)
        assert twin is not None, f"ComptoirSync lacks {name}"
        assert inspect.signature(twin).parameters == signature.parameters, name
