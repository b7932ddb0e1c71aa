"""The event publisher: an idempotent aiokafka producer writing Avro events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from ferry.contracts.topics import topic_for
from ferry.schemas import AVRO_CONTENT_TYPE, encode
from ferry.telemetry import current_traceparent


@dataclass(frozen=True)
class Published:
    topic: str
    partition: int
    offset: int


def event_headers(
    event: Mapping[str, Any], traceparent: str | None = None
) -> list[tuple[str, bytes]]:
    """The headers of CONTRACT §1 on every record Ferry writes."""
    headers = [
        ("event-type", str(event["event_type"]).encode()),
        ("event-id", str(event["event_id"]).encode()),
        ("content-type", AVRO_CONTENT_TYPE.encode()),
    ]
    if traceparent:
        headers.append(("traceparent", traceparent.encode()))
    return headers


class EventPublisher:
    """Publishes events keyed by tenant, with acks from all in-sync replicas.

    The producer is idempotent, so a retry inside the client never duplicates a
    record; a retry of a whole publish repeats the same deterministic
    `event_id`, which downstream consumers deduplicate on.
    """

    def __init__(self, bootstrap: str) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            enable_idempotence=True,
            acks="all",
            linger_ms=5,
            request_timeout_ms=30_000,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def __aenter__(self) -> EventPublisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def publish(
        self, event: Mapping[str, Any], topic: str | None = None, traceparent: str | None = None
    ) -> Published:
        """Encode and send one event; returns once the broker has it.

        The record carries the active trace's `traceparent` unless one is given.
        """
        topic = topic or topic_for(str(event["event_type"]))
        traceparent = traceparent or current_traceparent()
        meta = await self._producer.send_and_wait(
            topic,
            value=encode(dict(event)),
            key=str(event["tenant_id"]).encode(),
            headers=event_headers(event, traceparent),
        )
        return Published(topic, meta.partition, meta.offset)

    async def send_raw(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> Published:
        """Send bytes unchanged (the DLQ and replays keep the original record)."""
        meta = await self._producer.send_and_wait(topic, value=value, key=key, headers=headers)
        return Published(topic, meta.partition, meta.offset)
