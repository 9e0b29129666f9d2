"""How many tasks a worker runs at once: from its cores and memory, or the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from comptoir.chain.deploy import Deployment
from comptoir.exceptions import ConfigError
from comptoir.worker.settings import MAX_SLOTS, WorkerSettings

GIB = 1 << 30
DEPLOYMENT = Deployment(31337, *("0x" + f"{i:02x}" * 20 for i in range(1, 6)), 1)


def settings(**changes: object) -> WorkerSettings:
    base = WorkerSettings(
        private_key="0x" + "01" * 32,
        scheduler_url="http://127.0.0.1:1",
        storage_url="http://127.0.0.1:2",
        rpc_url="http://127.0.0.1:3",
        deployment=DEPLOYMENT,
        work_dir=Path("/nonexistent"),
        memory_limit_bytes=GIB,
    )
    return base.with_(**changes)


def test_one_slot_per_core_while_the_memory_limits_fit() -> None:
    assert settings().slot_count(cpus=8, memory=32 * GIB) == 8
    assert settings().slot_count(cpus=8, memory=3 * GIB) == 3  # memory bounds it
    assert settings().slot_count(cpus=8, memory=GIB // 2) == 1  # at least one


def test_the_setting_overrides_the_machine() -> None:
    assert settings(slots=5).slot_count(cpus=2, memory=GIB) == 5


def test_slots_from_the_environment(tmp_path: Path) -> None:
    env = {
        "COMPTOIR_WORKER_KEY": "0x" + "01" * 32,
        "COMPTOIR_SCHEDULER_URL": "http://127.0.0.1:1",
        "COMPTOIR_STORAGE_URL": "http://127.0.0.1:2",
        "COMPTOIR_RPC_URL": "http://127.0.0.1:3",
        "COMPTOIR_DEPLOYMENT": str(DEPLOYMENT.save(tmp_path / "deployment.json")),
    }
    assert WorkerSettings.from_env({**env, "COMPTOIR_WORKER_SLOTS": "3"}).slots == 3
    assert WorkerSettings.from_env({**env, "COMPTOIR_WORKER_SLOTS": "0"}).slots is None  # detect
    assert WorkerSettings.from_env(env).slots is None
    for bad in ("-1", str(MAX_SLOTS + 1)):
        with pytest.raises(ConfigError, match="COMPTOIR_WORKER_SLOTS"):
            WorkerSettings.from_env({**env, "COMPTOIR_WORKER_SLOTS": bad})
