"""What `tenant_monitoring_workflow` does when a tenant's grace period is over: delete its
objects, buckets and rows, look again, and say what was removed. Workflow code."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import DatabaseActivities, DeletedTenantRows, TenantRef
    from ferry.activities.storage import ObjectCount, PrefixRequest, StorageActivities
    from ferry.contracts.errors import DELETION_INCOMPLETE
    from ferry.contracts.events import TenantDeleted
    from ferry.contracts.policy import TenantPolicy
    from ferry.contracts.storage import BucketRef
    from ferry.workflows.common import STORAGE_RETRY, call_db


@dataclass
class Removed:
    """What a deletion removed: the objects of each place it emptied, and the rows."""

    places_emptied: list[tuple[PrefixRequest, ObjectCount]] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)

    def places(self) -> list[PrefixRequest]:
        return [place for place, _ in self.places_emptied]

    def receipt(self) -> TenantDeleted:
        """`tenant.deleted` with the counts, once the deletion has been verified."""
        objects = sum(count.objects for _, count in self.places_emptied)
        size = sum(count.bytes for _, count in self.places_emptied)
        detail = (
            f"removed {sum(self.rows.values())} rows, {objects} objects ({size} bytes);"
            " verified: no row and no object left"
        )
        return TenantDeleted(
            detail=detail,
            rows_deleted=self.rows,
            objects_deleted={
                place_name(place): count.objects for place, count in self.places_emptied
            },
            bytes_deleted=size,
            verified=True,
        )


async def delete_tenant_data(
    tenant_id: str, provider: str, bucket: str, policy: TenantPolicy
) -> Removed:
    """The tenant's buckets (its own provider's, and any a failed-over upload wrote on
    another provider), its parts of the shared buckets, then its rows."""
    removed = Removed()
    for each in [provider, *(p for p in policy.providers if p != provider)]:
        emptied = await _storage(StorageActivities.delete_bucket, BucketRef(each, bucket))
        removed.places_emptied.append((PrefixRequest(each, bucket, ""), emptied))
    for place in shared_places(tenant_id, policy):
        emptied = await _storage(StorageActivities.delete_prefix, place)
        removed.places_emptied.append((place, emptied))
    rows: DeletedTenantRows = await call_db(
        DatabaseActivities.delete_tenant_rows, TenantRef(tenant_id)
    )
    removed.rows = rows.rows
    return removed


def shared_places(tenant_id: str, policy: TenantPolicy) -> list[PrefixRequest]:
    """The tenant's parts of the shared quarantine and ingest buckets, on each provider."""
    return [
        PrefixRequest(provider, bucket, prefix)
        for provider in policy.providers
        for bucket, prefix in (
            (policy.quarantine_bucket, f"quarantine/{tenant_id}/"),
            (policy.ingest_bucket, f"tenants/{tenant_id}/"),
        )
    ]


async def verify_deleted(tenant_id: str, places: list[PrefixRequest]) -> None:
    """A fresh listing of every place and a count of the tenant's rows: all empty, or a
    non-retryable `DeletionIncomplete` that fails the run (and says what is left)."""
    workflow.set_current_details("verifying the deletion")
    left = []
    for place in places:
        found: ObjectCount = await _storage(StorageActivities.measure, place)
        if found.objects:
            left.append(f"{found.objects} objects in {place_name(place)}")
    rows: DeletedTenantRows = await call_db(
        DatabaseActivities.count_tenant_rows, TenantRef(tenant_id)
    )
    left += [f"{count} rows in {table}" for table, count in rows.rows.items() if count]
    if left:
        raise DELETION_INCOMPLETE(f"tenant {tenant_id} not deleted: " + "; ".join(left))


def place_name(place: PrefixRequest) -> str:
    """`provider:bucket/prefix`, as `tenant.deleted` names the places it emptied."""
    return f"{place.provider}:{place.bucket}/{place.prefix}"


async def _storage(activity: Any, request: Any) -> Any:
    return await workflow.execute_activity_method(
        activity,
        request,
        start_to_close_timeout=timedelta(hours=1),
        heartbeat_timeout=timedelta(minutes=1),
        retry_policy=STORAGE_RETRY,
    )
