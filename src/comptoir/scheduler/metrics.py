"""Prometheus metrics of one scheduler (own registry: several apps may share a process)."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from comptoir.scheduler.db import TASK_STATES


class SchedulerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.tasks = Gauge("comptoir_scheduler_tasks", "Tasks by status", ["status"], registry=r)
        self.workers_online = Gauge(
            "comptoir_scheduler_workers_online", "Workers with a live lease", registry=r
        )
        self.assignments_running = Gauge(
            "comptoir_scheduler_assignments_running", "Replicas being computed", registry=r
        )
        self.deals_active = Gauge(
            "comptoir_scheduler_deals_active", "Deals with unsettled tasks", registry=r
        )
        self.finalize_gas = Histogram(
            "comptoir_scheduler_finalize_gas",
            "Gas used by each finalize transaction",
            buckets=(5e4, 1e5, 2e5, 4e5, 8e5, 1.6e6, 3.2e6, 6.4e6, 1.28e7),
            registry=r,
        )
        self.finalize_tx = Counter(
            "comptoir_scheduler_finalize_transactions", "Finalize transactions sent", registry=r
        )
        self.tasks_finalized = Counter(
            "comptoir_scheduler_tasks_finalized", "Tasks finalized by this scheduler", registry=r
        )
        self.claims = Counter(
            "comptoir_scheduler_tasks_claimed", "Expired tasks claimed (refunded)", registry=r
        )
        self.assignments_lost = Counter(
            "comptoir_scheduler_assignments_lost", "Replicas lost with their worker", registry=r
        )
        self.assignments_dispatched = Counter(
            "comptoir_scheduler_assignments_dispatched", "Replicas handed to workers", registry=r
        )
        self.step_retries = Counter(
            "comptoir_scheduler_step_retries",
            "Background steps that failed (node, database, storage down) and are retried",
            ["step"],
            registry=r,
        )
        self.rollbacks = Counter(
            "comptoir_scheduler_rollbacks",
            "Settlements (or deals) the chain no longer holds, driven again (or dropped)",
            ["kind"],
            registry=r,
        )
        for status in TASK_STATES:
            self.tasks.labels(status=status).set(0)

    def update(self, counts: dict[str, Any]) -> None:
        for status in TASK_STATES:
            self.tasks.labels(status=status).set(counts["tasks"].get(status, 0))
        self.workers_online.set(counts["workers_online"])
        self.assignments_running.set(counts["assignments_running"])
        self.deals_active.set(counts["deals_active"])
