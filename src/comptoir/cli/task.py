"""comptoir task show TASK_ID [--watch] | task claim TASK_ID."""

from __future__ import annotations

from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, print_claimed, sdk
from comptoir.cli.output import console, print_json, print_tails

app = typer.Typer(help="Inspect and claim tasks.", no_args_is_help=True)


def _line(t: object) -> str:
    from comptoir.sdk import TaskStatus

    assert isinstance(t, TaskStatus)
    replicas = ", ".join(f"{r.get('worker', '?')[:10]}…:{r.get('status')}" for r in t.replicas)
    text = f"task {t.index} of deal {t.deal_id[:12]}…: [bold]{t.status}[/bold]"
    if t.reason:
        text += f" ({t.reason})"
    if t.digest:
        text += f"  digest {t.digest}"
    if replicas:
        text += f"  replicas [{replicas}]"
    if t.tx_hash:  # its own line: a hash must stay copyable, never wrapped
        text += f"\n  settled by transaction {t.tx_hash}"
    return text


@app.command()
def show(
    task_id: Annotated[str, typer.Argument(help="Task id (0x + 64 hex).")],
    watch: Annotated[bool, typer.Option(help="Follow it until it is settled.")] = False,
    logs: Annotated[
        bool,
        typer.Option(
            help="Also print the app's stdout/stderr tails (the requester's wallet, or the "
            "app owner's when the request shared them)."
        ),
    ] = False,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """A task's status: settled on-chain (digest), or its scheduler's view."""
    with sdk(wallet, need_account=logs) as c:
        if not watch:
            st = c.task(task_id)
            tails = c.logs(task_id) if logs else None
            if as_json:
                print_json({**st.to_json(), **({"logs": tails.to_json()} if tails else {})})
            else:
                console.print(_line(st))
                if tails is not None:
                    print_tails(tails.stdout, tails.stderr)
            return
        for st in c.watch_task(task_id):
            if as_json:
                print_json(st.to_json())
            else:
                console.print(_line(st))


@app.command()
def claim(
    task_id: Annotated[str, typer.Argument(help="Task id (0x + 64 hex).")],
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Refund one task past its deal's final deadline (anyone may claim)."""
    with sdk(wallet) as c:
        print_claimed(c.claim_task(task_id), as_json)
