"""The usage meter: a faust app from `ferry.file-events.v1` to the tenants' monitoring workflows.

Every `file.processed` event adds one file and its `size_bytes` to the
tenant's totals, kept in a faust table (in memory, restored from its
changelog topic on start). After each change the meter signals the tenant's
`tenant_monitoring_workflow` with the new totals. Totals, not increments,
so a signal that is lost (the meter stopped between the table write and the
signal) is made good by the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path

import faust
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from ferry.contracts.topics import FILE_EVENTS
from ferry.contracts.workflows import USAGE_SIGNAL, tenant_monitoring_id
from ferry.meter.metrics import MeterMetrics
from ferry.meter.usage import TenantUsage
from ferry.schemas import EventDecodeError, decode

log = logging.getLogger(__name__)

COUNTED_EVENT_TYPE = "file.processed"
TABLE_NAME = "tenant-usage"

Headers = Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None


def broker_url(bootstrap: str) -> str:
    """faust's broker URL for a Kafka bootstrap list (`host:port[,host:port...]`)."""
    return ";".join(f"kafka://{host.strip()}" for host in bootstrap.split(",") if host.strip())


def content_type_of(headers: Headers) -> bytes | None:
    pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
    return next((value for key, value in pairs if key == "content-type"), None)


async def topic_partitions(bootstrap: str, topic: str) -> int:
    """How many partitions `topic` has; the table's changelog must have as many."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise LookupError(f"no topic {topic!r} on the broker")
    return len(described["partitions"])


def create_app(app_id: str, bootstrap: str, partitions: int, datadir: Path) -> faust.App:
    """The faust app: no web server, tables in memory, a new group reads from the start."""
    return faust.App(
        app_id,
        broker=broker_url(bootstrap),
        store="memory://",
        datadir=str(datadir),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # On stop and on rebalance, do not wait for the event in hand: its signal may
        # be waiting for Temporal. It is not committed, so it is read again and the
        # table's event IDs drop it if it was counted.
        stream_wait_empty=False,
        # faust waits 60 s by default before it gives a dead member's partitions to the
        # meter that replaced it (the chaos run measured that minute after a SIGKILL):
        # Kafka's own defaults instead, so a restarted meter is reading within seconds.
        broker_session_timeout=10.0,
        broker_rebalance_timeout=20.0,
    )


class UsageMeter:
    """Counts processed files per tenant and signals the tenant's monitoring workflow.

    One agent with concurrency 1 reads the file events; the table
    `tenant-usage` maps a tenant to its `TenantUsage` (as JSON). Records are
    keyed by tenant, so the table is co-partitioned with the topic. What it
    does with each record and signal is counted in `metrics` (ferry/meter/metrics.py).
    """

    def __init__(
        self,
        app: faust.App,
        client: Client,
        topic: str = FILE_EVENTS,
        metrics: MeterMetrics | None = None,
    ) -> None:
        self.app = app
        self.client = client
        self.metrics = metrics or MeterMetrics()
        self.topic = app.topic(
            topic, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )
        self.table = app.Table(
            TABLE_NAME,
            default=dict,
            key_type=str,
            help="Files and bytes processed per tenant, and the last event IDs counted.",
        )
        self.agent = app.agent(self.topic, name="ferry.meter.usage", concurrency=1)(self._consume)

    async def _consume(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            await self.handle(event.value, event.message.headers)

    async def handle(self, value: bytes | None, headers: Headers) -> TenantUsage | None:
        """Count one record; the tenant's new totals, or None if nothing changed.

        Called from the agent: faust writes a table change to the changelog
        partition of the event being processed.
        """
        try:
            event = decode(value or b"", content_type_of(headers))
        except EventDecodeError as exc:
            log.warning("skipping an undecodable record on %s: %s", self.topic, exc)
            self.metrics.records.labels("undecodable").inc()
            return None
        if event["event_type"] != COUNTED_EVENT_TYPE:
            self.metrics.records.labels("other-event").inc()
            return None
        tenant_id, event_id = str(event["tenant_id"]), str(event["event_id"])
        usage = TenantUsage.from_json(self.table[tenant_id]).count(
            event_id, int(event["size_bytes"])
        )
        if usage is None:
            log.debug("event %s of tenant %s was already counted", event_id, tenant_id)
            self.metrics.records.labels("duplicate").inc()
            return None
        self.table[tenant_id] = usage.to_json()
        self.metrics.records.labels("counted").inc()
        self.metrics.last_counted.set_to_current_time()
        await self.signal(tenant_id, usage, event_id)
        return usage

    async def signal(self, tenant_id: str, usage: TenantUsage, source_event_id: str) -> None:
        """Send the totals to the tenant's monitoring workflow, if it is running."""
        handle = self.client.get_workflow_handle(tenant_monitoring_id(tenant_id))
        try:
            await handle.signal(USAGE_SIGNAL, usage.update(tenant_id, source_event_id))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                self.metrics.signals.labels("failed").inc()
                raise
            # No monitoring workflow, or it has closed (the tenant was deleted).
            log.debug("no running monitoring workflow for tenant %s: %s", tenant_id, exc)
            self.metrics.signals.labels("no-workflow").inc()
            return
        self.metrics.signals.labels("sent").inc()
