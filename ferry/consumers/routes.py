"""Where each inbound event goes: the whole mapping in one table (`ROUTES`).

An event either starts a workflow whose ID is its business key, or signals
the running workflow of that key. Inputs are the workflows' dataclasses,
converted here, at the edge, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    Priority,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from ferry.contracts.convert import build
from ferry.contracts.layout import Places
from ferry.contracts.storage import BucketRef
from ferry.contracts.workflows import (
    FILE_MIGRATION,
    FILE_SHARING,
    FILE_UPLOAD,
    LIFECYCLE_SIGNAL,
    PAYMENT_SIGNAL,
    SHARE_REVOKE_SIGNAL,
    TENANT_MONITORING,
    TENANT_PROVISIONING,
    TENANT_UPGRADE,
    FileUploadInput,
    LifecycleRequest,
    MigrationRequest,
    PaymentResult,
    ShareRequest,
    ShareRevocation,
    TenantCreation,
    UpgradeRequest,
    file_migration_id,
    file_share_id,
    file_upload_id,
    tenant_monitoring_id,
    tenant_provisioning_id,
    tenant_upgrade_id,
)
from ferry.contracts.workflows import search_attributes as run_attributes

Event = dict[str, Any]
T = TypeVar("T")


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
        return run_attributes(str(event["tenant_id"]), event.get("file_id"))

    async def start(
        self, client: Client, event: Event, task_queue: str, *, fair: bool = True
    ) -> WorkflowHandle[Any, Any]:
        """Start the event's workflow. A second start of its ID is refused, by
        `WorkflowAlreadyStartedError`, while a run of it is running or Temporal
        remembers a closed one: the caller counts that as a duplicate.

        `fair`: the run's fairness key is its tenant, which its activities inherit, so
        one tenant's backlog waits beside the others' rather than in front of them."""
        return await client.start_workflow(
            self.workflow,
            self.to_input(event),
            id=self.workflow_id(event),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=self.search_attributes(event),
            static_summary=self.summary(event),
            priority=tenant_priority(str(event["tenant_id"])) if fair else Priority.default,
        )


def tenant_priority(tenant_id: str) -> Priority:
    """A run whose tasks take their turn by tenant (Temporal's task queue fairness)."""
    return Priority(fairness_key=tenant_id)


def from_event(cls: type[T], event: Event, **given: Any) -> T:
    """The workflow input `cls` from an event: each field from the event field of its name.

    A field the event does not have keeps its default; a field whose type is a
    dataclass (a storage or bucket reference) is built from the event's record;
    `given` sets fields the event names otherwise (or not at all). Events arrive
    decoded against their schema, so only the schema's fields can reach an input:
    an upstream service cannot set a field the contract does not give it (a policy).
    """
    return build(cls, event, **given)


def _converter(cls: type[Any], **given: Callable[[Event], Any]) -> Callable[[Event], Any]:
    return lambda e: from_event(cls, e, **{name: make(e) for name, make in given.items()})


def _upload_refusal(e: Event, places: Places) -> str | None:
    """An upload names its own object: under its upload prefix in the ingest bucket."""
    storage = e["storage"]
    return places.upload_refusal(e["tenant_id"], e["file_id"], storage["bucket"], storage["key"])


# Avro cannot hold two fields named `source`: the migration's is `source_storage`.
_migration = _converter(MigrationRequest, source=lambda e: BucketRef(**e["source_storage"]))
_payment = _converter(
    PaymentResult,
    succeeded=lambda e: e["event_type"] == "billing.payment_succeeded",
)


def _lifecycle(action: str) -> Callable[[Event], LifecycleRequest]:
    return _converter(LifecycleRequest, action=lambda e: action)


def _lifecycle_route(action: str) -> Route:
    return Route(
        Action.SIGNAL,
        TENANT_MONITORING,
        lambda e: tenant_monitoring_id(e["tenant_id"]),
        Queue.TENANTS,
        _lifecycle(action),
        lambda e: f"{action} tenant {e['tenant_id']}",
        signal=LIFECYCLE_SIGNAL,
    )


def _payment_route() -> Route:
    return Route(
        Action.SIGNAL,
        TENANT_UPGRADE,
        lambda e: tenant_upgrade_id(e["tenant_id"], e["upgrade_id"]),
        Queue.TENANTS,
        _payment,
        lambda e: f"payment {e['payment_id']} for upgrade {e['upgrade_id']}",
        signal=PAYMENT_SIGNAL,
        required=("upgrade_id",),
    )


ROUTES: dict[str, Route] = {
    "file.uploaded": Route(
        Action.START,
        FILE_UPLOAD,
        lambda e: file_upload_id(e["tenant_id"], e["file_id"]),
        Queue.FILES,
        _converter(FileUploadInput),
        lambda e: f"upload of {e['filename']!r} ({e['file_id']}) for tenant {e['tenant_id']}",
        refuse=_upload_refusal,
    ),
    "file.share_requested": Route(
        Action.START,
        FILE_SHARING,
        lambda e: file_share_id(e["tenant_id"], e["share_id"]),
        Queue.FILES,
        _converter(ShareRequest),
        lambda e: f"share {e['share_id']} of file {e['file_id']} for tenant {e['tenant_id']}",
    ),
    "file.share_revocation_requested": Route(
        Action.SIGNAL,
        FILE_SHARING,
        lambda e: file_share_id(e["tenant_id"], e["share_id"]),
        Queue.FILES,
        _converter(ShareRevocation),
        lambda e: f"revoke share {e['share_id']}",
        signal=SHARE_REVOKE_SIGNAL,
    ),
    "file.migration_requested": Route(
        Action.START,
        FILE_MIGRATION,
        lambda e: file_migration_id(e["tenant_id"], e["migration_id"]),
        Queue.FILES,
        _migration,
        lambda e: f"migration {e['migration_id']} for tenant {e['tenant_id']}",
    ),
    "tenant.creation_requested": Route(
        Action.START,
        TENANT_PROVISIONING,
        lambda e: tenant_provisioning_id(e["tenant_id"]),
        Queue.TENANTS,
        _converter(TenantCreation),
        lambda e: f"provision tenant {e['tenant_id']} on the {e['plan']} plan",
        tenant_must_exist=False,
    ),
    "tenant.upgrade_requested": Route(
        Action.START,
        TENANT_UPGRADE,
        lambda e: tenant_upgrade_id(e["tenant_id"], e["upgrade_id"]),
        Queue.TENANTS,
        _converter(UpgradeRequest),
        lambda e: f"upgrade tenant {e['tenant_id']} from {e['from_plan']} to {e['to_plan']}",
    ),
    "tenant.suspension_requested": _lifecycle_route("suspend"),
    "tenant.reactivation_requested": _lifecycle_route("reactivate"),
    "tenant.deletion_requested": _lifecycle_route("delete"),
    "billing.payment_succeeded": _payment_route(),
    "billing.payment_failed": _payment_route(),
}
