"""Tenant activities: the tenant row, its plan, status and quota flag, its members."""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from dataclasses import dataclass, field

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities
from ferry.contracts.convert import build
from ferry.contracts.enums import MemberRole, StorageProvider, TenantPlan, TenantStatus
from ferry.db import models as m


@dataclass
class TenantRef:
    tenant_id: str


@dataclass
class TenantRecord:
    tenant_id: str
    name: str
    plan: TenantPlan
    status: TenantStatus
    region: str
    admin_email: str
    storage_provider: StorageProvider
    storage_bucket: str
    quota_bytes: int
    quota_files: int
    max_file_bytes: int
    over_quota: bool = False
    status_reason: str | None = None


@dataclass
class CreateTenantInput:
    """The database side of provisioning: the tenant, its plan's quotas, its admin."""

    tenant_id: str
    name: str
    plan: TenantPlan
    region: str
    admin_email: str
    storage_provider: StorageProvider
    storage_bucket: str
    admin_user_id: str | None = None  # defaults to `admin_email`
    admin_display_name: str | None = None


@dataclass
class CreateTenantResult:
    tenant: TenantRecord
    created: bool


@dataclass
class TenantLookup:
    found: bool
    tenant: TenantRecord | None = None


@dataclass
class TenantStatusInput:
    tenant_id: str
    status: TenantStatus
    reason: str | None = None


@dataclass
class ApplyPlanInput:
    """Set the plan and its quotas; also the compensation that restores the old plan."""

    tenant_id: str
    plan: TenantPlan


@dataclass
class OverQuotaInput:
    tenant_id: str
    over_quota: bool


@dataclass
class DeletedTenantRows:
    tenant_id: str
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class MemberInput:
    tenant_id: str
    user_id: str
    role: MemberRole
    email: str | None = None
    display_name: str | None = None


@dataclass
class MemberRecord:
    tenant_id: str
    user_id: str
    role: MemberRole


def tenant_record(row: m.Tenant) -> TenantRecord:
    """The activities' view of a tenant's row."""
    return build(TenantRecord, row, tenant_id=row.id)


class TenantActivities(TenantScopedActivities):
    """The tenant's own row and its memberships."""

    @activity.defn(name="create_tenant")
    async def create_tenant(self, request: CreateTenantInput) -> CreateTenantResult:
        """The tenant row in `provisioning` with its plan's quotas, and its admin as owner."""
        async with self._scope(request.tenant_id) as db:
            tenant, created = await db.tenants.create(
                name=request.name,
                plan=request.plan,
                region=request.region,
                admin_email=request.admin_email,
                storage_provider=request.storage_provider,
                storage_bucket=request.storage_bucket,
            )
            await db.users.add_member(
                request.admin_user_id or request.admin_email,
                MemberRole.OWNER,
                email=request.admin_email,
                display_name=request.admin_display_name,
            )
            return CreateTenantResult(tenant_record(tenant), created)

    @activity.defn(name="get_tenant")
    async def get_tenant(self, request: TenantRef) -> TenantLookup:
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.get()
            if tenant is None:
                return TenantLookup(False)
            return TenantLookup(True, tenant_record(tenant))

    @activity.defn(name="set_tenant_status")
    async def set_tenant_status(self, request: TenantStatusInput) -> TenantRecord:
        """Activate, suspend, reactivate, or mark the tenant as being deleted."""
        async with self._scope(request.tenant_id) as db:
            return tenant_record(await db.tenants.set_status(request.status, request.reason))

    @activity.defn(name="apply_tenant_plan")
    async def apply_tenant_plan(self, request: ApplyPlanInput) -> TenantRecord:
        async with self._scope(request.tenant_id) as db:
            return tenant_record(await db.tenants.apply_plan(request.plan))

    @activity.defn(name="set_tenant_over_quota")
    async def set_tenant_over_quota(self, request: OverQuotaInput) -> TenantRecord:
        async with self._scope(request.tenant_id) as db:
            return tenant_record(await db.tenants.set_over_quota(request.over_quota))

    @activity.defn(name="delete_tenant_rows")
    async def delete_tenant_rows(self, request: TenantRef) -> DeletedTenantRows:
        """Remove every row of the tenant (a repeat finds nothing left to delete)."""
        async with self._scope(request.tenant_id) as db:
            return DeletedTenantRows(request.tenant_id, await db.tenants.delete_rows())

    @activity.defn(name="count_tenant_rows")
    async def count_tenant_rows(self, request: TenantRef) -> DeletedTenantRows:
        """The tenant's rows that `delete_tenant_rows` removes, counted by table (after a
        deletion, all zero)."""
        async with self._scope(request.tenant_id) as db:
            return DeletedTenantRows(request.tenant_id, await db.tenants.count_rows())

    @activity.defn(name="add_tenant_member")
    async def add_tenant_member(self, request: MemberInput) -> MemberRecord:
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            membership = await db.users.add_member(
                request.user_id,
                request.role,
                email=request.email,
                display_name=request.display_name,
            )
            return MemberRecord(request.tenant_id, membership.user_id, membership.role)
