"""Long-running roles started from the SDK: a pool's scheduler and a worker agent.

Both block until interrupted (SIGINT/SIGTERM); they build the settings of
:mod:`comptoir.scheduler` / :mod:`comptoir.worker` from the SDK configuration.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount

from comptoir.chain.client import ChainClient
from comptoir.exceptions import ConfigError
from comptoir.sdk.config import Config

if TYPE_CHECKING:
    from comptoir.scheduler import SchedulerSettings


def scheduler_settings(
    config: Config,
    account: LocalAccount,
    workerpool: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    db: str | Path | None = None,
    poll_interval_s: float | None = None,
) -> SchedulerSettings:
    """SchedulerSettings for `workerpool`, scheduled by `account` (its owner)."""
    from comptoir.scheduler import SchedulerSettings

    client = ChainClient.from_settings(config.settings)
    owner = client.owner_of(workerpool)
    if owner != account.address:
        raise ConfigError(
            f"Workerpool {workerpool} belongs to {owner}, not to {account.address}; serve it "
            "with its owner's wallet."
        )
    db_path = Path(db) if db else config.settings.home / "pools" / f"{workerpool}.db"
    db_path.parent.mkdir(parents=True, exist_ok=True)
    settings = SchedulerSettings(
        rpc_url=config.settings.resolved_rpc_url(),
        deployment=client.deployment,
        private_key=account.key.hex(),
        workerpool=workerpool,
        db_url=str(db_path),
        storage_url=config.storage_url,
        host=host,
        port=port,
    )
    if poll_interval_s is not None:
        settings = settings.with_(poll_interval_s=poll_interval_s)
    network = config.settings.network
    if network is not None:  # the network's finality depth and provider range limit
        settings = settings.with_(
            confirmations=network.confirmations,
            log_chunk_blocks=min(settings.log_chunk_blocks, network.log_range),
        )
    return settings


def serve_pool(
    config: Config,
    account: LocalAccount,
    workerpool: int,
    *,
    host: str = "127.0.0.1",
    port: int = 8700,
    db: str | Path | None = None,
) -> None:
    """Run the pool's scheduler (HTTP API for workers + chain loops) until interrupted."""
    from comptoir.scheduler import run_scheduler

    settings = scheduler_settings(config, account, workerpool, host=host, port=port, db=db)
    run_scheduler(settings)


def run_worker(
    config: Config,
    account: LocalAccount,
    scheduler_url: str,
    *,
    work_dir: str | Path | None = None,
    idle_only: bool = False,
) -> None:
    """Run a worker agent for the pool whose scheduler answers at `scheduler_url`."""
    from comptoir.logsetup import configure_logging
    from comptoir.worker import WorkerSettings
    from comptoir.worker import run_worker as run_agent

    client = ChainClient.from_settings(config.settings)
    # schedulers hand work only to workers whose free balance covers the deal's stake
    if client.balance(account.address) == 0:
        raise ConfigError(
            f"The worker {account.address} has no free balance to stake on its "
            "contributions; deposit some tokens first with 'comptoir account deposit'."
        )
    work = Path(work_dir) if work_dir else config.settings.home / "workers" / account.address
    settings = WorkerSettings(
        private_key=account.key.hex(),
        scheduler_url=scheduler_url,
        storage_url=config.need_storage(),
        key_service_url=config.key_service_url,
        rpc_url=config.settings.resolved_rpc_url(),
        deployment=client.deployment,
        work_dir=work.absolute(),
        idle_only=idle_only,
    )
    configure_logging()
    run_agent(settings)
