"""Publishing Ferry's outbound events from workflows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity

from ferry.producers import EventPublisher


@dataclass
class OutboundEvent:
    """One event as the workflow built it: envelope and fields, JSON-safe.

    Timestamps are epoch milliseconds; `event_id` is deterministic
    (`ferry.producers.event_id_for`), so a retried publish is a duplicate that
    downstream consumers drop.
    """

    fields: dict[str, Any]


@dataclass
class PublishedEvent:
    topic: str
    partition: int
    offset: int


class EventActivities:
    def __init__(self, publisher: EventPublisher) -> None:
        self._publisher = publisher

    @activity.defn(name="publish_event")
    async def publish(self, event: OutboundEvent) -> PublishedEvent:
        published = await self._publisher.publish(event.fields)
        return PublishedEvent(published.topic, published.partition, published.offset)
