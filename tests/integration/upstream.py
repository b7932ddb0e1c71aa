"""What the integration tests do as upstream services do: build events, publish them,
and provision tenants through their workflow."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client

from ferry.contracts.ids import event_id_for
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


def _file_outcome(event_type: str, tenant: str, source: str, **fields: Any) -> dict[str, Any]:
    """An outcome event as an upload workflow emits it (its ID derived from the run's)."""
    file_id = str(uuid.uuid4())
    return {
        "event_id": event_id_for(f"file-upload/{tenant}/{file_id}", event_type),
        "event_type": event_type,
        "occurred_at": int(time.time() * 1000),
        "tenant_id": tenant,
        "correlation_id": str(uuid.uuid4()),
        "source": source,
        "file_id": file_id,
        **fields,
    }


def file_processed(tenant: str, source: str, size: int = 123) -> dict[str, Any]:
    """A `file.processed` of a text file of `size` bytes."""
    event = _file_outcome("file.processed", tenant, source)
    file_id = event["file_id"]
    return {
        **event,
        "sha256": hashlib.sha256(file_id.encode()).hexdigest(),
        "size_bytes": size,
        "content_type": "text/plain",
        "storage": {
            "provider": "local",
            "bucket": f"ferry-{tenant}",
            "key": f"files/{file_id}/original",
        },
        "thumbnails": [],
        "metadata": {"filename": "notes.txt"},
        "analysis": {},
    }


def file_rejected(
    tenant: str,
    source: str,
    reason: str = "infected",
    detail: str = "Eicar-Test-Signature.UNOFFICIAL",
    signature: str | None = "Eicar-Test-Signature.UNOFFICIAL",
) -> dict[str, Any]:
    """A `file.rejected`, by default of an infected file."""
    return _file_outcome(
        "file.rejected", tenant, source, reason=reason, detail=detail, signature=signature
    )


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


async def delete_topics_of(bootstrap: str, app_id: str) -> None:
    """Delete the topics a faust app made (its changelogs: `{app_id}-...`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(f"{app_id}-")]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()
