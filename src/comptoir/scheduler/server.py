"""Running the scheduler under uvicorn, and the process entry point."""

from __future__ import annotations

import argparse
import sys

import uvicorn

from comptoir.exceptions import ComptoirError
from comptoir.httpguard import sane_recursion_limit
from comptoir.logsetup import configure_logging
from comptoir.scheduler.api import create_scheduler_app
from comptoir.scheduler.settings import SchedulerSettings


def run_scheduler(settings: SchedulerSettings, log_level: str = "warning") -> None:
    """Serve the scheduler API and run its loops until interrupted (blocking)."""
    configure_logging(settings.json_logs)
    sane_recursion_limit()  # web3 imports raise it past what the C stack holds
    app = create_scheduler_app(settings, run_loops=settings.run_loops)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level)


def main(argv: list[str] | None = None) -> int:
    """``python -m comptoir.scheduler``: settings from COMPTOIR_* variables (see settings)."""
    parser = argparse.ArgumentParser(prog="comptoir-scheduler", description=main.__doc__)
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--db")
    args = parser.parse_args(argv)
    try:
        settings = SchedulerSettings.from_env()
    except ComptoirError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    changes: dict[str, object] = {}
    if args.host:
        changes["host"] = args.host
    if args.port is not None:
        changes["port"] = args.port
    if args.db:
        changes["db_url"] = args.db
    run_scheduler(settings.with_(**changes))
    return 0
