"""comptoir wallet create|import|show|list|send: encrypted keystores in <home>/wallets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import (
    JsonOpt,
    WalletOpt,
    new_password,
    print_rows,
    prompt_password,
    sdk,
    wallet_address,
)
from comptoir.cli.output import console, print_json, success
from comptoir.config import load_settings

app = typer.Typer(help="Create, import and show wallets (encrypted keys).", no_args_is_help=True)

NameOpt = Annotated[
    str | None, typer.Option("--name", "-n", help="Wallet name (default 'default').")
]


@app.command()
def create(name: NameOpt = None, as_json: JsonOpt = False) -> None:
    """Create a new random key, encrypted with a password (prompted, or $COMPTOIR_PASSWORD)."""
    settings = load_settings()
    from comptoir.sdk import create_wallet

    info = create_wallet(settings, name or "default", new_password())
    if as_json:
        print_json({"name": info.name, "address": info.address, "path": info.path})
        return
    success(f"Wallet {info.name!r} created: {info.address}")
    console.print(f"Keystore: {info.path} (keep a copy and remember the password).")


@app.command("import")
def import_(
    name: NameOpt = None,
    key: Annotated[
        str | None,
        typer.Option(help="Private key (hex); prompted, or $COMPTOIR_PRIVATE_KEY, if omitted."),
    ] = None,
    keystore: Annotated[
        Path | None,
        typer.Option(
            help="An encrypted v3 keystore instead: a geth UTC--... file or a foundry "
            "keystore; decrypted with its password ($COMPTOIR_KEYSTORE_PASSWORD or "
            "prompted) and saved with the same one."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Import an existing private key, or a geth/foundry keystore, into a wallet."""
    settings = load_settings()
    from comptoir.sdk import import_keystore, import_wallet

    if keystore is not None:
        if key:
            from comptoir.exceptions import WalletError

            raise WalletError("Give either --key or --keystore, not both.")
        if not keystore.is_file():  # before asking a password for nothing
            from comptoir.exceptions import WalletError

            raise WalletError(
                f"No keystore file at {keystore}; give the path of a geth UTC--... file or "
                "a foundry keystore."
            )
        secret = os.environ.get("COMPTOIR_KEYSTORE_PASSWORD") or str(
            typer.prompt("Keystore password", hide_input=True)
        )
        info = import_keystore(settings, keystore, name or "default", secret)
    else:
        key = (
            key
            or os.environ.get("COMPTOIR_PRIVATE_KEY")
            or typer.prompt("Private key", hide_input=True)
        )
        info = import_wallet(settings, key, name or "default", new_password())
    if as_json:
        print_json({"name": info.name, "address": info.address, "path": info.path})
        return
    success(f"Wallet {info.name!r} imported: {info.address}")


@app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="Wallet name (default: your wallet).")] = None,
    public_key: Annotated[
        bool,
        typer.Option(
            help="Print its public key instead (the password is asked): what a requester "
            "passes to 'run --app-owner-key' or '--seal-to-callback-owner' to share logs "
            "or results with you."
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show a wallet's address (no password needed), or its public key."""
    settings = load_settings()
    from comptoir.sdk import show_wallet

    if public_key:
        _print_public_key(name, as_json)
        return
    info = show_wallet(settings, name)
    if as_json:
        print_json({"name": info.name, "address": info.address, "path": info.path})
        return
    print_rows([("name", info.name), ("address", info.address), ("keystore", info.path)])


def _print_public_key(name: str | None, as_json: bool) -> None:
    from comptoir.apps.sealed import compressed, public_key_of
    from comptoir.sdk import resolve_account

    account = resolve_account(load_settings(), name, prompt_password)
    key = "0x" + compressed(public_key_of(bytes(account.key))).hex()
    if as_json:
        print_json({"address": account.address, "public_key": key})
        return
    print_rows([("address", account.address), ("public key", key)])


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """List the wallets of this home."""
    settings = load_settings()
    from comptoir.sdk import list_wallets

    found = list_wallets(settings)
    if as_json:
        print_json([{"name": w.name, "address": w.address} for w in found])
        return
    if not found:
        console.print("No wallet yet; create one with 'comptoir wallet create'.")
    for w in found:
        console.print(f"{w.name}  {w.address}")


@app.command(context_settings={"ignore_unknown_options": True})  # "-1" reaches the amount check
def send(
    to: Annotated[str, typer.Argument(help="Address, wallet name or devnet:N to send to.")],
    amount: Annotated[
        str, typer.Argument(help="Tokens (1000 units, 5CPT) or ether (0.1ETH), exact.")
    ],
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send wallet tokens or ether (not the escrow's free balance: see 'account withdraw')."""
    from comptoir.sdk.lifecycle import describe_sent

    dest = to if to.lower().startswith("0x") else wallet_address(to)
    with sdk(wallet) as c:
        sent = c.send(dest, amount)
    if as_json:
        print_json(sent.to_json())
        return
    success(describe_sent(sent))
