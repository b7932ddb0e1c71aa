"""The bridge's event ledger: known tenants and processed event IDs.

Temporal refuses a second run of a workflow ID only while it remembers the
first (its retention); the ledger remembers which events a consumer handled for
as long as its rows are kept, and tells the bridge which tenants exist.

It runs for every inbound record, so it uses SQLAlchemy Core on a connection
(no ORM session) and two short transactions per record, each scoped to the
event's tenant like every other access (row-level security applies).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from ferry.db.session import SET_TENANT, validate_tenant_id

_CHECK = text(
    "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = :tenant_id),"
    " EXISTS (SELECT 1 FROM processed_events"
    "         WHERE tenant_id = :tenant_id AND consumer = :consumer AND event_id = :event_id)"
)
_MARK = text(
    "INSERT INTO processed_events (tenant_id, consumer, event_id, event_type)"
    " VALUES (:tenant_id, :consumer, :event_id, :event_type)"
    " ON CONFLICT (tenant_id, consumer, event_id) DO NOTHING"
)


@dataclass(frozen=True)
class LedgerCheck:
    tenant_known: bool
    processed: bool


class EventLedger:
    """Reads and writes in the event's own tenant scope."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def check(
        self,
        tenant_id: str,
        consumer: str,
        event_id: str,
        *,
        known_tenant: bool = False,
        processed_possible: bool = True,
    ) -> LedgerCheck:
        """Does the tenant exist, and has `consumer` processed the event?

        The caller may already know that the tenant exists, or that the event is
        too young for Temporal to have forgotten a workflow it started; the
        database is not asked what is already known.
        """
        if known_tenant and not processed_possible:
            return LedgerCheck(tenant_known=True, processed=False)
        params = {
            "tenant_id": validate_tenant_id(tenant_id),
            "consumer": consumer,
            "event_id": event_id,
        }
        async with self._engine.begin() as conn:
            await conn.execute(SET_TENANT, params)
            known, processed = (await conn.execute(_CHECK, params)).one()
        return LedgerCheck(tenant_known=bool(known), processed=bool(processed))

    async def mark_many(self, consumer: str, events: Sequence[tuple[str, str, str]]) -> None:
        """Record `(tenant_id, event_id, event_type)` triples in one transaction.

        The tenant setting is local to the transaction and may change inside it:
        each tenant's rows are written under that tenant's scope.
        """
        by_tenant: dict[str, list[dict[str, str]]] = defaultdict(list)
        for tenant_id, event_id, event_type in events:
            by_tenant[validate_tenant_id(tenant_id)].append(
                {"tenant_id": tenant_id, "consumer": consumer, "event_id": event_id,
                 "event_type": event_type}
            )  # fmt: skip
        if not by_tenant:
            return
        async with self._engine.begin() as conn:
            for tenant_id, rows in by_tenant.items():
                await conn.execute(SET_TENANT, {"tenant_id": tenant_id})
                await conn.execute(_MARK, rows)
