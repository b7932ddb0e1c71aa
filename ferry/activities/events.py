"""Publishing Ferry's outbound events from workflows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio import activity

from ferry.contracts.errors import INVALID_EVENT
from ferry.producers import EventPublisher
from ferry.schemas import EventDecodeError


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
        """Encode and send the event; one its schema refuses fails at once (`InvalidEvent`).

        Kafka being away is retried by Temporal; a misspelt field never gets better.
        """
        try:
            published = await self._publisher.publish(event.fields)
        except (EventDecodeError, ValueError, KeyError) as exc:
            kind = event.fields.get("event_type")
            raise INVALID_EVENT(f"{kind!r} is not a valid event: {exc}") from exc
        return PublishedEvent(published.topic, published.partition, published.offset)
