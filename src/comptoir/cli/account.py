"""comptoir account deposit|withdraw|show: the escrow balance deals are paid from."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import (
    JsonOpt,
    WalletOpt,
    parse_amount,
    print_rows,
    print_transactions,
    sdk,
    units,
    wallet_address,
)
from comptoir.cli.output import print_json, success

app = typer.Typer(help="Deposit, withdraw and show escrow balances.", no_args_is_help=True)

Amount = Annotated[str, typer.Argument(help="Token units (1000, 1e21) or tokens (1.5CPT), exact.")]


def _show(balance: object, as_json: bool) -> None:
    from comptoir.sdk import Balance
    from comptoir.sdk.amounts import format_ether

    assert isinstance(balance, Balance)
    if as_json:
        print_json(balance.to_json())
        return
    print_rows(
        [
            ("address", balance.address),
            ("free (escrow)", units(balance.free)),
            ("locked in deals", units(balance.locked)),
            ("staked (scheduler)", units(balance.staked)),
            ("wallet tokens", units(balance.wallet)),
            ("ether (gas)", format_ether(balance.eth)),
        ]
    )


# a negative amount ("-1") reaches the amount's own check instead of reading as an option
_AMOUNT_ARGS = {"ignore_unknown_options": True}


@app.command(context_settings=_AMOUNT_ARGS)
def deposit(amount: Amount, wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Move tokens from your wallet into the escrow (approves the hub first if needed)."""
    value = parse_amount(amount)
    with sdk(wallet) as c:
        balance = c.deposit(value)
        hashes = list(c.transactions)
    if not as_json:
        success(f"Deposited {units(value)} token units.")
        print_transactions(hashes)
    _show(balance, as_json)


@app.command(context_settings=_AMOUNT_ARGS)
def withdraw(amount: Amount, wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Move free tokens from the escrow back to your wallet."""
    value = parse_amount(amount)
    with sdk(wallet) as c:
        balance = c.withdraw(value)
        hashes = list(c.transactions)
    if not as_json:
        success(f"Withdrew {units(value)} token units.")
        print_transactions(hashes)
    _show(balance, as_json)


@app.command()
def show(
    wallet: WalletOpt = None,
    address: Annotated[str | None, typer.Option(help="Any address (no wallet needed).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Free balance, tokens locked in unsettled deals, and wallet tokens."""
    with sdk(need_account=False) as c:
        balance = c.balance(address or wallet_address(wallet))
    _show(balance, as_json)
