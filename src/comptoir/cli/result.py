"""comptoir result get TASK_ID: download a result and verify it against the chain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, sdk
from comptoir.cli.output import console, print_json, print_tails

app = typer.Typer(help="Download and verify results.", no_args_is_help=True)


@app.command()
def get(
    task_id: Annotated[str, typer.Argument(help="Task id (0x + 64 hex).")],
    output: Annotated[
        Path | None, typer.Option(help="Where to unpack it (default $COMPTOIR_HOME/results).")
    ] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Fetch a settled task's result and check its digest against the on-chain one.

    A sealed result (computed on a dataset, or asked with 'run --seal') and the app's
    logs are encrypted to the requester (the logs also to the app's owner, the result
    to a callback's owner when the request names them): pass one of their wallets."""
    with sdk(wallet, need_account=False) as c:
        r = c.result(task_id, output)
    if as_json:
        print_json(r.to_json())
    else:
        colour = "green" if r.status == "verified" else "yellow"
        console.print(f"task {r.index}: [{colour}]{r.status}[/{colour}] ({r.message})")
        if r.path:
            console.print(f"files in {r.path}: {', '.join(r.files) or '(none)'}")
        if r.stdout or r.stderr:
            print_tails(r.stdout, r.stderr)
    if r.status == "mismatch":
        raise typer.Exit(3)
