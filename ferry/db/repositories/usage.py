"""The tenant's measured usage, one row per window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ferry.contracts.enums import TenantPlan
from ferry.db.models import UsageReport
from ferry.db.repositories.base import Repository, _upsert


class UsageRepository(Repository):
    """The tenant's measured usage, one row per window."""

    async def record(
        self,
        *,
        window_start: datetime,
        window_end: datetime,
        files: int,
        bytes: int,
        quota_bytes: int,
        plan: TenantPlan,
    ) -> UsageReport:
        values = {
            "tenant_id": self.tenant_id,
            "window_start": window_start,
            "window_end": window_end,
            "files": files,
            "bytes": bytes,
            "quota_bytes": quota_bytes,
            "plan": TenantPlan(plan),
        }
        columns = ["window_end", "files", "bytes", "quota_bytes", "plan"]
        await self._execute(_upsert(UsageReport, values, ["tenant_id", "window_start"], columns))
        report = await self._one(
            UsageReport,
            UsageReport.tenant_id == self.tenant_id,
            UsageReport.window_start == window_start,
        )
        assert report is not None
        return report

    async def latest(self) -> UsageReport | None:
        stmt = (
            select(UsageReport)
            .where(UsageReport.tenant_id == self.tenant_id)
            .order_by(UsageReport.window_start.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
