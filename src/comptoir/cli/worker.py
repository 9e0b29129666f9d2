"""comptoir worker run: contribute computing time to a workerpool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import WalletOpt, sdk
from comptoir.cli.output import console

app = typer.Typer(help="Run a worker agent for a workerpool.", no_args_is_help=True)


@app.command()
def run(
    scheduler: Annotated[
        str | None, typer.Option(help="The pool's scheduler URL (or give --pool).")
    ] = None,
    pool: Annotated[
        int | None,
        typer.Option(help="Workerpool id: its scheduler is found from its on-chain endpoint."),
    ] = None,
    work_dir: Annotated[Path | None, typer.Option(help="Work folder (cache, journal).")] = None,
    idle_only: Annotated[bool, typer.Option(help="Volunteer mode: only when idle.")] = False,
    wallet: WalletOpt = None,
) -> None:
    """Register with the pool, pull tasks, run them sandboxed, contribute results."""
    from comptoir.exceptions import ConfigError
    from comptoir.sdk import run_worker

    if scheduler is None and pool is None:
        raise ConfigError("Give the pool to join with --pool ID (or its --scheduler URL).")
    with sdk(wallet) as c:
        config, account = c.config, c.account
        url = scheduler or (c.scheduler_url(pool) if pool is not None else None)
    if not url:
        raise ConfigError(
            f"Workerpool {pool} records no endpoint on-chain; ask its owner to run 'comptoir "
            "pool advertise', or give its --scheduler URL."
        )
    assert account is not None
    console.print(f"Worker {account.address} serving {url} (Ctrl-C stops it).")
    run_worker(config, account, url, work_dir=work_dir, idle_only=idle_only)
