"""Workerpool scheduler: watches the chain for the pool's deals, dispatches replicas to
registered workers, drives commit-reveal and finalizes (or claims) on-chain."""

from comptoir.scheduler.api import create_scheduler_app
from comptoir.scheduler.server import run_scheduler
from comptoir.scheduler.settings import SchedulerSettings

__all__ = ["SchedulerSettings", "create_scheduler_app", "run_scheduler"]
