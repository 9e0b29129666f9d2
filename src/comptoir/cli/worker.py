"""comptoir worker run|list: contribute computing time to a workerpool, or see who does."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, parse_amount, sdk, units
from comptoir.cli.output import console, print_json, print_table

app = typer.Typer(help="Run a worker agent for a workerpool.", no_args_is_help=True)


@app.command()
def run(
    scheduler: Annotated[
        str | None, typer.Option(help="The pool's scheduler URL (or give --pool).")
    ] = None,
    pool: Annotated[
        str | None, typer.Option(help="Workerpool (id or name) whose scheduler URL is known.")
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Work folder (cache, journal).")] = None,
    idle_only: Annotated[bool, typer.Option(help="Volunteer mode: only when idle.")] = False,
    deposit: Annotated[
        str | None,
        typer.Option(help="Tokens to move into the escrow first, as stake (100CPT, 1000)."),
    ] = None,
    wallet: WalletOpt = None,
) -> None:
    """Register with the pool, pull tasks, run them sandboxed, contribute results."""
    from comptoir.exceptions import ConfigError
    from comptoir.sdk import run_worker

    if scheduler is None and pool is None:
        raise ConfigError("Give the pool to join with --pool ID (or its --scheduler URL).")
    with sdk(wallet) as c:
        config, account = c.config, c.account
        pool_id = c.resolve("workerpool", pool) if pool is not None and not scheduler else None
        url = scheduler or (c.scheduler_url(pool_id) if pool_id is not None else None)
        if url and deposit is not None:  # the stake schedulers require, in the same command
            free = c.deposit(parse_amount(deposit, "deposit")).free
            console.print(f"Deposited; {units(free)} token units free in the escrow to stake.")
    if not url:
        raise ConfigError(
            f"Workerpool {pool} records no endpoint on-chain; ask its owner to run 'comptoir "
            "pool advertise', or give its --scheduler URL."
        )
    assert account is not None
    console.print(f"Worker {account.address} serving {url} (Ctrl-C stops it).")
    run_worker(config, account, url, work_dir=work_dir, idle_only=idle_only)


@app.command("list")
def list_(
    pool: Annotated[str, typer.Option(help="Workerpool: id, NAME or NAME@0xOWNER.")],
    as_json: JsonOpt = False,
) -> None:
    """The workers registered with a pool's scheduler: online, score, capabilities."""
    with sdk(need_account=False) as c:
        found = c.pool_workers(pool)
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("No worker has registered with this pool yet.")
        return
    rows = [
        [
            str(w.get("address")),
            "yes" if w.get("online") else "no",
            str(w.get("score")),
            str(w.get("weight")),
            str(w.get("cpus")),
            "yes" if w.get("gpu") else "no",
            str(w.get("cached")),
        ]
        for w in found
    ]
    print_table("Workers", ["address", "online", "score", "weight", "cpus", "gpu", "cached"], rows)
