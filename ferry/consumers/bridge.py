"""The Kafka → Temporal bridge: decode, route, start, then commit.

An offset is committed only after Temporal acknowledged every record before
it in its partition, so a crash replays records rather than losing them; the
replay is harmless because workflow IDs come from business keys and a
duplicate start is refused by Temporal and counted as done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from ferry.consumers.routes import ROUTES, Action, Queue, Route
from ferry.producers import EventPublisher
from ferry.schemas import EventDecodeError, decode

log = logging.getLogger(__name__)

DLQ_TOPIC = "ferry.dlq.v1"
INBOUND_TOPICS = (
    "ferry.uploads.v1",
    "ferry.storage-notifications.v1",
    "ferry.file-commands.v1",
    "ferry.tenants.v1",
    "ferry.billing.v1",
)


class Outcome(StrEnum):
    STARTED = "started"
    SIGNALLED = "signalled"
    DUPLICATE = "duplicate"
    DEAD_LETTERED = "dead-lettered"


class Rejected(Exception):
    """A record that can never be processed as it is: it goes to the DLQ."""


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> str | None:
    for key, value in record.headers or ():
        if key.lower() == name:
            return bytes(value).decode("utf-8", errors="replace")
    return None


@dataclass
class BridgeConfig:
    task_queues: Mapping[Queue, str]
    group_id: str = "ferry-bridge"
    topics: Sequence[str] = ("ferry.uploads.v1",)
    # A new group starts at the beginning so that no event is missed; tests
    # that share a topic with earlier runs start at the end instead.
    auto_offset_reset: str = "earliest"
    max_poll_records: int = 500


class _Ready(ConsumerRebalanceListener):  # type: ignore[misc]
    """Marks the bridge ready once it holds partitions and knows their positions."""

    def __init__(self, bridge: Bridge) -> None:
        self._bridge = bridge

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._bridge.ready.clear()

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        consumer = self._bridge.consumer
        if consumer is not None:
            for tp in assigned:
                await consumer.position(tp)
        self._bridge.ready.set()


class Bridge:
    """Consumes inbound topics and starts or signals workflows."""

    def __init__(
        self,
        client: Client,
        publisher: EventPublisher,
        bootstrap: str,
        config: BridgeConfig,
    ) -> None:
        self.client = client
        self.publisher = publisher
        self.bootstrap = bootstrap
        self.config = config
        self.consumer: AIOKafkaConsumer | None = None
        self.ready = asyncio.Event()
        self.counts: dict[Outcome, int] = dict.fromkeys(Outcome, 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then commit what is done and leave the group."""
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.config.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.config.auto_offset_reset,
            max_poll_records=self.config.max_poll_records,
            isolation_level="read_committed",
        )
        self.consumer.subscribe(list(self.config.topics), listener=_Ready(self))
        await self.consumer.start()
        try:
            while not stop.is_set():
                batches = await self.consumer.getmany(timeout_ms=200)
                if batches:
                    await self._process(batches)
        finally:
            await self.consumer.stop()

    async def _process(
        self, batches: Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        """Partitions in parallel, each in order; commit after all are acknowledged."""
        assert self.consumer is not None
        await asyncio.gather(*(self._partition(records) for records in batches.values()))
        await self.consumer.commit({tp: recs[-1].offset + 1 for tp, recs in batches.items()})

    async def _partition(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        for record in records:
            outcome = await self.handle(record)
            self.counts[outcome] += 1

    async def handle(self, record: ConsumerRecord[bytes, bytes]) -> Outcome:
        """Route one record; a record that cannot be routed goes to the DLQ."""
        try:
            event = self._decode(record)
            route = ROUTES.get(event["event_type"])
            if route is None:
                raise Rejected(f"no route for event type {event['event_type']!r}")
            return await self._deliver(route, event)
        except Rejected as rejected:
            await self._dead_letter(record, str(rejected))
            return Outcome.DEAD_LETTERED

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> dict[str, Any]:
        if record.value is None:
            raise Rejected("empty record value")
        try:
            return decode(record.value, _header(record, "content-type"))
        except EventDecodeError as exc:
            raise Rejected(f"{type(exc).__name__}: {exc}") from exc

    async def _deliver(self, route: Route, event: dict[str, Any]) -> Outcome:
        workflow_id = route.workflow_id(event)
        task_queue = self.config.task_queues[route.queue]
        if route.action is Action.START:
            try:
                handle = await self.client.start_workflow(
                    route.workflow,
                    route.to_input(event),
                    id=workflow_id,
                    task_queue=task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                    search_attributes=route.search_attributes(event),
                    static_summary=route.summary(event),
                )
            except WorkflowAlreadyStartedError:
                # The run of this business key exists or existed: this event is done.
                return Outcome.DUPLICATE
            # With USE_EXISTING, a start of a running ID succeeds without starting;
            # the server's response says which (the SDK keeps it on the handle).
            response = getattr(handle, "_start_workflow_response", None)
            return Outcome.STARTED if getattr(response, "started", True) else Outcome.DUPLICATE
        raise Rejected(f"action {route.action} is not supported yet")

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], reason: str) -> None:
        log.warning(
            "dead-lettering %s/%s@%s: %s", record.topic, record.partition, record.offset, reason
        )
        headers = list(record.headers or ())
        headers += [
            ("ferry-error", reason.encode()),
            ("ferry-source-topic", record.topic.encode()),
            ("ferry-source-partition", str(record.partition).encode()),
            ("ferry-source-offset", str(record.offset).encode()),
            ("ferry-failed-at", datetime.now(UTC).isoformat().encode()),
        ]
        await self.publisher.send_raw(DLQ_TOPIC, record.value, record.key, headers)
