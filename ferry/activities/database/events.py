"""Processed-event activities: inbound event IDs a consumer has handled."""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from dataclasses import dataclass

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities


@dataclass
class ProcessedEventInput:
    tenant_id: str
    consumer: str
    event_id: str
    event_type: str | None = None


@dataclass
class EventMark:
    first_time: bool


class ProcessedEventActivities(TenantScopedActivities):
    """Deduplication of inbound events beyond Temporal's retention."""

    @activity.defn(name="mark_event_processed")
    async def mark_event_processed(self, request: ProcessedEventInput) -> EventMark:
        """Record an inbound event as handled; `first_time` is False for a duplicate."""
        async with self._scope(request.tenant_id) as db:
            first = await db.events.mark(request.consumer, request.event_id, request.event_type)
            return EventMark(first_time=first)
