"""Usage activities: what a tenant stores now, and one row per measured window."""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from dataclasses import dataclass
from datetime import datetime

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities
from ferry.activities.database.tenants import TenantRef
from ferry.contracts.enums import TenantPlan


@dataclass
class UsageMeasurement:
    """What the tenant stores now (processed files) against its plan's quota."""

    tenant_id: str
    files: int
    bytes: int
    quota_bytes: int
    quota_files: int
    plan: TenantPlan
    over_quota: bool


@dataclass
class UsageReport:
    tenant_id: str
    window_start: datetime
    window_end: datetime
    files: int
    bytes: int
    quota_bytes: int
    plan: TenantPlan


class UsageActivities(TenantScopedActivities):
    """Usage against the plan's quota, and the usage reports."""

    @activity.defn(name="measure_tenant_usage")
    async def measure_tenant_usage(self, request: TenantRef) -> UsageMeasurement:
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.require()
            usage = await db.files.usage()
            return UsageMeasurement(
                tenant_id=tenant.id,
                files=usage.files,
                bytes=usage.bytes,
                quota_bytes=tenant.quota_bytes,
                quota_files=tenant.quota_files,
                plan=tenant.plan,
                over_quota=tenant.over_quota,
            )

    @activity.defn(name="record_usage")
    async def record_usage(self, request: UsageReport) -> UsageReport:
        """Store one window's usage, keyed by the window's start."""
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            row = await db.usage.record(
                window_start=request.window_start,
                window_end=request.window_end,
                files=request.files,
                bytes=request.bytes,
                quota_bytes=request.quota_bytes,
                plan=request.plan,
            )
            return UsageReport(
                row.tenant_id,
                row.window_start,
                row.window_end,
                row.files,
                row.bytes,
                row.quota_bytes,
                row.plan,
            )
