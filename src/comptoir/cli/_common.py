"""Helpers shared by the SDK-backed command modules (not a command group: the leading
underscore keeps it out of the automatic registration)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from comptoir.cli.output import console
from comptoir.config import Settings, load_settings

if TYPE_CHECKING:
    from comptoir.sdk import Claimed, ComptoirSync

WalletOpt = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        "-w",
        help="Wallet name, or devnet:N for a devnet test account (default $COMPTOIR_WALLET, "
        "else your only wallet).",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Machine-readable output (errors too, as JSON).")
]
AmountHelp = "Token units (1000, 1e21) or tokens (1.5CPT), exact."
PriceOpt = Annotated[str, typer.Option(help="Price per task: " + AmountHelp)]
Ref = "id, NAME, or NAME@0xOWNER"
ListenHelp = "Listen address: this host's address others reach, or 0.0.0.0 for all."


def serving(what: str, host: str, port: int) -> Settings:
    """The settings of a network service about to listen: refused in one sentence where
    the protocol is not deployed; prints where it answers."""
    from comptoir.chain.client import ChainClient

    settings = load_settings()
    hub = ChainClient.from_settings(settings).deployment.hub
    console.print(f"{what} of hub {hub} on http://{host}:{port} (Ctrl-C stops it).")
    return settings


def prompt_password() -> str:
    return str(typer.prompt("Wallet password", hide_input=True))


def new_password() -> str:
    if os.environ.get("COMPTOIR_PASSWORD"):
        return os.environ["COMPTOIR_PASSWORD"]
    return str(typer.prompt("New wallet password", hide_input=True, confirmation_prompt=True))


def sdk(wallet: str | None = None, need_account: bool = True) -> ComptoirSync:
    """The blocking SDK for the chosen wallet (None: read-only when allowed)."""
    settings = load_settings()  # bad configuration fails before the slow imports
    from comptoir.sdk import ComptoirSync, resolve_account

    account = None
    if need_account or wallet:
        account = resolve_account(settings, wallet, prompt_password)
    return ComptoirSync(settings, account)


def wallet_address(wallet: str | None) -> str:
    """The address of a wallet without decrypting it (read-only commands)."""
    settings = load_settings()
    from comptoir.sdk import devnet_account, show_wallet

    if wallet and wallet.startswith("devnet:"):
        return str(devnet_account(wallet.removeprefix("devnet:")).address)
    return show_wallet(settings, wallet).address


def units(amount: int) -> str:
    """Token units with thousands separators (and the exact CPT amount when large)."""
    from comptoir.sdk.amounts import format_units

    return format_units(amount)


def parse_amount(raw: str, what: str = "amount") -> int:
    """An exact amount of token units: 1000, 1_000, 1e21, or 1.1CPT (1.1 x 10**18)."""
    from comptoir.sdk.amounts import parse_amount as exact

    return exact(raw, what)


def print_claimed(done: Claimed, as_json: bool) -> None:
    """What a claim refunded, and its transactions."""
    from comptoir.cli.output import print_json, success

    if as_json:
        print_json(done.to_json())
        return
    tasks = ", ".join(str(i) for i in done.indices)
    success(
        f"Claimed {len(done.indices)} task(s) ({tasks}) of deal {done.deal_id}: "
        f"{units(done.refunded)} token units back to the requester's free balance."
    )
    print_transactions(list(done.tx_hashes))


def print_transactions(hashes: list[str], as_json: bool = False) -> None:
    """Every transaction a command sent, so a user can look it up in an explorer."""
    if as_json:
        return
    for tx in hashes:
        console.print(f"transaction {tx}")


def parse_tag(raw: str | None) -> int:
    from comptoir.exceptions import ConfigError

    if not raw:
        return 0
    names = {"tee": 1, "gpu": 2}
    tag = 0
    for part in raw.lower().replace("+", ",").split(","):
        part = part.strip()
        if part in names:
            tag |= names[part]
        else:
            try:
                tag |= int(part, 0)
            except ValueError:
                raise ConfigError(
                    f"Unknown tag {part!r}; use gpu, tee, or a bitmask such as 0x2."
                ) from None
    return tag


def print_rows(rows: list[tuple[str, Any]], title: str | None = None) -> None:
    from comptoir.cli.output import key_value_table

    console.print(key_value_table(rows, title=title))
