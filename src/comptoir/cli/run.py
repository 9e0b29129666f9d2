"""comptoir run APP: request, match and follow a bag of tasks until verified.

Registered as a top-level command (``comptoir run``), not a group: a typer group cannot
take a positional argument of its own.

Exit status (for scripts; see docs/cli.md): 0 every task verified, 1 an error before or
while following, 3 a result does not match the chain, 4 the app failed, 5 a result could
not be fetched, 6 a task expired and was refunded, 130 interrupted (Ctrl-C). When several
apply, the most serious (lowest of 3..6) wins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from comptoir.cli._common import AmountHelp, JsonOpt, WalletOpt, parse_amount, parse_tag, sdk
from comptoir.cli.app import app as _root
from comptoir.cli.output import console

if TYPE_CHECKING:
    from comptoir.sdk import DealHandle, TaskResult

EXIT_MISMATCH, EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_REFUNDED = 3, 4, 5, 6
EXIT_INTERRUPTED = 130
EXIT_BY_STATUS = {
    "mismatch": EXIT_MISMATCH,
    "failed": EXIT_FAILED,
    "unavailable": EXIT_UNAVAILABLE,
    "claimed": EXIT_REFUNDED,
}


def exit_code(statuses: list[str]) -> int:
    """0 when every task is verified, else the code of the most serious outcome."""
    codes = [EXIT_BY_STATUS.get(s, EXIT_UNAVAILABLE) for s in statuses if s != "verified"]
    return min(codes, default=0)


def emit(event: str, **data: Any) -> None:
    """One JSON event per line, flushed at once: a script reads them as they happen."""
    print(json.dumps({"event": event, **data}, default=str), flush=True)


def _deal_event(d: DealHandle) -> dict[str, Any]:
    return {
        "deal_id": d.deal_id,
        "volume": d.volume,
        "task_price": d.deal.task_price,
        "workerpool": d.workerpool,
        "tx_hash": d.tx_hash,
        "tasks": [d.task_id(i) for i in range(d.volume)],
    }


def run(
    app_ref: Annotated[str, typer.Argument(metavar="APP", help="App: id, NAME or NAME@0xOWNER.")],
    volume: Annotated[int, typer.Option(help="Tasks in the bag (COMPTOIR_TASK_INDEX 0..N-1).")] = 1,
    args: Annotated[str, typer.Option(help="Arguments given to every task.")] = "",
    dataset: Annotated[str | None, typer.Option(help="Dataset id or name.")] = None,
    trust: Annotated[int, typer.Option(help="Trust level (replication by the pool).")] = 1,
    category: Annotated[str, typer.Option(help="Category id or name (XS, S, ..., TEST).")] = "0",
    max_price: Annotated[
        str | None, typer.Option(help="Most you pay per task: " + AmountHelp)
    ] = None,
    tag: Annotated[str | None, typer.Option(help="Required features: gpu, tee.")] = None,
    workerpool: Annotated[
        str | None, typer.Option(help="Only this workerpool (id or name).")
    ] = None,
    callback: Annotated[str | None, typer.Option(help="Contract receiving the result.")] = None,
    seal: Annotated[
        bool,
        typer.Option(help="Encrypt the results to your wallet (always done with a dataset)."),
    ] = False,
    app_owner_reads: Annotated[
        str | None,
        typer.Option(
            help="What the app's owner may decrypt: none, logs (the default without "
            "--dataset or --seal), or all (logs and result)."
        ),
    ] = None,
    app_owner_key: Annotated[
        str | None,
        typer.Option(
            help="The app owner's public key, when it signs its orders through a contract "
            "(it prints it with 'comptoir wallet show --public-key')."
        ),
    ] = None,
    seal_to_callback_owner: Annotated[
        str | None,
        typer.Option(
            metavar="PUBKEY",
            help="Also seal the result to the owner of --callback: its public key, checked "
            "against the contract's owner() (implies --seal).",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(help="Where results are unpacked (default $COMPTOIR_HOME/results)."),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for results.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Follow the tasks (--no-wait: print the deals and return).")
    ] = True,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Buy executions of an app; prints each result once verified against the chain.

    Finds the cheapest compatible orders, signs the request, matches it on-chain, follows
    the tasks, downloads each result and checks its digest against the on-chain one.
    Exits 0 only when every task is verified (3 mismatch, 4 failed, 5 unavailable,
    6 refunded, 130 interrupted). --json prints one JSON event per line.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from comptoir.sdk import Progress as Step

    results: list[TaskResult] = []
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=as_json,
        transient=True,
    )
    job = bar.add_task("tasks", total=volume)

    def on_progress(step: Step) -> None:
        if step.stage == "task" and step.task is not None:
            bar.update(job, completed=step.done)
            t = step.task
            if as_json:
                emit("task", **t.to_json())
                return
            colour = {"verified": "green", "failed": "yellow", "claimed": "yellow"}.get(
                t.status, "red"
            )
            detail = t.preview or t.message
            bar.console.print(f"task {t.index}: [{colour}]{t.status}[/{colour}]  {detail}".rstrip())
        elif step.stage in ("searching", "note", "waiting"):
            if as_json:
                emit(step.stage, message=step.message, total=step.total)
            else:
                bar.console.print(step.message)

    deals: list[DealHandle] = []
    with sdk(wallet) as c:
        out = output or c.config.settings.home / "results"
        try:
            with bar:
                deals = c.request(
                    app_ref,
                    dataset=dataset or 0,
                    args=args,
                    volume=volume,
                    trust=trust,
                    category=category,
                    max_price=parse_amount(max_price, "max price") if max_price else None,
                    tag=parse_tag(tag),
                    workerpool=workerpool or 0,
                    callback=callback,
                    on_progress=on_progress,
                    seal=seal,
                    app_owner_reads=app_owner_reads,
                    app_owner_key=app_owner_key,
                    callback_owner_key=seal_to_callback_owner,
                )
                for d in deals:
                    if as_json:
                        emit("matched", **_deal_event(d))
                    else:
                        bar.console.print(
                            f"deal {d.deal_id} of {d.volume} task(s) at {d.deal.task_price} "
                            f"per task with workerpool {d.workerpool} (transaction {d.tx_hash})"
                        )
                if not wait:
                    return
                for task in c.watch(deals, output=out, timeout=timeout, on_progress=on_progress):
                    results.append(task)
        except KeyboardInterrupt:
            _interrupted(deals, as_json)
    code = exit_code([r.status for r in results])
    ok = sum(r.status == "verified" for r in results)
    if as_json:
        emit("done", verified=ok, total=len(results), results=str(out), exit=code)
    else:
        colour = "green" if code == 0 else "yellow"
        console.print(
            f"[{colour}]{ok}/{len(results)} task(s) verified against the chain;[/{colour}] "
            f"results in {out}/"
        )
    unavailable = [r for r in results if r.status == "unavailable"]
    if unavailable and not as_json:
        from rich.markup import escape

        from comptoir.cli.output import err_console

        err_console.print(
            f"[red]{len(unavailable)} result(s) settled on-chain could not be fetched "
            f"({escape(unavailable[0].message or 'no copy found')}); retry later with "
            f"'comptoir result get {unavailable[0].task_id}'.[/red]"
        )
    if code:
        raise typer.Exit(code)


def _interrupted(deals: list[DealHandle], as_json: bool) -> None:
    ids = [d.deal_id for d in deals]
    if as_json:
        emit("interrupted", deals=ids, exit=EXIT_INTERRUPTED)
    elif ids:
        console.print(
            f"[yellow]Interrupted; the deal(s) keep running: follow them with 'comptoir deal "
            f"show {ids[0]}' and fetch results with 'comptoir result get TASK_ID'.[/yellow]"
        )
    else:
        console.print(
            "[yellow]Interrupted before a deal was reported; see 'comptoir deal list' for "
            "any deal the last transaction made.[/yellow]"
        )
    raise typer.Exit(EXIT_INTERRUPTED)


_root.command("run")(run)
