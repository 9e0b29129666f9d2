"""comptoir order cancel HASH: withdraw one of your orders for good."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, print_transactions, sdk
from comptoir.cli.output import console, print_json, success

app = typer.Typer(help="Cancel your signed orders.", no_args_is_help=True)


@app.command()
def cancel(
    order_hash: Annotated[str, typer.Argument(metavar="HASH", help="Order hash (0x + 64 hex).")],
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel an order on the hub (it can never match again) and delist it from the market."""
    with sdk(wallet) as c:
        done = c.cancel_order(order_hash)
        hashes = list(c.transactions)
    if as_json:
        print_json(done.to_json())
        return
    if done.onchain:
        success(f"Order {done.hash} cancelled on the hub and delisted.")
    else:
        console.print(f"Order {done.hash} was already filled or cancelled on-chain; delisted.")
    print_transactions(hashes)
