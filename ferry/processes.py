"""How Ferry's long-running processes are wired from the settings: settings → clients → process.

The worker's wiring is `ferry.worker`; the bridge's and the meter's are here, with
the Temporal client every process connects the same way. The rooms below
(`ferry.consumers`, `ferry.meter`, `ferry.temporal`) read no settings of their own.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import Runtime
from temporalio.service import RetryConfig

from ferry import temporal
from ferry.config import Settings
from ferry.consumers.bridge import Bridge, BridgeConfig
from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.routes import Queue
from ferry.contracts.topics import FILE_EVENTS
from ferry.db import create_engine
from ferry.db.errors import unavailable
from ferry.db.ledger import EventLedger
from ferry.meter.app import UsageMeter, create_app, topic_partitions
from ferry.meter.metrics import GroupLag, MeterMetrics
from ferry.producers import EventPublisher
from ferry.telemetry import configure_tracing

log = logging.getLogger(__name__)


async def connect(
    settings: Settings,
    retry_config: RetryConfig | None = None,
    lazy: bool = False,
    runtime: Runtime | None = None,
) -> Client:
    """The settings' Temporal client: payloads encrypted when keys are set, traces carried."""
    keys = settings.payload_keys.get_secret_value() if settings.payload_keys else None
    return await temporal.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        payload_keys=keys,
        retry_config=retry_config,
        lazy=lazy,
        runtime=runtime,
    )


# --- the bridge (`ferry consume`) -----------------------------------------------------


def bridge_config(settings: Settings, **overrides: object) -> BridgeConfig:
    config = BridgeConfig(
        task_queues={
            Queue.FILES: settings.files_task_queue,
            Queue.TENANTS: settings.tenants_task_queue,
        },
        group_id=settings.consumer_group,
        max_in_flight=settings.max_in_flight,
        commit_interval=settings.commit_interval,
        places=settings.places,
        fairness=settings.fairness,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


async def bridge_client(settings: Settings) -> Client:
    """A client that waits for Temporal without end: the bridge's backpressure."""
    return await connect(settings, retry_config=temporal.WAIT_FOR_TEMPORAL)


def event_ledger(settings: Settings) -> EventLedger:
    # Tenants are asked in batches and events recorded in bulk; only records older
    # than half Temporal's retention need a query of their own (see `Bridge`).
    return EventLedger(create_engine(settings.database_url.get_secret_value(), pool_size=8))


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    configure_tracing("ferry-bridge")
    client = await bridge_client(settings)
    metrics = BridgeMetrics()
    if settings.bridge_metrics_port:
        metrics.serve(settings.bridge_metrics_port, settings.bridge_metrics_address)
    ledger = event_ledger(settings)
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        config = bridge_config(settings)
        bridge = Bridge(
            client,
            publisher,
            settings.kafka_bootstrap,
            config,
            metrics,
            ledger,
            ledger_unavailable=unavailable,
        )
        await bridge.run(stop)


# --- the usage meter (`ferry meter`) ----------------------------------------------------


async def run_meter(settings: Settings, stop: asyncio.Event) -> None:
    """Run the usage meter until `stop` is set.

    While Temporal is unreachable a signal waits (the client retries it), and
    so does the agent: the meter falls behind, then catches up.

    Its metrics are served on `meter_metrics_port` (not with port 0); a port it cannot
    listen on is logged and the meter counts on without metrics: the counting matters
    more than its metrics. Its group's lag is measured every 10 s either way, as the
    watchdog's eyes: when the group has had records left and committed nothing for
    `meter_stall_seconds`, the faust app is stopped and a new one started in its place.
    faust's agents can stop consuming after a Kafka outage without a word
    (faust-streaming/faust#523, #175); counting is idempotent by event ID, so what the
    old app had read and not committed is read again and counted once.
    """
    client = await connect(settings, retry_config=temporal.WAIT_FOR_TEMPORAL)
    partitions = await topic_partitions(settings.kafka_bootstrap, FILE_EVENTS)
    metrics = MeterMetrics()
    if settings.meter_metrics_port:
        try:
            metrics.serve(settings.meter_metrics_port, settings.meter_metrics_address)
        except OSError as exc:
            log.error("no metrics on port %s: %s", settings.meter_metrics_port, exc)
    group = GroupLag(
        settings.kafka_bootstrap, settings.meter_app_id, FILE_EVENTS, partitions, metrics,
        stall_seconds=settings.meter_stall_seconds,
    )  # fmt: skip
    lag = asyncio.create_task(group.run())
    try:
        while not stop.is_set():
            with tempfile.TemporaryDirectory(prefix="ferry-meter-") as datadir:
                app = create_app(
                    settings.meter_app_id, settings.kafka_bootstrap, partitions, Path(datadir)
                )
                UsageMeter(app, client, metrics=metrics)
                await app.start()
                try:
                    await _first_of(stop, group.stalled)
                finally:
                    await app.stop()
            if group.stalled.is_set() and not stop.is_set():
                log.error(
                    "the meter's group %s committed nothing for %.0f s with records left:"
                    " starting its consumer anew",
                    settings.meter_app_id,
                    settings.meter_stall_seconds,
                )
                metrics.restarts.inc()
            group.stalled.clear()
            if group.progress is not None:
                group.progress.restart(time.monotonic())
    finally:
        lag.cancel()
        await asyncio.wait([lag])
        metrics.close()


async def _first_of(*events: asyncio.Event) -> None:
    """Wait until one of `events` is set."""
    waits = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
