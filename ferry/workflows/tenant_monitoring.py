"""tenant_monitoring_workflow: its lifecycle signal (the workflow itself is built on it)."""

from __future__ import annotations

from dataclasses import dataclass

WORKFLOW = "tenant_monitoring_workflow"
LIFECYCLE_SIGNAL = "lifecycle_requested"


def workflow_id(tenant_id: str) -> str:
    return f"tenant-monitoring/{tenant_id}"


@dataclass
class LifecycleRequest:
    """A `tenant.suspension_requested`, `.reactivation_requested` or `.deletion_requested` event."""

    event_id: str
    action: str  # suspend | reactivate | delete
    requested_by: str
    reason: str | None = None
