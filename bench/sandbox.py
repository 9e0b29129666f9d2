"""Sandbox start overhead (bench/sandbox.json): prints figures, asserts nothing.

    .venv/bin/python bench/sandbox.py [--runs 20] [--concurrency 1,2,4]

For a trivial bundle app whose command is one bash builtin (it writes bash's
``$EPOCHREALTIME`` into its output), each run records three host-clock instants: the
worker calls ``BwrapExecutor.run``, the app executes (its own timestamp: the sandbox shares
the host clock), ``run`` returns. ``start`` is call → app exec (job directory, uid lease,
cgroup, output tmpfs, bubblewrap's namespaces and mounts, seccomp, exec); ``finish`` is app
exec → return (waiting for the job's processes to end, output scan and digest, teardown).
The same bash command spawned directly, outside any sandbox, is the baseline. With
``--concurrency K``, K jobs are started together, as K worker slots do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from comptoir.apps import build_bundle, prepare_app
from comptoir.sandbox import BwrapExecutor, SandboxJob

sys.path.insert(0, str(Path(__file__).resolve().parent))
from e2e import machine

OUT = Path(__file__).resolve().parent / "sandbox.json"
COMMAND = ["bash", "-c", 'printf %s "$EPOCHREALTIME" > /comptoir/out/t']


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
    }


def _baseline(runs: int, tmp: Path) -> list[float]:
    out = []
    for _ in range(runs):
        target = tmp / "t"
        called = time.time()
        subprocess.run(["bash", "-c", f'printf %s "$EPOCHREALTIME" > {target}'], check=True)
        out.append(float(target.read_text()) - called)
    return out


async def _one(executor: BwrapExecutor, app: Any, tmp: Path) -> tuple[float, float]:
    out = Path(tempfile.mkdtemp(dir=tmp, prefix="out-")) / "out"  # a fresh one per job
    called = time.time()
    result = await executor.run(SandboxJob(app=app, output_dir=out))
    returned = time.time()
    if not result.ok:
        raise SystemExit(f"the sandbox run failed: {result.outcome} {result.message}")
    app_exec = float((out / "t").read_text())
    return app_exec - called, returned - app_exec


async def _measure(
    executor: BwrapExecutor, app: Any, tmp: Path, runs: int, k: int
) -> dict[str, Any]:
    starts: list[float] = []
    finishes: list[float] = []
    for _ in range(max(1, runs // k)):
        batch = [_one(executor, app, tmp) for _ in range(k)]
        for start, finish in await asyncio.gather(*batch):
            starts.append(start)
            finishes.append(finish)
    return {
        "concurrency": k,
        "jobs": len(starts),
        "start": _stats(starts),
        "finish": _stats(finishes),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="jobs per concurrency level")
    parser.add_argument("--concurrency", default="1,2,4", help="jobs started together")
    parser.add_argument("--output", type=Path, default=OUT)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="comptoir-bench-sandbox-"))
    src = tmp / "src"
    src.mkdir()
    (src / "comptoir.json").write_text(json.dumps({"name": "stamp", "command": COMMAND}))
    app = prepare_app("bundle", build_bundle(src), tmp / "cache")
    executor = BwrapExecutor()
    isolation = executor.isolation()
    asyncio.run(_one(executor, app, tmp))  # warm: page cache, first cgroup
    report: dict[str, Any] = {
        "description": __doc__.split("\n\n")[2].replace("\n", " "),
        "command": "python bench/sandbox.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "isolation": isolation.level,
        "enforcement": executor.enforcement,
        "baseline_spawn": _stats(_baseline(args.runs, tmp)),
        "sandbox": [],
    }
    base = report["baseline_spawn"]["median_ms"]
    print(f"isolation {isolation.level}; bash spawned directly: median {base} ms")
    for k in (int(x) for x in args.concurrency.split(",")):
        row = asyncio.run(_measure(executor, app, tmp, args.runs, k))
        report["sandbox"].append(row)
        print(
            f"{k} at once: call -> app exec median {row['start']['median_ms']} ms "
            f"(p90 {row['start']['p90_ms']}), app exec -> result median "
            f"{row['finish']['median_ms']} ms (p90 {row['finish']['p90_ms']}), {row['jobs']} jobs"
        )
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
