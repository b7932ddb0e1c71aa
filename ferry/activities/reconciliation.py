"""The reconciliation's activities: find the work that looks stuck, report what was found.

What should have ended comes from Postgres (`ferry.db.reconciliation`); which
tenants have a running monitoring workflow comes from Temporal's visibility.
The report sets the worker's gauges (`ferry_reconciliation_found` by kind, and
the time of the run), so Prometheus and `ferry status` show the counts of the
last run.
"""

# No `from __future__ import annotations`: the workflow decodes these dataclasses
# inside the Temporal sandbox (see ferry/activities/database/tenants.py).

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client

from ferry.contracts.workflows import (
    TENANT_MONITORING,
    ReconciliationRequest,
    tenant_monitoring_id,
)
from ferry.db.reconciliation import stuck_rows

log = logging.getLogger(__name__)

UPLOAD_OVERDUE = "upload_overdue"
SHARE_OVERDUE = "share_overdue"
MIGRATION_IDLE = "migration_idle"
TENANT_OVER_QUOTA = "tenant_over_quota"
TENANT_UNMONITORED = "tenant_unmonitored"
KINDS = (UPLOAD_OVERDUE, SHARE_OVERDUE, MIGRATION_IDLE, TENANT_OVER_QUOTA, TENANT_UNMONITORED)
# The tenants the database says must have a monitoring workflow (migration 0003).
_MONITORED = "tenant_monitored"

FOUND = "ferry_reconciliation_found"
FOUND_HELP = "What the last reconciliation found, by kind (unmonitored: left after repairs)."
REPAIRS = "ferry_reconciliation_repairs"
REPAIRS_HELP = "Repairs the reconciliation made, by kind."
LAST_RUN = "ferry_reconciliation_timestamp_seconds"
LAST_RUN_HELP = "When this worker last reported a reconciliation (Unix time)."


@dataclass
class StuckItem:
    tenant_id: str
    object_id: str
    since: datetime | None = None


@dataclass
class StuckWork:
    """Counts by kind (every kind of `KINDS`), the oldest of each, the tenants to repair."""

    counts: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, list[StuckItem]] = field(default_factory=dict)
    unmonitored: list[str] = field(default_factory=list)


@dataclass
class ReconciliationReport:
    """A run's findings and what it repaired: the workflow's result."""

    found: StuckWork
    repaired: list[str] = field(default_factory=list)

    def left(self, kind: str) -> int:
        """How many of `kind` are still stuck after this run's repairs."""
        if kind == TENANT_UNMONITORED:
            return self.found.counts.get(kind, 0) - len(self.repaired)
        return self.found.counts.get(kind, 0)


class ReconciliationActivities:
    def __init__(self, engine: AsyncEngine, client: Client) -> None:
        self._engine = engine
        self._client = client

    @activity.defn
    async def find_stuck_work(self, request: ReconciliationRequest) -> StuckWork:
        """Everything that should have ended and has not, oldest first."""
        rows = await stuck_rows(
            self._engine,
            upload_deadline_seconds=request.upload_deadline_seconds,
            share_grace_seconds=request.share_grace_seconds,
            migration_idle_seconds=request.migration_idle_seconds,
            row_limit=request.sample_limit,
            only_tenants=request.tenant_ids,
        )
        found = StuckWork()
        for kind in (UPLOAD_OVERDUE, SHARE_OVERDUE, MIGRATION_IDLE, TENANT_OVER_QUOTA):
            found.counts[kind] = rows.totals.get(kind, 0)
            found.oldest[kind] = [
                StuckItem(row.tenant_id, row.object_id, row.since) for row in rows.oldest[kind]
            ]
        monitored = await self._running_monitoring()
        missing = [row for row in rows.oldest[_MONITORED] if row.tenant_id not in monitored]
        found.counts[TENANT_UNMONITORED] = len(missing)
        found.oldest[TENANT_UNMONITORED] = [
            StuckItem(row.tenant_id, row.object_id, row.since)
            for row in missing[: request.sample_limit]
        ]
        found.unmonitored = [row.tenant_id for row in missing[: request.repair_limit]]
        return found

    async def _running_monitoring(self) -> set[str]:
        """The tenants whose monitoring workflow is running, by Temporal's visibility."""
        prefix = tenant_monitoring_id("")
        query = f"WorkflowType = '{TENANT_MONITORING}' AND ExecutionStatus = 'Running'"
        running: set[str] = set()
        async for execution in self._client.list_workflows(query):
            activity.heartbeat()
            if execution.id.startswith(prefix):
                running.add(execution.id.removeprefix(prefix))
        return running

    @activity.defn
    async def report(self, report: ReconciliationReport) -> None:
        """Set this worker's gauges to the run's counts; count and log its repairs."""
        meter = activity.metric_meter()
        found = meter.create_gauge(FOUND, FOUND_HELP)
        for kind in KINDS:
            found.set(max(0, report.left(kind)), {"kind": kind})
        if report.repaired:
            meter.create_counter(REPAIRS, REPAIRS_HELP).add(
                len(report.repaired), {"kind": TENANT_UNMONITORED}
            )
            log.warning(
                "reconciliation started the monitoring workflow of %d tenant(s): %s",
                len(report.repaired),
                ", ".join(report.repaired),
            )
        meter.create_gauge(LAST_RUN, LAST_RUN_HELP).set(int(time.time()))
