"""The reconciliation's one question across tenants (migration 0003's function).

Row-level security keeps every other query of Ferry inside one tenant; this one
asks, through a function that runs with its owner's rights, which work of any
tenant looks stuck. It answers identifiers, states and timestamps only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

_STUCK = text(
    "SELECT kind, tenant_id, object_id, since, total"
    " FROM ferry_reconciliation(:upload_deadline, :share_grace, :migration_idle, :row_limit,"
    " CAST(:only_tenants AS text[]))"
)


@dataclass(frozen=True)
class Overdue:
    tenant_id: str
    object_id: str
    since: datetime | None


@dataclass
class StuckRows:
    """Per kind, its total count and its oldest rows (at most the limit asked)."""

    totals: dict[str, int] = field(default_factory=dict)
    oldest: dict[str, list[Overdue]] = field(default_factory=lambda: defaultdict(list))


async def stuck_rows(
    engine: AsyncEngine,
    *,
    upload_deadline_seconds: int,
    share_grace_seconds: int,
    migration_idle_seconds: int,
    row_limit: int,
    only_tenants: Sequence[str] | None = None,
) -> StuckRows:
    """Uploads past their deadline, shares past their expiry, idle migrations, tenants
    over quota (each oldest first, at most `row_limit`), and every tenant that must
    have a monitoring workflow (kind `tenant_monitored`, all of them); with
    `only_tenants`, of those tenants alone."""
    params = {
        "upload_deadline": upload_deadline_seconds,
        "share_grace": share_grace_seconds,
        "migration_idle": migration_idle_seconds,
        "row_limit": row_limit,
        "only_tenants": None if only_tenants is None else list(only_tenants),
    }
    found = StuckRows()
    async with engine.connect() as conn:
        for row in await conn.execute(_STUCK, params):
            found.totals[row.kind] = int(row.total)
            found.oldest[row.kind].append(Overdue(row.tenant_id, row.object_id, row.since))
    return found
