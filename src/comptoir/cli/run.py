"""comptoir run APP: buy executions of an app and get verified results.

Registered as a top-level command (``comptoir run``), not a group: a typer group cannot
take a positional argument of its own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from comptoir.cli._common import JsonOpt, WalletOpt, parse_tag, sdk
from comptoir.cli.app import app as _root
from comptoir.cli.output import console, print_json


def run(
    app_ref: Annotated[str, typer.Argument(metavar="APP", help="App id or name.")],
    volume: Annotated[int, typer.Option(help="Tasks in the bag (COMPTOIR_TASK_INDEX 0..N-1).")] = 1,
    args: Annotated[str, typer.Option(help="Arguments given to every task.")] = "",
    dataset: Annotated[str | None, typer.Option(help="Dataset id or name.")] = None,
    trust: Annotated[int, typer.Option(help="Trust level (replication by the pool).")] = 1,
    category: Annotated[str, typer.Option(help="Category id or name (XS, S, ..., TEST).")] = "0",
    max_price: Annotated[int | None, typer.Option(help="Most you pay per task.")] = None,
    tag: Annotated[str | None, typer.Option(help="Required features: gpu, tee.")] = None,
    workerpool: Annotated[str | None, typer.Option(help="Only this workerpool.")] = None,
    callback: Annotated[str | None, typer.Option(help="Contract receiving the result.")] = None,
    output: Annotated[Path, typer.Option(help="Where results are unpacked.")] = Path(
        "comptoir-results"
    ),
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for results.")] = None,
    wallet: WalletOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Buy executions of an app; prints each result once verified against the chain.

    Finds the cheapest compatible orders, signs the request, matches it on-chain, follows
    the tasks, downloads each result and checks its digest against the on-chain one.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from comptoir.sdk import Progress as Step
    from comptoir.sdk import TaskResult

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
            colour = {"verified": "green", "failed": "yellow", "claimed": "yellow"}.get(
                t.status, "red"
            )
            if not as_json:
                detail = t.preview or t.message
                bar.console.print(
                    f"task {t.index}: [{colour}]{t.status}[/{colour}]  {detail}".rstrip()
                )
        elif step.stage in ("searching", "matched", "waiting") and not as_json:
            bar.console.print(step.message)

    with sdk(wallet) as c, bar:
        for task in c.run(
            app_ref,
            dataset=dataset or 0,
            args=args,
            volume=volume,
            trust=trust,
            category=category,
            max_price=max_price,
            tag=parse_tag(tag),
            workerpool=workerpool or 0,
            callback=callback,
            output=output,
            timeout=timeout,
            on_progress=on_progress,
        ):
            results.append(task)
    if as_json:
        print_json([r.to_json() for r in sorted(results, key=lambda r: (r.deal_id, r.index))])
    else:
        ok = sum(r.status == "verified" for r in results)
        colour = "green" if ok == len(results) else "yellow"
        console.print(
            f"[{colour}]{ok}/{len(results)} task(s) verified against the chain;[/{colour}] "
            f"results in {output}/"
        )
    if any(r.status == "mismatch" for r in results):
        raise typer.Exit(3)
    unavailable = [r for r in results if r.status == "unavailable"]
    if unavailable:
        from rich.markup import escape

        from comptoir.cli.output import err_console

        err_console.print(
            f"[red]{len(unavailable)} result(s) settled on-chain could not be fetched "
            f"({escape(unavailable[0].message or 'no copy found')}); retry later with "
            f"'comptoir result get {unavailable[0].task_id}'.[/red]"
        )
        raise typer.Exit(4)


_root.command("run")(run)
