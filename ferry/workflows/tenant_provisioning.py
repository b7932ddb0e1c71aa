"""tenant_provisioning_workflow: its input (the workflow itself is built on it)."""

from __future__ import annotations

from dataclasses import dataclass

WORKFLOW = "tenant_provisioning_workflow"


def workflow_id(tenant_id: str) -> str:
    return f"tenant-provisioning/{tenant_id}"


@dataclass
class TenantCreation:
    """A `tenant.creation_requested` event."""

    event_id: str
    tenant_id: str
    name: str
    plan: str  # free | pro | enterprise
    region: str
    admin_email: str
    storage_provider: str  # local | s3 | gcs | azure
    correlation_id: str | None = None
