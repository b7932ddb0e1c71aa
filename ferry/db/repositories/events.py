"""Inbound event IDs a consumer has already handled."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from ferry.db.models import ProcessedEvent
from ferry.db.repositories.base import Repository, _table, _upsert


class ProcessedEventRepository(Repository):
    """Inbound event IDs a consumer has handled (deduplication beyond Temporal's retention)."""

    async def mark(self, consumer: str, event_id: str, event_type: str | None = None) -> bool:
        """Record the event as processed; True the first time, False for a duplicate."""
        values = {
            "tenant_id": self.tenant_id,
            "consumer": consumer,
            "event_id": event_id,
            "event_type": event_type,
        }
        key = ["tenant_id", "consumer", "event_id"]
        stmt = _upsert(ProcessedEvent, values, key).returning(_table(ProcessedEvent).c.event_id)
        return (await self._execute(stmt)).first() is not None

    async def seen(self, consumer: str, event_id: str) -> bool:
        found = await self._one(
            ProcessedEvent,
            ProcessedEvent.tenant_id == self.tenant_id,
            ProcessedEvent.consumer == consumer,
            ProcessedEvent.event_id == event_id,
        )
        return found is not None

    async def prune(self, before: datetime) -> int:
        """Forget the tenant's events processed before `before`; how many were removed."""
        table = _table(ProcessedEvent)
        result = await self._execute(
            delete(table).where(table.c.tenant_id == self.tenant_id, table.c.processed_at < before)
        )
        return result.rowcount
