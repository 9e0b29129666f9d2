"""Worker settings: explicit fields, or from ``COMPTOIR_WORKER_*`` environment variables.

| variable | default | meaning |
|---|---|---|
| COMPTOIR_WORKER_KEY | (required) | the worker's private key (hex) |
| COMPTOIR_SCHEDULER_URL | (required) | the pool's scheduler API |
| COMPTOIR_STORAGE_URL | (required) | blob server (apps, datasets, results) |
| COMPTOIR_KEY_SERVICE_URL | storage URL | dataset key service |
| COMPTOIR_STORAGE_TOKEN | (none) | upload token of the blob server |
| COMPTOIR_RPC_URL / COMPTOIR_DEPLOYMENT | (required) | chain, to verify assignments |
| COMPTOIR_WORKER_DIR | ./worker | work dir (journal, sandbox, results) |
| COMPTOIR_WORKER_CACHE | <dir>/cache | app/dataset cache |
| COMPTOIR_WORKER_CACHE_BYTES | 4 GiB | cache size bound (LRU eviction) |
| COMPTOIR_WORKER_IDLE_ONLY | 0 | volunteer mode: work only when the CPU is idle |
| COMPTOIR_WORKER_GPU | (detect) | 1/0 to force the GPU capability |
| COMPTOIR_WORKER_SLOTS | (detect) | tasks run at once; 0: min(cores, memory / memory limit) |
| COMPTOIR_WORKER_MEMORY_LIMIT | 1 GiB | sandbox memory limit (bytes), per task |
| COMPTOIR_WORKER_OUTPUT_LIMIT | 256 MiB | sandbox output limit (bytes) |
| COMPTOIR_WORKER_MAX_PROCESSES | 64 | sandbox process limit |
| COMPTOIR_WORKER_ISOLATION | full | lowest isolation the pool accepts: full, partial, reduced |
| COMPTOIR_WORKER_UNPACK_BYTES | 2 GiB | an app package's unpacked size (apparent bytes) |
| COMPTOIR_WORKER_UNPACK_ENTRIES | 100 000 | an app package's files, directories and links |
| COMPTOIR_WORKER_UNPACK_RATIO | 100 | unpacked bytes per package byte (past 32 MiB) |
| COMPTOIR_WORKER_POLL / _HEARTBEAT | 2 / 5 | seconds between pulls / heartbeats |
| COMPTOIR_WORKER_FAULT | (none) | TEST ONLY: "lie" (wrong digests), "tamper_seal" (altered seals) |
| COMPTOIR_WORKER_LOCK_HORIZON | 86400 | seconds the stake is locked ahead (0: as the pool asks) |
| COMPTOIR_WORKER_LOCK_MARGIN | 600 | seconds locked past the final deadline the scheduler names |
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from comptoir.apps.unpack import UnpackLimits
from comptoir.chain.deploy import Deployment
from comptoir.config import env_flag, env_float, env_required
from comptoir.exceptions import ConfigError
from comptoir.sandbox.executor import ISOLATION_LEVELS

FAULTS = ("lie", "tamper_seal")  # test-only fault injection
MAX_SLOTS = 1024  # the scheduler's bound on advertised slots


@dataclass(frozen=True)
class WorkerSettings:
    private_key: str
    scheduler_url: str
    storage_url: str
    rpc_url: str
    deployment: Deployment
    work_dir: Path
    cache_dir: Path | None = None  # default: work_dir / "cache"
    # the sandbox's job root; its parents must be traversable by the per-job uids when
    # the worker runs as root (default: the executor's own, under the system temp dir)
    sandbox_root: Path | None = None
    key_service_url: str | None = None  # default: storage_url
    storage_token: str | None = None  # bearer token for uploads, when the server wants one
    cache_bytes: int = 4 << 30
    idle_only: bool = False
    idle_cpu_percent: float = 25.0  # volunteer mode: run only below this host CPU load
    gpu: bool | None = None  # None: detect
    cpus: int | None = None
    memory: int | None = None
    slots: int | None = None  # tasks run at once; None: from cores and memory
    memory_limit_bytes: int = 1 << 30
    output_limit_bytes: int = 256 << 20
    max_processes: int = 64
    tmp_bytes: int = 64 << 20
    # the pool's floor: "full", "partial" or "reduced" (see comptoir.sandbox.Isolation)
    isolation: str = "full"
    # app packages (every worker of a pool must use the same: over them is a failure
    # record replicas agree on); depth and path length are the contract's fixed ones
    unpack_bytes: int = 2 << 30
    unpack_entries: int = 100_000
    unpack_ratio: int = 100
    poll_interval_s: float = 2.0
    heartbeat_interval_s: float = 5.0
    http_timeout_s: float = 60.0
    rpc_timeout: float = 30.0
    # the escrow balance stays locked this far ahead, so schedulers dispatch to this worker
    lock_horizon_s: int = 86_400
    lock_margin_s: int = 600
    # TEST ONLY: "lie" contributes a wrong digest, to exercise the consensus penalties.
    fault: str | None = None

    def __post_init__(self) -> None:
        if self.fault is not None and self.fault not in FAULTS:
            raise ConfigError(f"Unknown fault {self.fault!r}; known: {', '.join(FAULTS)}.")
        if self.slots is not None and not 1 <= self.slots <= MAX_SLOTS:
            raise ConfigError(f"COMPTOIR_WORKER_SLOTS must be between 1 and {MAX_SLOTS}.")
        if self.isolation not in ISOLATION_LEVELS:
            raise ConfigError(
                f"Unknown isolation level {self.isolation!r}; "
                f"use one of {', '.join(ISOLATION_LEVELS)}."
            )

    def slot_count(self, cpus: int, memory: int) -> int:
        """Tasks run at once: the setting, else one per core while each task's memory
        limit fits in the machine's memory (at least one, at most MAX_SLOTS)."""
        if self.slots is not None:
            return self.slots
        by_memory = memory // max(self.memory_limit_bytes, 1)
        return max(1, min(cpus, by_memory, MAX_SLOTS))

    @property
    def unpack_limits(self) -> UnpackLimits:
        return UnpackLimits(
            max_bytes=self.unpack_bytes,
            max_entries=self.unpack_entries,
            max_ratio=self.unpack_ratio,
        )

    @property
    def cache_path(self) -> Path:
        return self.cache_dir or self.work_dir / "cache"

    @property
    def key_url(self) -> str:
        return self.key_service_url or self.storage_url

    def with_(self, **changes: object) -> WorkerSettings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env

        def need(name: str) -> str:
            return env_required(env, name, "the worker")

        def num(name: str, default: float) -> float:
            return env_float(env, name, default)

        work = Path(env.get("COMPTOIR_WORKER_DIR") or "worker").expanduser().absolute()
        cache = env.get("COMPTOIR_WORKER_CACHE")

        gpu = env.get("COMPTOIR_WORKER_GPU")
        return cls(
            private_key=need("COMPTOIR_WORKER_KEY"),
            scheduler_url=need("COMPTOIR_SCHEDULER_URL"),
            storage_url=need("COMPTOIR_STORAGE_URL"),
            key_service_url=env.get("COMPTOIR_KEY_SERVICE_URL") or None,
            storage_token=env.get("COMPTOIR_STORAGE_TOKEN") or None,
            rpc_url=need("COMPTOIR_RPC_URL"),
            deployment=Deployment.load(Path(need("COMPTOIR_DEPLOYMENT"))),
            work_dir=work,
            cache_dir=Path(cache).expanduser().absolute() if cache else None,
            cache_bytes=int(num("COMPTOIR_WORKER_CACHE_BYTES", 4 << 30)),
            idle_only=env_flag(env, "COMPTOIR_WORKER_IDLE_ONLY"),
            gpu=None if not gpu else gpu not in ("0", "false"),
            slots=int(num("COMPTOIR_WORKER_SLOTS", 0)) or None,
            memory_limit_bytes=int(num("COMPTOIR_WORKER_MEMORY_LIMIT", 1 << 30)),
            output_limit_bytes=int(num("COMPTOIR_WORKER_OUTPUT_LIMIT", 256 << 20)),
            max_processes=int(num("COMPTOIR_WORKER_MAX_PROCESSES", 64)),
            isolation=env.get("COMPTOIR_WORKER_ISOLATION") or "full",
            unpack_bytes=int(num("COMPTOIR_WORKER_UNPACK_BYTES", 2 << 30)),
            unpack_entries=int(num("COMPTOIR_WORKER_UNPACK_ENTRIES", 100_000)),
            unpack_ratio=int(num("COMPTOIR_WORKER_UNPACK_RATIO", 100)),
            poll_interval_s=num("COMPTOIR_WORKER_POLL", 2.0),
            heartbeat_interval_s=num("COMPTOIR_WORKER_HEARTBEAT", 5.0),
            lock_horizon_s=int(num("COMPTOIR_WORKER_LOCK_HORIZON", 86_400)),
            lock_margin_s=int(num("COMPTOIR_WORKER_LOCK_MARGIN", 600)),
            fault=env.get("COMPTOIR_WORKER_FAULT") or None,  # TEST ONLY
        )
