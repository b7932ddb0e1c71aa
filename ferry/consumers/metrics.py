"""The bridge's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server


class BridgeMetrics:
    """Counters, gauges and a histogram in a registry of their own (one per bridge)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.consumed = Counter(
            "ferry_bridge_records_consumed", "Records read from Kafka.", ["topic"],
            registry=self.registry,
        )  # fmt: skip
        self.outcomes = Counter(
            "ferry_bridge_records",
            "Records handled, by outcome (started, signalled, duplicate, skipped, dead-lettered).",
            ["topic", "outcome"],
            registry=self.registry,
        )
        self.notifications_skipped = Counter(
            "ferry_bridge_notifications_skipped",
            "Bucket notifications that announce no upload, by kind (test-event, deletion, "
            "metadata-update, uncommitted, lifecycle, subscription-validation).",
            ["kind"],
            registry=self.registry,
        )
        self.lag = Gauge(
            "ferry_bridge_consumer_lag",
            "Records between the committed offset and the end of the partition.",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "ferry_bridge_ack_seconds",
            "Time from a record's timestamp to Temporal's acknowledgement.",
            ["topic"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "ferry_bridge_commit_seconds",
            "Time to mark a commit's events in the ledger and commit its offsets to Kafka.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "ferry_bridge_in_flight", "Records handed to Temporal, not yet acknowledged.",
            registry=self.registry,
        )  # fmt: skip
        self.paused = Gauge(
            "ferry_bridge_paused", "1 while the bridge has paused its partitions (backpressure).",
            registry=self.registry,
        )  # fmt: skip

        self.dependency_up = Gauge(
            "ferry_bridge_dependency_up",
            "0 while the bridge waits for a dependency that is unreachable (postgres, kafka).",
            ["dependency"],
            registry=self.registry,
        )
        self.dependency_retries = Counter(
            "ferry_bridge_dependency_retries",
            "Calls to a dependency tried again because it was unreachable.",
            ["dependency"],
            registry=self.registry,
        )

    def serve(self, port: int, address: str = "127.0.0.1") -> None:
        """Expose `/metrics` on `address:port`."""
        start_http_server(port, addr=address, registry=self.registry)
