"""reconciliation_workflow: find the work that should have ended, repair what is safe to.

A Temporal Schedule (`ferry.worker.RECONCILIATIONS`) starts a run
every few minutes. A run asks the database and Temporal's visibility for uploads
still processing past their deadline, shares active past their expiry,
migrations without progress, tenants over quota, and tenants without a running
monitoring workflow; it starts the missing monitoring workflows (the one repair
that is always safe: the workflow loads the tenant from the database and is
idempotent by its ID), and reports the counts as the worker's metrics. The
rest is for an operator: the run's details and result name the oldest of each.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from ferry.activities.reconciliation import (
        KINDS,
        ReconciliationActivities,
        ReconciliationReport,
        StuckWork,
    )
    from ferry.contracts.workflows import RECONCILIATION as WORKFLOW
    from ferry.contracts.workflows import (
        ReconciliationRequest,
        search_attributes,
        tenant_monitoring_id,
    )
    from ferry.workflows.common import DB_RETRY, tenant_policy
    from ferry.workflows.tenant_monitoring import MonitoringInput, TenantMonitoringWorkflow


@workflow.defn(name=WORKFLOW)
class ReconciliationWorkflow:
    """One look for stuck work; the schedule makes it periodic."""

    @workflow.run
    async def run(self, request: ReconciliationRequest) -> ReconciliationReport:
        workflow.set_current_details("looking for stuck work")
        found: StuckWork = await workflow.execute_activity_method(
            ReconciliationActivities.find_stuck_work,
            request,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=DB_RETRY,
        )
        report = ReconciliationReport(found)
        if request.repair and found.unmonitored:
            await self._start_monitoring(report)
        await workflow.execute_local_activity_method(
            ReconciliationActivities.report,
            report,
            start_to_close_timeout=timedelta(seconds=10),
        )
        workflow.set_current_details(_details(report))
        return report

    async def _start_monitoring(self, report: ReconciliationReport) -> None:
        """Each unmonitored tenant's monitoring workflow, living on after this run."""
        policy = await tenant_policy()
        for tenant_id in report.found.unmonitored:
            try:
                await workflow.start_child_workflow(
                    TenantMonitoringWorkflow.run,
                    MonitoringInput(tenant_id, policy),
                    id=tenant_monitoring_id(tenant_id),
                    parent_close_policy=ParentClosePolicy.ABANDON,
                    search_attributes=search_attributes(tenant_id),
                    static_summary=f"monitoring of tenant {tenant_id} (started by reconciliation)",
                )
            except WorkflowAlreadyStartedError:
                continue  # started since the run looked: nothing to repair
            else:
                report.repaired.append(tenant_id)


def _details(report: ReconciliationReport) -> str:
    """The run's findings as the Temporal UI shows them (Markdown)."""
    lines = ["| kind | found | left | oldest |", "|---|---|---|---|"]
    for kind in KINDS:
        oldest = report.found.oldest.get(kind) or []
        first = f"{oldest[0].tenant_id}/{oldest[0].object_id}" if oldest else ""
        count = report.found.counts.get(kind, 0)
        lines.append(f"| {kind} | {count} | {report.left(kind)} | {first} |")
    if report.repaired:
        lines.append(f"\nstarted monitoring of: {', '.join(report.repaired)}")
    return "\n".join(lines)
