"""The meter's Prometheus metrics, and the lag of its consumer group.

Served on `FERRY_METER_METRICS_PORT` (9467) by `ferry meter`:

- `ferry_meter_records_total{outcome}`: records read from the file events, by
  outcome: `counted` (added to a tenant's totals), and the skipped ones,
  `duplicate` (an event already counted), `other-event` (not a
  `file.processed`), `undecodable`;
- `ferry_meter_signals_total{outcome}`: usage signals, `sent`, `no-workflow`
  (the tenant has no running monitoring workflow) or `failed`;
- `ferry_meter_consumer_lag{topic,partition}`: records of a partition the meter
  has not counted yet (`GroupLag`);
- `ferry_meter_last_counted_timestamp_seconds`: when the meter last added an
  event to a tenant's totals (Unix time; 0 until the first).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from threading import Thread
from wsgiref.simple_server import WSGIServer

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

log = logging.getLogger(__name__)

RECORD_OUTCOMES = ("counted", "duplicate", "other-event", "undecodable")
SIGNAL_OUTCOMES = ("sent", "no-workflow", "failed")


class MeterMetrics:
    """The meter's counters and gauges, in a registry of their own (one per meter)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.records = Counter(
            "ferry_meter_records",
            "Records of the file events read, by outcome (counted; skipped: duplicate, "
            "other-event, undecodable).",
            ["outcome"],
            registry=self.registry,
        )
        self.signals = Counter(
            "ferry_meter_signals",
            "Usage signals to the tenants' monitoring workflows, by outcome (sent, "
            "no-workflow, failed).",
            ["outcome"],
            registry=self.registry,
        )
        # Every outcome's series exists from the start, so its first event is an increase.
        for outcome in RECORD_OUTCOMES:
            self.records.labels(outcome)
        for outcome in SIGNAL_OUTCOMES:
            self.signals.labels(outcome)
        self.lag = Gauge(
            "ferry_meter_consumer_lag",
            "Records between the meter's committed offset and the end of the partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.last_counted = Gauge(
            "ferry_meter_last_counted_timestamp_seconds",
            "When the meter last added an event to a tenant's totals (Unix time; 0: not yet).",
            registry=self.registry,
        )
        self.restarts = Counter(
            "ferry_meter_consumer_restarts",
            "Times the meter started its consumer anew: its group had records left and"
            " committed nothing for FERRY_METER_STALL_SECONDS.",
            registry=self.registry,
        )
        self._server: tuple[WSGIServer, Thread] | None = None

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose `/metrics` on `address:port`, until `close`."""
        self._server = start_http_server(port, addr=address, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join()
            self._server = None


def partition_lag(
    ends: Mapping[int, int], committed: Mapping[int, int], firsts: Mapping[int, int]
) -> dict[int, int]:
    """Each partition's records from the group's committed offset to its end offset.

    Where the group has committed nothing, it reads from the first record (the meter
    starts a new group at the earliest), so that is where its lag starts.
    """
    return {
        partition: max(0, end - committed.get(partition, firsts.get(partition, 0)))
        for partition, end in ends.items()
    }


class Progress:
    """Whether a consumer group moves on: its committed offsets, as measured over time.

    The group is stalled when it has records left (lag above 0) and its committed
    offsets have not moved for `patience` seconds of measurements. Only measurements
    that succeeded count: while Kafka is away nothing is measured, and no stall is
    declared for the outage itself.
    """

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self._committed: dict[int, int] | None = None
        self._since: float | None = None

    def see(self, committed: Mapping[int, int], lag: Mapping[int, int], now: float) -> bool:
        """Record one measurement at `now` (monotonic seconds); True if the group stalls."""
        if self._committed != dict(committed) or not any(lag.values()) or self._since is None:
            self._committed, self._since = dict(committed), now
            return False
        return now - self._since >= self.patience

    def restart(self, now: float) -> None:
        """The group's consumer was started anew: its patience starts again."""
        self._committed, self._since = None, now


class GroupLag:
    """Measures a consumer group's lag on a topic from outside the group, on a timer.

    Every `interval` seconds it asks Kafka for the topic's end and first offsets
    (with a consumer of no group) and the group's committed offsets (with the admin
    client), and sets `ferry_meter_consumer_lag` for every partition of the topic.
    The committed offsets are the meter's position that counts: faust commits an
    offset once its agent has handled the record (every 2.8 s), and a restarted
    meter resumes there; faust's own fetch position runs ahead by the records it
    has buffered and not counted. Asking Kafka, rather than faust's consumer (which
    runs in a thread of its own), also measures partitions that no meter holds
    during a rebalance. Every meter of the group reports the whole group's lag:
    take the `max` over instances, never the sum.
    """

    def __init__(
        self, bootstrap: str, group: str, topic: str, partitions: int, metrics: MeterMetrics,
        interval: float = 10.0, stall_seconds: float = 0.0,
    ) -> None:  # fmt: skip
        self.bootstrap, self.group, self.topic = bootstrap, group, topic
        self.partitions = [TopicPartition(topic, p) for p in range(partitions)]
        self.metrics = metrics
        self.interval = interval
        # Set when the group has had records left and committed nothing for
        # `stall_seconds` (0: never); the meter then starts its consumer anew.
        self.stalled = asyncio.Event()
        self.progress = Progress(stall_seconds) if stall_seconds > 0 else None
        self.committed: dict[int, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._admin: AIOKafkaAdminClient | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            await consumer.start()
            await admin.start()
        except BaseException:
            await admin.close()
            await consumer.stop()
            raise
        self._consumer, self._admin = consumer, admin

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.close()
        if self._consumer is not None:
            await self._consumer.stop()
        self._admin = self._consumer = None

    async def measure(self) -> dict[int, int]:
        """The group's lag on each partition now, also set on the gauge."""
        assert self._consumer is not None and self._admin is not None, "start() first"
        ends = await self._consumer.end_offsets(self.partitions)
        firsts = await self._consumer.beginning_offsets(self.partitions)
        committed = await self._admin.list_consumer_group_offsets(
            self.group, partitions=self.partitions
        )
        self.committed = {
            tp.partition: meta.offset for tp, meta in committed.items() if meta.offset >= 0
        }
        lag = partition_lag(
            {tp.partition: offset for tp, offset in ends.items()},
            self.committed,
            {tp.partition: offset for tp, offset in firsts.items()},
        )
        for partition, records in lag.items():
            self.metrics.lag.labels(self.topic, str(partition)).set(records)
        return lag

    async def run(self) -> None:
        """Measure every `interval` seconds until cancelled. A measurement that fails (Kafka
        away) only logs: the gauge keeps its last values, and the meter counts on."""
        try:
            while True:
                try:
                    if self._consumer is None:
                        await self.start()
                    lag = await self.measure()
                except (KafkaError, OSError) as exc:
                    log.warning("could not measure the meter's lag on %s: %s", self.topic, exc)
                else:
                    if self.progress and self.progress.see(self.committed, lag, time.monotonic()):
                        self.stalled.set()
                await asyncio.sleep(self.interval)
        finally:
            await self.stop()
