"""comptoir deal show|list|claim."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import (
    JsonOpt,
    WalletOpt,
    print_claimed,
    print_rows,
    sdk,
    units,
    wallet_address,
)
from comptoir.cli.output import console, print_json, print_table

app = typer.Typer(help="Inspect, list and claim deals.", no_args_is_help=True)

DealArg = Annotated[str, typer.Argument(help="Deal id (0x + 64 hex).")]


@app.command()
def show(deal_id: DealArg, as_json: JsonOpt = False) -> None:
    """A deal's terms and the state of each of its tasks ("expired, claimable" once its
    final deadline passed unsettled)."""
    with sdk(need_account=False) as c:
        deal = c.deal(deal_id)
    if as_json:
        print_json(deal.to_json())
        return
    print_rows(
        [
            ("deal", deal.deal_id),
            ("requester", deal.requester),
            ("app / dataset / workerpool", f"{deal.app} / {deal.dataset} / {deal.workerpool}"),
            ("category / trust", f"{deal.category} / {deal.trust}"),
            ("price per task", units(deal.task_price)),
            ("tasks settled", f"{deal.settled}/{deal.volume}"),
            ("params", deal.params or "(none)"),
        ],
        title="Deal",
    )
    for t in deal.tasks:
        console.print(f"  {t.index:>4}  {t.task_id}  {t.status}  {t.digest or ''}".rstrip())
    if any(t.status == "expired, claimable" for t in deal.tasks):
        console.print(f"Claim the refund with 'comptoir deal claim {deal.deal_id}'.")


@app.command("list")
def list_(
    as_: Annotated[
        str, typer.Option("--as", help="Your role: requester, pool (scheduler) or worker.")
    ] = "requester",
    address: Annotated[str | None, typer.Option(help="Any address (no wallet needed).")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Your deals, newest first, with how many tasks settled and whether they expired."""
    who = address or wallet_address(wallet)
    with sdk(need_account=False) as c:
        found = c.deals(as_, who)
    if as_json:
        print_json([d.to_json() for d in found])
        return
    if not found:
        console.print(f"No deal has {who} as {as_}.")
        return
    rows = [
        [
            d.deal_id,
            str(d.app),
            str(d.workerpool),
            f"{d.finalized + d.claimed}/{d.volume}",
            units(d.task_price),
            d.state,
        ]
        for d in found
    ]
    columns = ["deal", "app", "pool", "tasks done", "price", "state"]
    print_table(f"Deals of {who} as {as_}", columns, rows)


@app.command()
def claim(deal_id: DealArg, wallet: WalletOpt = None, as_json: JsonOpt = False) -> None:
    """Refund the unsettled tasks of a deal past its final deadline (anyone may claim; the
    requester gets the price back)."""
    with sdk(wallet) as c:
        print_claimed(c.claim_deal(deal_id), as_json)
