"""End-to-end benchmark on the local stack (bench/e2e.json).

- **latency**: from the request (order search, signature, match) to the verified result
  of one trivial task at trust 1 (one worker computes it), median over ``--samples`` runs,
  with its breakdown from the instants the components log (scheduler and worker logs,
  ISO timestamps on the host clock) and the SDK observes (its progress callbacks);
- **bag**: a bag of ``--volume`` trivial tasks (trust 1) with N real workers (each with
  its slots): tasks per second from the request to the last verified result, and gas per
  task from the real receipts (the match, shared by the bag, plus the scheduler's
  finalize transactions, each divided by the tasks it settled);
- **cli_run**: ``comptoir run`` from a shell (``--cli-runs`` times): wall and CPU of the
  whole command, interpreter start and imports included, beside its imports alone.

Every figure depends on the machine; it is described next to the figures. Nothing here
is asserted: the spec forbids wall-clock limits in tests.

Usage: python bench/e2e.py [--samples 10] [--volume 100] [--workers 1,4] [--cli-runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "e2e.json"
TRIVIAL_ARGS = "10"  # primes below 10 x (index + 1): the sandbox dominates, not the app
# one structlog console line: "<iso time> [<level>  ] <event>  key=value ..."
LOG_LINE = re.compile(r"^(\S+) \[\s*\w+\s*\] (\S+)\s*(.*)$")
FIELD = re.compile(r"(\w+)=('[^']*'|\S+)")
STEPS = (
    "match",  # request -> deal matched (order search, signature, match transaction)
    "dispatch_wait",  # matched -> the worker holds the assignment (watcher, pull)
    "prepare",  # assignment -> sandbox start (chain checks, app fetch and unpack)
    "sandbox",  # the sandbox run (bubblewrap start to end, app included)
    "commit",  # sandbox end -> commitment accepted (archive, signature, HTTP)
    "reveal_wait",  # commitment accepted -> the worker learns it must reveal
    "upload",  # result archive to storage
    "reveal",  # upload done -> digest revealed and checked by the scheduler
    "finalize",  # revealed -> finalize transaction mined (the scheduler's loop)
    "event_seen",  # finalize mined -> the SDK sees TaskFinalized
    "download",  # event seen -> result downloaded and checked against the chain
)


def service_cpu() -> dict[str, float]:
    """CPU seconds (user + system) so far of each process of the stack (children of this
    one, by service name) and of this process (the SDK: the requester's side)."""
    import psutil

    me = psutil.Process()
    own = me.cpu_times()
    out = {"sdk": own.user + own.system}
    for proc in me.children(recursive=True):
        try:
            argv, times = proc.cmdline(), proc.cpu_times()
        except psutil.Error:
            continue
        out[_service_name(argv, proc.pid)] = times.user + times.system
    return out


def _service_name(argv: list[str], pid: int) -> str:
    line = " ".join(argv)
    for name in ("scheduler", "worker", "market", "storage"):
        if f"comptoir.{name}" in line or f"comptoir.stack {name}" in line:
            return name if "supervise" not in line else f"supervisor:{pid}"
    return "anvil" if "anvil" in line else f"other:{pid}"


def cpu_per_request(before: dict[str, float], after: dict[str, float], n: int) -> dict[str, float]:
    """Milliseconds of CPU per request for each service (supervisors and short-lived
    processes summed apart; a sandboxed app's own CPU is not counted: it has exited)."""
    per: dict[str, float] = {}
    for key, value in after.items():
        name = key.split(":")[0]
        per[name] = per.get(name, 0.0) + (value - before.get(key, 0.0)) * 1000 / n
    return {k: round(v, 1) for k, v in sorted(per.items(), key=lambda kv: -kv[1])}


def cli_runs(home: Path, runs: int) -> dict[str, Any]:
    """`comptoir run` from a shell, as a user types it: wall and CPU of the whole command
    (interpreter start and imports included) to the verified result, beside the imports
    alone (the SDK and the CLI)."""
    import resource

    exe = str(Path(sys.executable).with_name("comptoir"))
    argv = [exe, "run", "primes", "--category", "TEST", "--args", TRIVIAL_ARGS]
    argv += ["--wallet", "devnet:1", "--output", str(home / "cli")]
    imports = [sys.executable, "-c", "import comptoir.cli.app, comptoir.cli.run, comptoir.sdk"]

    def timed(command: list[str]) -> tuple[float, float]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed: {done.stdout}{done.stderr}")
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        return wall, cpu

    run = [timed(argv) for _ in range(runs)]
    imported = [timed(imports) for _ in range(runs)]
    return {
        "command": " ".join(["comptoir", *argv[1:]]),
        "runs": runs,
        "wall_median_s": round(statistics.median(w for w, _ in run), 3),
        "cpu_median_s": round(statistics.median(c for _, c in run), 3),
        "import_wall_median_s": round(statistics.median(w for w, _ in imported), 3),
        "import_cpu_median_s": round(statistics.median(c for _, c in imported), 3),
    }


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    from comptoir.config import load_settings
    from comptoir.devnet import anvil_binary

    try:
        anvil = subprocess.run(
            [str(anvil_binary(load_settings())), "--version"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()[0]
    except Exception as exc:  # describe, do not fail
        anvil = f"unknown ({exc})"
    mem = 0
    try:
        import psutil

        mem = psutil.virtual_memory().total
    except ImportError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "memory_bytes": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "anvil": anvil,
    }


# ---------------------------------------------------------------- logs


def read_events(path: Path) -> list[tuple[float, str, dict[str, str]]]:
    """(unix time, event, fields) of every structlog line of a service's log."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        m = LOG_LINE.match(line)
        if m is None:
            continue
        try:
            at = datetime.fromisoformat(m.group(1)).timestamp()
        except ValueError:
            continue
        fields = {k: v.strip("'") for k, v in FIELD.findall(m.group(3))}
        events.append((at, m.group(2), fields))
    return events


def find(events: list[tuple[float, str, dict[str, str]]], event: str, **match: str) -> Any:
    """The first logged `event` whose fields include `match`: (time, fields)."""
    for at, name, fields in events:
        if name == event and all(fields.get(k, "").lower() == v.lower() for k, v in match.items()):
            return at, fields
    raise LookupError(f"no {event} {match} in the logs")


def breakdown(logs: Path, result: Any, sdk: dict[str, float]) -> dict[str, float]:
    """Seconds per step of one task, from the logs and the SDK's instants."""
    sched = read_events(logs / "scheduler.log")
    _, fields = find(sched, "assignment.new", task=result.task_id)
    aid = fields["id"]
    worker: list[tuple[float, str, dict[str, str]]] = []
    for log in sorted(logs.glob("worker-*.log")):
        events = read_events(log)
        if any(n == "assignment.start" and f.get("id") == aid for _, n, f in events):
            worker = events
    start, _ = find(worker, "assignment.start", id=aid)
    ran, ran_fields = find(worker, "assignment.ran", id=aid)
    committed, _ = find(sched, "assignment.committed", id=aid)
    uploaded, up_fields = find(worker, "assignment.uploaded", id=aid)
    revealed, _ = find(sched, "assignment.revealed", id=aid)
    finalized = min(at for at, name, f in sched if name == "finalize.sent" and at >= revealed)
    sandbox_s = float(ran_fields["seconds"])
    upload_s = float(up_fields["seconds"])
    instants = [
        sdk["requested"],
        sdk["matched"],
        start,
        ran - sandbox_s,
        ran,
        committed,
        uploaded - upload_s,
        uploaded,
        revealed,
        finalized,
        sdk["settled"],
        sdk["verified"],
    ]
    pairs = zip(STEPS, instants, instants[1:], strict=False)
    steps = {name: round(b - a, 3) for name, a, b in pairs}
    # part of the dispatch wait: until the scheduler's watcher records the deal
    deal_seen, _ = find(sched, "deal.new", deal=result.deal_id)
    steps["deal_seen"] = round(deal_seen - sdk["matched"], 3)
    return steps


# ---------------------------------------------------------------- runs


def request(c: Any, volume: int, output: Path) -> tuple[float, list[Any], dict[str, Any]]:
    """One request of `volume` trivial tasks, followed to the last verified result."""
    instants: dict[str, float] = {"requested": time.time()}

    def seen(step: Any) -> None:
        instants.setdefault(step.stage, time.time())  # the first of each stage

    start = time.perf_counter()
    deals = c.request(
        "primes", volume=volume, trust=1, category="TEST", args=TRIVIAL_ARGS, on_progress=seen
    )
    results = list(c.watch(deals, output=output, timeout=900, on_progress=seen))
    elapsed = time.perf_counter() - start
    instants["verified"] = instants.get("task", time.time())
    bad = [r for r in results if r.status != "verified"]
    if bad:
        raise SystemExit(f"unverified results: {[(r.index, r.status, r.message) for r in bad]}")
    return elapsed, results, {"instants": instants, "deals": deals}


def bag_gas(stack: Any, deals: list[Any]) -> dict[str, Any]:
    """Gas per task of a bag from the receipts: match + finalize transactions."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from scale import settlement_gas
    from web3 import Web3

    w3 = Web3(Web3.HTTPProvider(stack.rpc_url))
    url = next(iter(stack.schedulers.values()))
    match_gas = finalize_gas = txs = settled = tasks = 0
    for d in deals:
        match_gas += int(w3.eth.get_transaction_receipt(d.tx_hash)["gasUsed"])
        g = asyncio.run(settlement_gas(url, w3, d))
        finalize_gas += g["finalize_gas"]
        txs += g["finalize_transactions"]
        settled += g["tasks_settled"]
        tasks += d.deal.volume
    return {
        "match_gas": match_gas,
        "finalize_gas": finalize_gas,
        "finalize_transactions": txs,
        "tasks_per_finalize": round(settled / max(txs, 1), 1),
        "gas_per_task": round(match_gas / tasks + finalize_gas / max(settled, 1)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="latency samples")
    parser.add_argument("--volume", type=int, default=100, help="tasks per bag")
    parser.add_argument("--workers", default="1,4", help="worker counts for the bag")
    parser.add_argument("--cli-runs", type=int, default=3, help="`comptoir run` from a shell")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    counts = sorted(int(n) for n in args.workers.split(","))

    home = Path(tempfile.mkdtemp(prefix="comptoir-bench-"))
    os.environ["COMPTOIR_HOME"] = str(home)
    os.environ["COMPTOIR_DEVNET_PORT"] = "0"
    from comptoir import stack
    from comptoir.config import load_settings
    from comptoir.sdk import ComptoirSync, devnet_account

    settings = load_settings()
    report: dict[str, Any] = {
        "description": (
            "Local stack (anvil, storage, market, one scheduler, N workers with their "
            "slots, bubblewrap sandbox), trivial bundle app, trust 1. latency: request -> "
            "verified result of one task, with its breakdown; bag: tasks of one bag / "
            "seconds from request to last verified result, and gas per task from receipts."
        ),
        "command": "python bench/e2e.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "settings": {"trivial_args": TRIVIAL_ARGS, "volume": args.volume, **stack.FAST_ENV},
    }
    started = time.perf_counter()
    with (
        stack.running(settings, workers=counts[0], notify=print) as running,
        ComptoirSync(settings, devnet_account(stack.REQUESTER)) as c,
    ):
        c.deposit(10**9)
        request(c, 1, home / "warmup")  # first run fills the workers' app cache
        samples, parts = [], []
        load_before, cpu_before = os.getloadavg(), service_cpu()
        for i in range(args.samples):
            elapsed, results, seen = request(c, 1, home / f"lat{i}")
            samples.append(elapsed)
            parts.append(breakdown(running.logs, results[0], seen["instants"]))
        cpu = cpu_per_request(cpu_before, service_cpu(), args.samples)
        load_after = os.getloadavg()
        median_parts = {k: round(statistics.median(p[k] for p in parts), 3) for k in parts[0]}
        p90 = statistics.quantiles(samples, n=10)[-1] if len(samples) > 1 else samples[0]
        report["latency_s"] = {
            "workers": counts[0],
            "samples": [round(s, 3) for s in samples],
            "median": round(statistics.median(samples), 3),
            "p90": round(p90, 3),
            "min": round(min(samples), 3),
            "max": round(max(samples), 3),
            "breakdown_median": median_parts,
            "breakdown": parts,
            # the machine is shared: the load beside the figures, and CPU per request
            # (process CPU time / requests), which depends less on the neighbours
            "load_average_1m": {"before": load_before[0], "after": load_after[0]},
            "cpu_ms_per_request": cpu,
            "cpu_ms_per_request_total": round(sum(cpu.values()), 1),
        }
        print(
            f"latency (request -> verified result): median {statistics.median(samples):.3f} s, "
            f"p90 {p90:.3f} s (load average {load_before[0]:.1f} -> {load_after[0]:.1f})"
        )
        print("  " + ", ".join(f"{k} {v:.3f}" for k, v in median_parts.items()))
        print(
            f"  CPU per request: {sum(cpu.values()):.0f} ms = "
            + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        )
        if args.cli_runs > 0:
            cli = cli_runs(home, args.cli_runs)
            report["cli_run"] = {**cli, "load_average_1m": os.getloadavg()[0]}
            print(
                f"comptoir run from a shell: {cli['wall_median_s']:.2f} s wall, "
                f"{cli['cpu_median_s']:.2f} s CPU (its imports alone: "
                f"{cli['import_wall_median_s']:.2f} s wall, {cli['import_cpu_median_s']:.2f} s CPU)"
            )
        report["bag"] = []
        have = counts[0]
        for n in counts:
            if n > have:
                stack.add_workers(settings, n - have)
                have = n
                request(c, n, home / f"warm{n}")  # new workers fetch the app once
            elapsed, _, seen = request(c, args.volume, home / f"bag{n}")
            gas = bag_gas(running, seen["deals"])
            tps = args.volume / elapsed
            report["bag"].append(
                {
                    "workers": n,
                    "tasks": args.volume,
                    "seconds": round(elapsed, 3),
                    "tasks_per_second": round(tps, 3),
                    **gas,
                }
            )
            print(
                f"{n:>3} worker(s): {args.volume} tasks in {elapsed:.1f} s = {tps:.2f} tasks/s; "
                f"{gas['gas_per_task']} gas/task, {gas['tasks_per_finalize']} tasks/finalize"
            )
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
