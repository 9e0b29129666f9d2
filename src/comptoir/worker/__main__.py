"""``python -m comptoir.worker``: settings from COMPTOIR_* variables (see settings)."""

import argparse
import sys

from comptoir.exceptions import ComptoirError
from comptoir.logsetup import configure_logging
from comptoir.worker.agent import run_worker
from comptoir.worker.settings import WorkerSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="comptoir-worker", description=__doc__)
    parser.add_argument("--idle-only", action="store_true", help="volunteer mode")
    parser.add_argument("--work-dir")
    parser.add_argument("--json-logs", action="store_true")
    parser.add_argument("--lie", action="store_true", help="TEST ONLY: contribute wrong digests")
    args = parser.parse_args(argv)
    try:
        settings = WorkerSettings.from_env()
    except ComptoirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes: dict[str, object] = {}
    if args.idle_only:
        changes["idle_only"] = True
    if args.work_dir:
        from pathlib import Path

        changes["work_dir"] = Path(args.work_dir).absolute()
    if args.lie:
        changes["fault"] = "lie"
    configure_logging(args.json_logs)
    try:
        run_worker(settings.with_(**changes))
    except ComptoirError as exc:  # e.g. isolation below what the pool requires
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


sys.exit(main())
