"""Comptoir demo (``make demo``): a replicated bag of tasks on a local stack, end to end.

1. starts the whole stack in a temporary home: anvil with the protocol, storage and the
   dataset key service, the market, one workerpool with its scheduler, 4 workers, and
   the sample app ``primes`` with its app order;
2. a requester deposits tokens and runs ``primes`` as a bag of 5 tasks at trust 5 (with
   fresh workers of weight 2, a result is credible only when 3 of them agree: each task
   is computed by 3 workers);
3. each result is downloaded and checked against the digest settled on-chain: "verified";
4. shows who was paid what (escrow balances before and after, per party);
5. stops everything, also on Ctrl-C or failure.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from rich.console import Console
from rich.table import Table

VOLUME = 5
TRUST = 5  # 3 agreeing fresh workers (weight 2 each: 8 x 5 > 9 x 4); 2 are not enough
WORKERS = 4
DEPOSIT = 10_000

console = Console(highlight=False)


def _sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # same clean stop as Ctrl-C


def main() -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    home = Path(tempfile.mkdtemp(prefix="comptoir-demo-"))
    os.environ["COMPTOIR_HOME"] = str(home)
    os.environ.setdefault("COMPTOIR_DEVNET_PORT", "0")  # any free port
    for key in [k for k in os.environ if k.startswith("COMPTOIR_") and k.endswith("_URL")]:
        del os.environ[key]  # the demo's own stack, whatever the shell points at

    from comptoir import stack
    from comptoir.config import load_settings
    from comptoir.exceptions import ComptoirError

    settings = load_settings()
    started = time.monotonic()
    console.rule("[bold]Comptoir demo")
    console.print(f"state in {home}")
    try:
        with console.status("Starting the local stack...") as spinner:
            stack.up(settings, workers=WORKERS, notify=lambda m: spinner.update(m))
        console.print(f"local stack up in {time.monotonic() - started:.1f} s:")
        for s in stack.status(settings):
            console.print(f"  {s.name:<10} pid {s.pid:<7} {s.url or s.address}")
        run_demo(settings)
    except KeyboardInterrupt:
        console.print("[yellow]Interrupted; stopping the stack.[/yellow]")
        return 130
    except ComptoirError as exc:
        console.print(f"[red]{exc}[/red]")
        return 1
    finally:
        with console.status("Stopping the local stack..."):
            stopped = stack.down(settings)
        console.print(f"stopped: {', '.join(stopped) or 'nothing'}")
    console.print(f"[bold green]Demo finished in {time.monotonic() - started:.0f} s.[/bold green]")
    return 0


def run_demo(settings: object) -> None:
    from comptoir import stack
    from comptoir.sdk import ComptoirSync, Progress, devnet_account

    requester = devnet_account(stack.REQUESTER)
    parties = {
        "requester": requester.address,
        "app owner": devnet_account(stack.APP_OWNER).address,
        "scheduler": devnet_account(stack.SCHEDULER).address,
    }
    info = stack.Stack.load(settings)  # type: ignore[arg-type]
    for w in info.workers():
        assert w.address
        parties[w.name] = w.address

    with ComptoirSync(settings, requester) as c:  # type: ignore[arg-type]
        c.deposit(DEPOSIT)
        before = {name: c.balance(addr) for name, addr in parties.items()}
        console.rule(f"Running 'primes' as a bag of {VOLUME} tasks, trust {TRUST}")

        def progress(p: Progress) -> None:
            if p.stage in ("searching", "matched"):
                console.print(p.message)

        results = []
        t0 = time.monotonic()
        for task in c.run(
            "primes",
            volume=VOLUME,
            trust=TRUST,
            category="TEST",
            args="20000",
            output=Path(str(settings.home)) / "results",  # type: ignore[attr-defined]
            timeout=600,
            on_progress=progress,
        ):
            results.append(task)
            colour = "green" if task.verified else "red"
            console.print(f"task {task.index}: [{colour}]{task.status}[/{colour}]  {task.preview}")
        elapsed = time.monotonic() - t0
        ok = sum(r.verified for r in results)
        console.print(
            f"[bold]{ok}/{len(results)} results verified against the chain[/bold] "
            f"in {elapsed:.1f} s"
        )
        deal_ids = sorted({r.deal_id for r in results})
        for deal_id in deal_ids:
            deal = c.deal(deal_id)
            console.print(
                f"deal {deal_id[:18]}…: {deal.volume} tasks at {deal.task_price} per task, "
                f"trust {deal.trust}"
            )
            if info.urls.get("explorer"):
                console.print(f"  in the explorer: {info.urls['explorer']}deals/{deal_id}")
        replicas = _replicas(c, results)
        console.print(f"replicas per task: {replicas}")
        after = {name: c.balance(addr) for name, addr in parties.items()}

    table = Table(title="Who paid whom (escrow balances, token units)")
    for col in ("party", "address", "before", "after", "change"):
        table.add_column(col, justify="right" if col in ("before", "after", "change") else "left")
    for name, addr in parties.items():
        b = before[name].free + before[name].staked
        a = after[name].free + after[name].staked
        change = a - b
        colour = "green" if change > 0 else "red" if change < 0 else "white"
        table.add_row(
            name, addr[:12] + "…", f"{b:,}", f"{a:,}", f"[{colour}]{change:+,}[/{colour}]"
        )
    console.print(table)
    console.print(
        "requester pays (app 5 + workerpool 100) per task; app owner earns 5 per task; "
        "workers share 90 % of the workerpool price; the scheduler keeps 10 % "
        "(its 30 % stake comes back)."
    )
    if ok != VOLUME:
        from comptoir.exceptions import ResultError

        raise ResultError(f"Only {ok} of {VOLUME} results were verified.")


def _replicas(c: object, results: list[object]) -> str:
    counts = []
    for r in results:
        st = c.task(r.task_id)  # type: ignore[attr-defined]
        counts.append(str(len([x for x in st.replicas if x.get("status") == "revealed"])))
    return ", ".join(counts)


if __name__ == "__main__":
    sys.exit(main())
