"""Helpers shared by the SDK-backed command modules (not a command group: the leading
underscore keeps it out of the automatic registration)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from comptoir.cli.output import console
from comptoir.config import load_settings

if TYPE_CHECKING:
    from comptoir.sdk import ComptoirSync

WalletOpt = Annotated[
    str | None,
    typer.Option(
        "--wallet",
        "-w",
        help="Wallet name, or devnet:N for a devnet test account (default $COMPTOIR_WALLET, "
        "else your only wallet).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


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
    """Token units with thousands separators (and CPT for whole-token amounts)."""
    text = f"{amount:,}"
    if amount >= 10**15:
        text += f" ({amount / 10**18:,.4f} CPT)"
    return text


def parse_amount(raw: str) -> int:
    """An integer amount of token units: 1000, 1_000, 1e21, or 5CPT (5 x 10**18)."""
    from comptoir.exceptions import ConfigError

    text = raw.strip().replace("_", "").replace(",", "")
    try:
        if text.upper().endswith("CPT"):
            return int(float(text[:-3]) * 10**18)
        if "e" in text.lower():
            mantissa, _, exp = text.lower().partition("e")
            return int(float(mantissa) * 10 ** int(exp))
        return int(text)
    except ValueError:
        raise ConfigError(
            f"{raw!r} is not an amount; give token units (e.g. 1000) or tokens (e.g. 5CPT)."
        ) from None


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
