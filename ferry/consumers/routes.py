"""Where each inbound event goes: the whole mapping in one table (`ROUTES`).

An event either starts a workflow whose ID is its business key, or signals
the running workflow of that key. Inputs are the workflows' dataclasses,
converted here, at the edge, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from ferry.contracts.layout import Places
from ferry.contracts.storage import BucketRef, StorageRef
from ferry.workflows import (
    file_migration,
    file_sharing,
    file_upload,
    tenant_monitoring,
    tenant_provisioning,
    tenant_upgrade,
)
from ferry.workflows.common import search_attributes

Event = dict[str, Any]


class Action(StrEnum):
    START = "start"
    SIGNAL = "signal"


class Queue(StrEnum):
    """Logical task queues; the settings name the real ones."""

    FILES = "files"
    TENANTS = "tenants"


@dataclass(frozen=True)
class Route:
    action: Action
    workflow: str
    workflow_id: Callable[[Event], str]
    queue: Queue
    to_input: Callable[[Event], Any]
    summary: Callable[[Event], str]
    signal: str | None = None
    # Optional fields of the schema that this route cannot do without.
    required: tuple[str, ...] = ()
    # Every event but a tenant's creation names a tenant that must exist.
    tenant_must_exist: bool = True
    # Why the event may not be delivered as it is (it names what is not its own).
    refuse: Callable[[Event, Places], str | None] | None = None

    def refusal(self, event: Event, places: Places) -> str | None:
        return self.refuse(event, places) if self.refuse is not None else None

    def search_attributes(self, event: Event) -> TypedSearchAttributes:
        return search_attributes(str(event["tenant_id"]), event.get("file_id"))

    async def start(
        self, client: Client, event: Event, task_queue: str
    ) -> WorkflowHandle[Any, Any]:
        """Start the event's workflow: a second start of its ID is refused while
        Temporal remembers a closed run, and joins a running one."""
        return await client.start_workflow(
            self.workflow,
            self.to_input(event),
            id=self.workflow_id(event),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=self.search_attributes(event),
            static_summary=self.summary(event),
        )


def _upload(e: Event) -> file_upload.FileUploadInput:
    storage = e["storage"]
    return file_upload.FileUploadInput(
        event_id=e["event_id"],
        tenant_id=e["tenant_id"],
        file_id=e["file_id"],
        filename=e["filename"],
        declared_content_type=e["declared_content_type"],
        size_bytes=e["size_bytes"],
        storage=StorageRef(storage["provider"], storage["bucket"], storage["key"]),
        uploaded_by=e["uploaded_by"],
        sha256=e.get("sha256"),
        correlation_id=e.get("correlation_id"),
    )


def _upload_refusal(e: Event, places: Places) -> str | None:
    """An upload names its own object: under its upload prefix in the ingest bucket."""
    storage = e["storage"]
    return places.upload_refusal(e["tenant_id"], e["file_id"], storage["bucket"], storage["key"])


def _share(e: Event) -> file_sharing.ShareRequest:
    return file_sharing.ShareRequest(
        event_id=e["event_id"],
        tenant_id=e["tenant_id"],
        share_id=e["share_id"],
        file_id=e["file_id"],
        shared_by=e["shared_by"],
        grantee_type=e["grantee_type"],
        permission=e["permission"],
        notify=e["notify"],
        grantee=e.get("grantee"),
        expires_at=e.get("expires_at"),
        message=e.get("message"),
        correlation_id=e.get("correlation_id"),
    )


def _revocation(e: Event) -> file_sharing.ShareRevocation:
    return file_sharing.ShareRevocation(e["event_id"], e["share_id"], e["revoked_by"])


def _migration(e: Event) -> file_migration.MigrationRequest:
    # Avro cannot hold two fields named `source`: the migration's is `source_storage`.
    source, target = e["source_storage"], e["target"]
    return file_migration.MigrationRequest(
        event_id=e["event_id"],
        tenant_id=e["tenant_id"],
        migration_id=e["migration_id"],
        source=BucketRef(source["provider"], source["bucket"]),
        target=BucketRef(target["provider"], target["bucket"]),
        prefix=e.get("prefix"),
        batch_size=e["batch_size"],
        delete_source=e["delete_source"],
        correlation_id=e.get("correlation_id"),
    )


def _creation(e: Event) -> tenant_provisioning.TenantCreation:
    return tenant_provisioning.TenantCreation(
        event_id=e["event_id"],
        tenant_id=e["tenant_id"],
        name=e["name"],
        plan=e["plan"],
        region=e["region"],
        admin_email=e["admin_email"],
        storage_provider=e["storage_provider"],
        correlation_id=e.get("correlation_id"),
    )


def _upgrade(e: Event) -> tenant_upgrade.UpgradeRequest:
    return tenant_upgrade.UpgradeRequest(
        event_id=e["event_id"],
        tenant_id=e["tenant_id"],
        upgrade_id=e["upgrade_id"],
        from_plan=e["from_plan"],
        to_plan=e["to_plan"],
        requested_by=e["requested_by"],
        correlation_id=e.get("correlation_id"),
    )


def _lifecycle(action: str) -> Callable[[Event], tenant_monitoring.LifecycleRequest]:
    def convert(e: Event) -> tenant_monitoring.LifecycleRequest:
        return tenant_monitoring.LifecycleRequest(
            e["event_id"], action, e["requested_by"], e.get("reason")
        )

    return convert


def _payment(e: Event) -> tenant_upgrade.PaymentResult:
    return tenant_upgrade.PaymentResult(
        event_id=e["event_id"],
        payment_id=e["payment_id"],
        succeeded=e["event_type"] == "billing.payment_succeeded",
        upgrade_id=e.get("upgrade_id"),
        amount_minor=e.get("amount_minor"),
        currency=e.get("currency"),
        reason=e.get("reason"),
    )


def _lifecycle_route(action: str) -> Route:
    return Route(
        Action.SIGNAL,
        tenant_monitoring.WORKFLOW,
        lambda e: tenant_monitoring.workflow_id(e["tenant_id"]),
        Queue.TENANTS,
        _lifecycle(action),
        lambda e: f"{action} tenant {e['tenant_id']}",
        signal=tenant_monitoring.LIFECYCLE_SIGNAL,
    )


def _payment_route() -> Route:
    return Route(
        Action.SIGNAL,
        tenant_upgrade.WORKFLOW,
        lambda e: tenant_upgrade.workflow_id(e["tenant_id"], e["upgrade_id"]),
        Queue.TENANTS,
        _payment,
        lambda e: f"payment {e['payment_id']} for upgrade {e['upgrade_id']}",
        signal=tenant_upgrade.PAYMENT_SIGNAL,
        required=("upgrade_id",),
    )


ROUTES: dict[str, Route] = {
    "file.uploaded": Route(
        Action.START,
        file_upload.WORKFLOW,
        lambda e: file_upload.workflow_id(e["tenant_id"], e["file_id"]),
        Queue.FILES,
        _upload,
        lambda e: f"upload of {e['filename']!r} ({e['file_id']}) for tenant {e['tenant_id']}",
        refuse=_upload_refusal,
    ),
    "file.share_requested": Route(
        Action.START,
        file_sharing.WORKFLOW,
        lambda e: file_sharing.workflow_id(e["tenant_id"], e["share_id"]),
        Queue.FILES,
        _share,
        lambda e: f"share {e['share_id']} of file {e['file_id']} for tenant {e['tenant_id']}",
    ),
    "file.share_revocation_requested": Route(
        Action.SIGNAL,
        file_sharing.WORKFLOW,
        lambda e: file_sharing.workflow_id(e["tenant_id"], e["share_id"]),
        Queue.FILES,
        _revocation,
        lambda e: f"revoke share {e['share_id']}",
        signal=file_sharing.REVOKE_SIGNAL,
    ),
    "file.migration_requested": Route(
        Action.START,
        file_migration.WORKFLOW,
        lambda e: file_migration.workflow_id(e["tenant_id"], e["migration_id"]),
        Queue.FILES,
        _migration,
        lambda e: f"migration {e['migration_id']} for tenant {e['tenant_id']}",
    ),
    "tenant.creation_requested": Route(
        Action.START,
        tenant_provisioning.WORKFLOW,
        lambda e: tenant_provisioning.workflow_id(e["tenant_id"]),
        Queue.TENANTS,
        _creation,
        lambda e: f"provision tenant {e['tenant_id']} on the {e['plan']} plan",
        tenant_must_exist=False,
    ),
    "tenant.upgrade_requested": Route(
        Action.START,
        tenant_upgrade.WORKFLOW,
        lambda e: tenant_upgrade.workflow_id(e["tenant_id"], e["upgrade_id"]),
        Queue.TENANTS,
        _upgrade,
        lambda e: f"upgrade tenant {e['tenant_id']} from {e['from_plan']} to {e['to_plan']}",
    ),
    "tenant.suspension_requested": _lifecycle_route("suspend"),
    "tenant.reactivation_requested": _lifecycle_route("reactivate"),
    "tenant.deletion_requested": _lifecycle_route("delete"),
    "billing.payment_succeeded": _payment_route(),
    "billing.payment_failed": _payment_route(),
}
