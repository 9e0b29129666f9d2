"""comptoir deal show DEAL_ID."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, print_rows, sdk
from comptoir.cli.output import console, print_json

app = typer.Typer(help="Inspect deals.", no_args_is_help=True)


@app.command()
def show(
    deal_id: Annotated[str, typer.Argument(help="Deal id (0x + 64 hex).")],
    as_json: JsonOpt = False,
) -> None:
    """A deal's terms and the state of each of its tasks."""
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
            ("price per task", deal.task_price),
            ("tasks settled", f"{deal.settled}/{deal.volume}"),
            ("params", deal.params or "(none)"),
        ],
        title="Deal",
    )
    for t in deal.tasks:
        console.print(f"  {t.index:>4}  {t.task_id}  {t.status}  {t.digest or ''}".rstrip())
