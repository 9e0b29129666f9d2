"""End-to-end benchmark on the local stack (bench/e2e.json).

- **latency**: from the request (order search, signature, match) to the verified result
  of one trivial task at trust 1 (one worker computes it), several samples;
- **throughput**: tasks per second of a bag of trivial tasks (trust 1), from the request
  to the last verified result, with 1, 4 and 16 workers.

Every figure depends on the machine; it is described next to the figures. Nothing here
is asserted: the spec forbids wall-clock limits in tests.

Usage: python bench/e2e.py [--samples 5] [--volume 48] [--workers 1,4,16]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "e2e.json"
TRIVIAL_ARGS = "10"  # primes below 10 x (index + 1): the sandbox dominates, not the app


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


def run_bag(c: Any, volume: int, output: Path) -> tuple[float, list[Any]]:
    start = time.perf_counter()
    results = list(
        c.run(
            "primes",
            volume=volume,
            trust=1,
            category="TEST",
            args=TRIVIAL_ARGS,
            output=output,
            timeout=900,
        )
    )
    elapsed = time.perf_counter() - start
    bad = [r for r in results if not r.verified]
    if bad:
        raise SystemExit(f"unverified results: {[(r.index, r.status, r.message) for r in bad]}")
    return elapsed, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5, help="latency samples")
    parser.add_argument("--volume", type=int, default=48, help="tasks per throughput bag")
    parser.add_argument("--workers", default="1,4,16", help="worker counts to measure")
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
            "Local stack (anvil, storage, market, one scheduler, N workers, bubblewrap "
            "sandbox), trivial bundle app, trust 1. latency: request -> verified result of "
            "one task; throughput: tasks of one bag / seconds from request to last verified "
            "result."
        ),
        "machine": machine(),
        "settings": {"trivial_args": TRIVIAL_ARGS, "volume": args.volume, **stack.FAST_ENV},
    }
    started = time.perf_counter()
    with (
        stack.running(settings, workers=counts[0], notify=print),
        ComptoirSync(settings, devnet_account(stack.REQUESTER)) as c,
    ):
        c.deposit(10**9)
        run_bag(c, 1, home / "warmup")  # first run fills the workers' app cache
        samples = [run_bag(c, 1, home / f"lat{i}")[0] for i in range(args.samples)]
        report["latency_s"] = {
            "workers": counts[0],
            "samples": [round(s, 3) for s in samples],
            "median": round(statistics.median(samples), 3),
            "min": round(min(samples), 3),
            "max": round(max(samples), 3),
        }
        print(f"latency (request -> verified result): median {statistics.median(samples):.2f} s")
        report["throughput"] = []
        running = counts[0]
        for n in counts:
            if n > running:
                stack.add_workers(settings, n - running)
                running = n
                run_bag(c, n, home / f"warm{n}")  # new workers fetch the app once
            elapsed, _ = run_bag(c, args.volume, home / f"bag{n}")
            tps = args.volume / elapsed
            report["throughput"].append(
                {
                    "workers": n,
                    "tasks": args.volume,
                    "seconds": round(elapsed, 3),
                    "tasks_per_second": round(tps, 3),
                }
            )
            print(f"{n:>3} worker(s): {args.volume} tasks in {elapsed:.1f} s = {tps:.2f} tasks/s")
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
