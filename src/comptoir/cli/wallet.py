"""comptoir wallet create|import|show|list: encrypted keystores in <home>/wallets."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, new_password, print_rows
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
) -> None:
    """Import an existing private key into an encrypted wallet."""
    settings = load_settings()
    from comptoir.sdk import import_wallet

    key = (
        key
        or os.environ.get("COMPTOIR_PRIVATE_KEY")
        or typer.prompt("Private key", hide_input=True)
    )
    info = import_wallet(settings, key, name or "default", new_password())
    success(f"Wallet {info.name!r} imported: {info.address}")


@app.command()
def show(
    name: Annotated[str | None, typer.Argument(help="Wallet name (default: your wallet).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show a wallet's address (no password needed)."""
    settings = load_settings()
    from comptoir.sdk import show_wallet

    info = show_wallet(settings, name)
    if as_json:
        print_json({"name": info.name, "address": info.address, "path": info.path})
        return
    print_rows([("name", info.name), ("address", info.address), ("keystore", info.path)])


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
