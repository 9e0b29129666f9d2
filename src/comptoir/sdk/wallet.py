"""Wallets: encrypted keystores (Web3 Secret Storage, scrypt) in ``<home>/wallets``.

An *account spec* names the key to sign with:

- a wallet name (``alice``), decrypted with the password;
- ``devnet:N``: the devnet's well-known test account N (anvil's mnemonic; test chains only);
- nothing: the ``COMPTOIR_WALLET`` variable, else the only wallet, else the one named
  ``default``.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from comptoir.config import Settings
from comptoir.exceptions import UnknownNameError, WalletError

DEFAULT_WALLET = "default"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
PasswordSource = str | Callable[[], str] | None


@dataclass(frozen=True)
class WalletInfo:
    name: str
    address: str
    path: Path


def wallets_dir(settings: Settings) -> Path:
    return settings.home / "wallets"


def _path(settings: Settings, name: str) -> Path:
    if not _NAME.match(name):
        raise WalletError(
            f"{name!r} is not a valid wallet name; use letters, digits, '.', '_' or '-'."
        )
    return wallets_dir(settings) / f"{name}.json"


def _password(source: PasswordSource, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if isinstance(source, str):
        return source
    if env.get("COMPTOIR_PASSWORD"):
        return env["COMPTOIR_PASSWORD"]
    if source is not None:
        return source()
    raise WalletError("A wallet password is needed; set COMPTOIR_PASSWORD or pass one.")


def _save(settings: Settings, name: str, account: LocalAccount, password: str) -> WalletInfo:
    if len(password) < 8:
        raise WalletError("The wallet password must be at least 8 characters long.")
    path = _path(settings, name)
    if path.exists():
        raise WalletError(f"A wallet named {name!r} already exists at {path}; pick another name.")
    path.parent.mkdir(parents=True, exist_ok=True)
    keystore = Account.encrypt(account.key, password)
    # write-then-rename, owner-only: a half-written keystore would lose the key
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(keystore, fh)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    return WalletInfo(name, str(account.address), path)


def create_wallet(
    settings: Settings, name: str = DEFAULT_WALLET, password: PasswordSource = None
) -> WalletInfo:
    """A fresh random key, saved encrypted under `name`."""
    return _save(settings, name, Account.create(), _password(password))


def import_wallet(
    settings: Settings,
    private_key: str,
    name: str = DEFAULT_WALLET,
    password: PasswordSource = None,
) -> WalletInfo:
    """Save an existing private key (hex) encrypted under `name`."""
    try:
        account = Account.from_key(private_key.strip())
    except (ValueError, TypeError):
        raise WalletError(
            "That is not a valid private key; give 32 bytes as 64 hex digits (0x optional)."
        ) from None
    return _save(settings, name, account, _password(password))


MAX_KEYSTORE_BYTES = 64 * 1024  # a v3 keystore is about 500 bytes


def import_keystore(
    settings: Settings,
    source: str | Path,
    name: str = DEFAULT_WALLET,
    password: PasswordSource = None,
    new_password: PasswordSource = None,
) -> WalletInfo:
    """Import an encrypted Web3 Secret Storage (v3) keystore: a geth ``UTC--...`` file or a
    foundry (``cast wallet``) keystore, scrypt or pbkdf2. It is decrypted with its own
    `password` and saved under `name`, encrypted with `new_password` (default: the same)."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise WalletError(f"No keystore file at {path}; give the path of a UTC--... or JSON file.")
    if path.stat().st_size > MAX_KEYSTORE_BYTES:
        raise WalletError(f"{path} is too large to be a keystore; give a v3 keystore JSON file.")
    try:
        keystore = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):
        raise WalletError(f"{path} is not JSON; give a v3 keystore (geth or foundry).") from None
    crypto = keystore.get("crypto", keystore.get("Crypto")) if isinstance(keystore, dict) else None
    if not isinstance(crypto, dict) or keystore.get("version") != 3:
        raise WalletError(
            f"{path} is not a version 3 keystore; export one with geth or 'cast wallet'."
        )
    secret = _password(password)
    try:
        key = Account.decrypt(keystore, secret)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WalletError(
                f"Wrong password for the keystore {path.name}; check it and retry."
            ) from None
        raise WalletError(f"The keystore {path.name} cannot be read ({exc}).") from None
    account = Account.from_key(key)
    return _save(
        settings, name, account, secret if new_password is None else _password(new_password)
    )


def list_wallets(settings: Settings) -> list[WalletInfo]:
    out = []
    for path in sorted(wallets_dir(settings).glob("*.json")):
        try:
            address = to_checksum_address("0x" + json.loads(path.read_text())["address"])
        except (ValueError, KeyError, TypeError):
            continue
        out.append(WalletInfo(path.stem, address, path))
    return out


def default_wallet_name(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get("COMPTOIR_WALLET"):
        return env["COMPTOIR_WALLET"]
    found = list_wallets(settings)
    if len(found) == 1:
        return found[0].name
    if not found:
        raise WalletError(
            "No wallet exists yet; create one with 'comptoir wallet create' "
            "(or import a key with 'comptoir wallet import')."
        )
    if any(w.name == DEFAULT_WALLET for w in found):
        return DEFAULT_WALLET
    raise WalletError(
        f"Several wallets exist ({', '.join(w.name for w in found)}); choose one with "
        "--wallet or COMPTOIR_WALLET."
    )


def show_wallet(settings: Settings, name: str | None = None) -> WalletInfo:
    """Name, address and file of a wallet (no password needed)."""
    name = name or default_wallet_name(settings)
    for w in list_wallets(settings):
        if w.name == name:
            return w
    raise UnknownNameError("wallet", name, [w.name for w in list_wallets(settings)])


def load_wallet(settings: Settings, name: str, password: PasswordSource = None) -> LocalAccount:
    info = show_wallet(settings, name)
    try:
        keystore = json.loads(info.path.read_text())
        key = Account.decrypt(keystore, _password(password))
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise WalletError(
                f"Wrong password for wallet {name!r}; check COMPTOIR_PASSWORD and retry."
            ) from None
        raise WalletError(f"The wallet file {info.path} is malformed ({exc}).") from None
    return Account.from_key(key)


def devnet_account(index: int | str) -> LocalAccount:
    """Test account `index` of the devnet mnemonic (never use it on a real chain)."""
    from comptoir.devnet import ANVIL_MNEMONIC

    if isinstance(index, str) and not index.isdigit():
        raise WalletError(f"devnet:{index} is not a devnet account; write devnet:0, devnet:1...")
    return Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{int(index)}")


def resolve_account(
    settings: Settings, spec: str | None = None, password: PasswordSource = None
) -> LocalAccount:
    """The account an account spec names (see the module docstring)."""
    if spec and spec.startswith("devnet:"):
        return devnet_account(spec.removeprefix("devnet:"))
    return load_wallet(settings, spec or default_wallet_name(settings), password)
