"""The bridge's event ledger: known tenants and processed event IDs.

Temporal refuses a second run of a workflow ID only while it remembers the
first (its retention); the ledger remembers which events a consumer handled for
as long as its rows are kept, and tells the bridge which tenants exist.

It sits on the path of every inbound record, so it works in batches: which
tenants of many records exist, and which events were handled, each in one
round trip, with SQLAlchemy Core on a connection (no ORM session). Every row is
still read and written in its own tenant's scope (row-level security applies).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ferry.db.session import SET_TENANT, validate_tenant_id

_PROCESSED = text(
    "SELECT EXISTS (SELECT 1 FROM processed_events"
    "               WHERE tenant_id = :tenant_id AND consumer = :consumer AND event_id = :event_id)"
)
# Both loop over the tenants inside the database, one tenant's scope at a time
# (migration 0002): a round trip per batch, not per tenant.
_EXISTING = text("SELECT ferry_existing_tenants(CAST(:tenant_ids AS text[]))")
_MARK = text(
    "SELECT ferry_mark_processed(:consumer, CAST(:tenant_ids AS text[]),"
    " CAST(:event_ids AS text[]), CAST(:event_types AS text[]))"
)


class EventLedger:
    """Reads and writes in the event's own tenant scope."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def existing_tenants(self, tenant_ids: Collection[str]) -> set[str]:
        """Which of `tenant_ids` exist, asked in one round trip."""
        ids = [validate_tenant_id(tenant_id) for tenant_id in dict.fromkeys(tenant_ids)]
        if not ids:
            return set()
        async with self._engine.begin() as conn:
            return set((await conn.execute(_EXISTING, {"tenant_ids": ids})).scalars())

    async def processed(self, tenant_id: str, consumer: str, event_id: str) -> bool:
        """Has `consumer` recorded the event as processed?"""
        params = {
            "tenant_id": validate_tenant_id(tenant_id),
            "consumer": consumer,
            "event_id": event_id,
        }
        async with self._engine.begin() as conn:
            await conn.execute(SET_TENANT, params)
            return bool((await conn.execute(_PROCESSED, params)).scalar())

    async def mark_many(self, consumer: str, events: Sequence[tuple[str, str, str]]) -> None:
        """Record `(tenant_id, event_id, event_type)` triples in one round trip.

        Each tenant's rows are written under that tenant's scope.
        """
        if not events:
            return
        tenant_ids = [validate_tenant_id(tenant_id) for tenant_id, _, _ in events]
        params = {
            "consumer": consumer,
            "tenant_ids": tenant_ids,
            "event_ids": [event_id for _, event_id, _ in events],
            "event_types": [event_type for _, _, event_type in events],
        }
        async with self._engine.begin() as conn:
            await conn.execute(_MARK, params)
