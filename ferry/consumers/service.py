"""Wiring of the bridge process: settings → clients → `Bridge`."""

from __future__ import annotations

import asyncio

from ferry.config import Settings
from ferry.consumers.bridge import INBOUND_TOPICS, Bridge, BridgeConfig
from ferry.consumers.routes import Queue
from ferry.producers import EventPublisher
from ferry.worker import connect


def bridge_config(settings: Settings, **overrides: object) -> BridgeConfig:
    config = BridgeConfig(
        task_queues={Queue.FILES: settings.files_task_queue},
        group_id=settings.consumer_group,
        topics=INBOUND_TOPICS,
    )
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


async def run_bridge(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect(settings)
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        bridge = Bridge(client, publisher, settings.kafka_bootstrap, bridge_config(settings))
        await bridge.run(stop)
