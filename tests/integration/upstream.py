"""What the integration tests do as upstream services do: build events, publish them,
and provision tenants through their workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from ferry.contracts.policy import TenantPolicy
from ferry.contracts.topics import inbound_topic_for
from ferry.producers import EventPublisher
from ferry.workflows.tenant_provisioning import (
    ProvisioningResult,
    TenantCreation,
    TenantProvisioningWorkflow,
)


def event(event_type: str, tenant: str, **fields: Any) -> dict[str, Any]:
    """An upstream event: the envelope of CONTRACT §2 and `fields`."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "occurred_at": datetime.now(UTC),
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "tests.upstream",
        **fields,
    }


def owner(tenant: str) -> str:
    """The admin every test tenant is created with (the owner member)."""
    return f"owner@{tenant}.example"


def creation(tenant: str, provider: str = "local", plan: str = "free") -> dict[str, Any]:
    return event(
        "tenant.creation_requested",
        tenant,
        name=f"Tenant {tenant}",
        plan=plan,
        region="eu-west",
        admin_email=owner(tenant),
        storage_provider=provider,
    )


async def send(publisher: EventPublisher, record: dict[str, Any]) -> None:
    """Publish to the inbound topic of the event's type."""
    await publisher.publish(record, topic=inbound_topic_for(record["event_type"]))


async def provision(
    client: Client,
    task_queue: str,
    tenant: str,
    *,
    provider: str = "local",
    policy: TenantPolicy | None = None,
) -> ProvisioningResult:
    """Provision directly on a test queue, with a policy of the test's choosing."""
    request = creation(tenant, provider)
    return await client.execute_workflow(
        TenantProvisioningWorkflow.run,
        TenantCreation(
            event_id=request["event_id"],
            tenant_id=tenant,
            name=request["name"],
            plan=request["plan"],
            region=request["region"],
            admin_email=request["admin_email"],
            storage_provider=provider,
            policy=policy,
        ),
        id=f"tenant-provisioning/{tenant}",
        task_queue=task_queue,
    )
