"""Wiring of the bridge process: settings → clients → `Bridge`."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.service import RetryConfig

from ferry.config import Settings
from ferry.consumers.bridge import Bridge, BridgeConfig
from ferry.consumers.metrics import BridgeMetrics
from ferry.consumers.routes import Queue
from ferry.db import create_engine
from ferry.db.ledger import EventLedger
from ferry.producers import EventPublisher
from ferry.telemetry import configure_tracing
from ferry.worker import connect

# While Temporal is unreachable the bridge waits instead of failing records:
# the client's own retries (no end, at most 5 s apart) are the backpressure.
WAIT_FOR_TEMPORAL = RetryConfig(
    initial_interval_millis=100,
    max_interval_millis=5_000,
    max_elapsed_time_millis=None,
    max_retries=2**31 - 1,
)


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
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


async def bridge_client(settings: Settings) -> Client:
    return await connect(settings, retry_config=WAIT_FOR_TEMPORAL)


def event_ledger(settings: Settings) -> EventLedger:
    # Tenants are asked in batches and events recorded in bulk; only records older
    # than half Temporal's retention need a query of their own (see `Bridge`).
    return EventLedger(create_engine(settings.database_url.get_secret_value(), pool_size=8))


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    configure_tracing("ferry-bridge")
    client = await bridge_client(settings)
    metrics = BridgeMetrics()
    if settings.bridge_metrics_port:
        metrics.serve(settings.bridge_metrics_port)
    ledger = event_ledger(settings)
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        config = bridge_config(settings)
        bridge = Bridge(client, publisher, settings.kafka_bootstrap, config, metrics, ledger)
        await bridge.run(stop)
