"""The tenant's own row, and the deletion of all of a tenant's rows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, func, select

from ferry.contracts.enums import StorageProvider, TenantPlan, TenantStatus
from ferry.contracts.plans import limits_for
from ferry.db.errors import TenantNotFound
from ferry.db.models import (
    File,
    FileMigration,
    FileMigrationItem,
    Membership,
    Share,
    Tenant,
    UsageReport,
    User,
)
from ferry.db.models import Thumbnail as ThumbnailRow
from ferry.db.repositories.base import Repository, _table, _upsert

# What a tenant owns besides its own row, children first (the order `delete_rows` goes in).
# Processed event IDs are not among them (see `delete_rows`).
_OWNED_ROWS = tuple(
    _table(model)
    for model in (
        ThumbnailRow,
        Share,
        FileMigrationItem,
        FileMigration,
        File,
        Membership,
        User,
        UsageReport,
    )
)

# Read at the start of every upload: built once.
_THIS_TENANT = (
    select(Tenant)
    .where(Tenant.id == bindparam("p_tenant"))
    .execution_options(populate_existing=True)
)


class TenantRepository(Repository):
    """The tenant's own row: plan, status, quotas, storage."""

    async def _count(self, query: Any, condition: Any) -> int:
        return int((await self._execute(query.where(condition))).scalar_one())

    async def get(self) -> Tenant | None:
        found = await self.session.execute(_THIS_TENANT, {"p_tenant": self.tenant_id})
        return found.scalar_one_or_none()

    async def require(self) -> Tenant:
        return self._found(await self.get(), TenantNotFound, self.tenant_id)

    async def create(
        self,
        *,
        name: str,
        plan: TenantPlan,
        region: str,
        admin_email: str,
        storage_provider: StorageProvider,
        storage_bucket: str,
    ) -> tuple[Tenant, bool]:
        """Insert the tenant in `provisioning` with its plan's quotas; True if it was new.

        An existing tenant is left as it is (a repeat is not a second tenant).
        """
        limits = limits_for(plan)
        values = {
            "id": self.tenant_id,
            "name": name,
            "plan": TenantPlan(plan),
            "status": TenantStatus.PROVISIONING,
            "region": region,
            "admin_email": admin_email,
            "storage_provider": StorageProvider(storage_provider),
            "storage_bucket": storage_bucket,
            "quota_bytes": limits.quota_bytes,
            "quota_files": limits.quota_files,
            "max_file_bytes": limits.max_file_bytes,
        }
        stmt = _upsert(Tenant, values, key=["id"]).returning(_table(Tenant).c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(), created

    async def set_status(self, status: TenantStatus, reason: str | None = None) -> Tenant:
        await self.require()
        await self._update(
            Tenant,
            [Tenant.id == self.tenant_id],
            {"status": TenantStatus(status), "status_reason": reason},
        )
        return await self.require()

    async def apply_plan(self, plan: TenantPlan) -> Tenant:
        """Set the plan and the quotas and limits that come with it."""
        await self.require()
        limits = limits_for(plan)
        values = {
            "plan": TenantPlan(plan),
            "quota_bytes": limits.quota_bytes,
            "quota_files": limits.quota_files,
            "max_file_bytes": limits.max_file_bytes,
        }
        await self._update(Tenant, [Tenant.id == self.tenant_id], values)
        return await self.require()

    async def set_over_quota(self, over_quota: bool) -> Tenant:
        await self.require()
        await self._update(Tenant, [Tenant.id == self.tenant_id], {"over_quota": over_quota})
        return await self.require()

    async def delete_rows(self) -> dict[str, int]:
        """Delete every row of the tenant, children first; the counts by table.

        Processed event IDs are kept: they hold no user data, and they stop a
        redelivered `tenant.creation_requested` from resurrecting the tenant.
        """
        deleted: dict[str, int] = {}
        for table in _OWNED_ROWS:
            result = await self._execute(delete(table).where(table.c.tenant_id == self.tenant_id))
            deleted[table.name] = result.rowcount
        result = await self._execute(delete(_table(Tenant)).where(Tenant.id == self.tenant_id))
        deleted["tenants"] = result.rowcount
        return deleted

    async def count_rows(self) -> dict[str, int]:
        """How many rows of the tenant each table of `delete_rows` holds (by table)."""
        counted: dict[str, int] = {}
        for table in _OWNED_ROWS:
            mine = table.c.tenant_id == self.tenant_id
            counted[table.name] = await self._count(select(func.count()).select_from(table), mine)
        tenants = select(func.count()).select_from(_table(Tenant))
        counted["tenants"] = await self._count(tenants, Tenant.id == self.tenant_id)
        return counted
