"""Scheduler settings: explicit fields, or from ``COMPTOIR_SCHEDULER_*`` environment variables.

| variable | default | meaning |
|---|---|---|
| COMPTOIR_RPC_URL | (required) | JSON-RPC endpoint |
| COMPTOIR_DEPLOYMENT | (required) | deployment record JSON |
| COMPTOIR_SCHEDULER_KEY | (required) | private key of the workerpool owner (hex) |
| COMPTOIR_SCHEDULER_WORKERPOOL | (required) | workerpool asset id |
| COMPTOIR_SCHEDULER_DB | ./scheduler.db | SQLite path or database URL (postgresql://...) |
| COMPTOIR_SCHEDULER_DB_ON_LOOP | (auto) | 1/0: transactions on the loop's thread / a thread |
| COMPTOIR_STORAGE_URL | (none) | blob server where results are uploaded |
| COMPTOIR_SCHEDULER_HOST / _PORT | 127.0.0.1 / 8700 | HTTP listen address |
| COMPTOIR_SCHEDULER_LEASE | 30 | seconds without heartbeat before a worker is lost |
| COMPTOIR_SCHEDULER_REVEAL_WAIT | 30 | seconds to wait for every winner's reveal |
| COMPTOIR_SCHEDULER_POLL | 2 | seconds between loop iterations |
| COMPTOIR_SCHEDULER_LOOPS | 1 | 0: API only (extra processes of a pool on one PostgreSQL) |
| COMPTOIR_SCHEDULER_FINALIZE_WINDOW | 3 | seconds a partial finalize batch waits for more tasks |
| COMPTOIR_SCHEDULER_RECONCILE | 30 | seconds between reconciliation passes |
| COMPTOIR_SCHEDULER_MAX_ATTEMPTS | 3 | failed attempts of a task before it is abandoned |
| COMPTOIR_SCHEDULER_GRACE | 120 | seconds a replica may exceed the category time |
| COMPTOIR_SCHEDULER_START_BLOCK | deployment block | first block scanned on an empty database |
| COMPTOIR_SCHEDULER_LONE_SCORE | 10000 | smallest score whose lone result stands (trustpolicy) |
| COMPTOIR_SCHEDULER_AUDIT_RATE | 0.2 | share of standing lone results checked by one more replica |
| COMPTOIR_SCHEDULER_STANDING_TTL | 10 | seconds before a refused worker's stake is read again |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from comptoir.chain.deploy import Deployment
from comptoir.config import env_flag, env_float, env_required
from comptoir.exceptions import ConfigError
from comptoir.scheduler import consensus


@dataclass(frozen=True)
class SchedulerSettings:
    rpc_url: str
    deployment: Deployment
    private_key: str
    workerpool: int
    db_url: str = "scheduler.db"
    # where transactions run (db.py); None: on the event loop's thread for SQLite and a
    # PostgreSQL on this host, on a database thread of their own for a remote server
    db_on_loop: bool | None = None
    storage_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8700
    heartbeat_lease_s: float = 30.0
    reveal_wait_s: float = 30.0
    poll_interval_s: float = 2.0
    finalize_window_s: float = 3.0  # batch ready tasks of a bag: fewer, fuller finalizes
    run_loops: bool = True  # False: an API-only process beside the one running the loops
    reconcile_interval_s: float = 30.0
    reconcile_window_blocks: int = 2000
    log_chunk_blocks: int = 5000
    confirmations: int = 0  # blocks behind the head the watcher stays (reorg margin)
    start_block: int | None = None  # first block scanned on an empty database
    max_attempts: int = 3  # non-deterministic failures of one task before giving up
    max_replicas: int = 16  # contributions per task (the hub's MAX_CONTRIBUTORS)
    assignment_grace_s: float = 120.0  # beyond the category time for download + upload
    challenge_ttl_s: float = 120.0
    rpc_timeout: float = 30.0
    tx_timeout: float = 120.0
    json_logs: bool = False
    lone_score: int = consensus.LONE_SCORE  # trust policy (bench/trust.py measures it)
    audit_rate: float = consensus.AUDIT_RATE
    standing_ttl_s: float = 10.0  # balance and lock of a worker read again after this

    def with_(self, **changes: object) -> SchedulerSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SchedulerSettings:
        env = os.environ if env is None else env

        def need(name: str) -> str:
            return env_required(env, name, "the scheduler")

        def num(name: str, default: float) -> float:
            return env_float(env, name, default)

        try:
            workerpool = int(need("COMPTOIR_SCHEDULER_WORKERPOOL"))
        except ValueError:
            raise ConfigError("COMPTOIR_SCHEDULER_WORKERPOOL must be an asset id.") from None
        return cls(
            rpc_url=need("COMPTOIR_RPC_URL"),
            deployment=Deployment.load(Path(need("COMPTOIR_DEPLOYMENT"))),
            private_key=need("COMPTOIR_SCHEDULER_KEY"),
            workerpool=workerpool,
            db_url=env.get("COMPTOIR_SCHEDULER_DB") or "scheduler.db",
            db_on_loop=_on_loop(env.get("COMPTOIR_SCHEDULER_DB_ON_LOOP", "")),
            storage_url=env.get("COMPTOIR_STORAGE_URL") or None,
            host=env.get("COMPTOIR_SCHEDULER_HOST") or "127.0.0.1",
            port=int(num("COMPTOIR_SCHEDULER_PORT", 8700)),
            heartbeat_lease_s=num("COMPTOIR_SCHEDULER_LEASE", 30.0),
            reveal_wait_s=num("COMPTOIR_SCHEDULER_REVEAL_WAIT", 30.0),
            poll_interval_s=num("COMPTOIR_SCHEDULER_POLL", 2.0),
            finalize_window_s=num("COMPTOIR_SCHEDULER_FINALIZE_WINDOW", 3.0),
            run_loops=env_flag({"L": env.get("COMPTOIR_SCHEDULER_LOOPS", "1")}, "L"),
            reconcile_interval_s=num("COMPTOIR_SCHEDULER_RECONCILE", 30.0),
            max_attempts=int(num("COMPTOIR_SCHEDULER_MAX_ATTEMPTS", 3)),
            start_block=int(env["COMPTOIR_SCHEDULER_START_BLOCK"])
            if env.get("COMPTOIR_SCHEDULER_START_BLOCK")
            else None,
            assignment_grace_s=num("COMPTOIR_SCHEDULER_GRACE", 120.0),
            json_logs=env_flag(env, "COMPTOIR_LOG_JSON"),
            lone_score=int(num("COMPTOIR_SCHEDULER_LONE_SCORE", consensus.LONE_SCORE)),
            audit_rate=_rate(num("COMPTOIR_SCHEDULER_AUDIT_RATE", consensus.AUDIT_RATE)),
            standing_ttl_s=num("COMPTOIR_SCHEDULER_STANDING_TTL", 10.0),
        )


def _rate(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ConfigError("COMPTOIR_SCHEDULER_AUDIT_RATE must be between 0 and 1.")
    return value


def _on_loop(value: str) -> bool | None:
    if value.strip() == "":
        return None
    if value.strip() in ("0", "1"):
        return value.strip() == "1"
    raise ConfigError(
        f"COMPTOIR_SCHEDULER_DB_ON_LOOP is {value!r}; give 1 (on the event loop), 0 (on a "
        "database thread) or leave it unset."
    )
