"""Worker agent: registers with a pool's scheduler, pulls tasks, verifies app and dataset
bytes against the chain, runs them in the sandbox, commits and reveals results."""

from comptoir.worker.agent import WorkerAgent, run_worker, run_worker_async
from comptoir.worker.settings import WorkerSettings

__all__ = ["WorkerAgent", "WorkerSettings", "run_worker", "run_worker_async"]
