"""The stack's Prometheus scrapes Ferry for real, and its rules fire on real trouble."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.offsets import start_group_at_end
from ferry.contracts.topics import INBOUND_TOPICS
from ferry.devstack import Stack
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack

# Where the stack's Prometheus looks for the bridge (the bridge's default port).
BRIDGE_METRICS_PORT = 9464


async def query(settings: Settings, expr: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as http:
        answer = (await http.get("/api/v1/query", params={"query": expr})).json()
    assert answer["status"] == "success", answer
    result: list[dict[str, Any]] = answer["data"]["result"]
    return result


async def alerts(settings: Settings) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=settings.prometheus_url, timeout=10) as http:
        answer = (await http.get("/api/v1/alerts")).json()
    found: list[dict[str, Any]] = answer["data"]["alerts"]
    return found


@pytest.fixture
async def scraped_bridge(stack: Stack, settings: Settings) -> AsyncIterator[str]:
    """`ferry consume` serving its metrics where Prometheus scrapes the bridge, in a group
    and on task queues of its own."""
    group = f"test-monitoring-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    env = {
        **os.environ,
        "FERRY_CONSUMER_GROUP": group,
        "FERRY_FILES_TASK_QUEUE": f"{group}-files",
        "FERRY_TENANTS_TASK_QUEUE": f"{group}-tenants",
        "FERRY_BRIDGE_METRICS_PORT": str(BRIDGE_METRICS_PORT),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ferry.cli",
        "consume",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield group
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)


async def test_prometheus_scrapes_the_bridge_and_the_temporal_server(
    scraped_bridge: str, settings: Settings
) -> None:
    async def both_up() -> bool:
        up = {r["metric"]["job"]: r["value"][1] for r in await query(settings, "up")}
        return up.get("ferry-bridge") == "1" and up.get("temporal") == "1"

    await eventually(both_up, "both_up", timeout=60, interval=1)
    # The bridge's own series, and the recording rule over them.
    assert await query(settings, 'ferry_bridge_records_total{outcome="dead-lettered"}')
    assert await query(settings, "ferry:bridge_records:rate1m")


async def test_a_dead_letter_makes_its_alert_fire(
    scraped_bridge: str, settings: Settings, publisher: EventPublisher
) -> None:
    async def scraped() -> bool:
        return bool(await query(settings, 'up{job="ferry-bridge"} == 1'))

    await eventually(scraped, "scraped", timeout=60, interval=1)
    topic = "ferry.billing.v1"
    await publisher.send_raw(topic, f"not avro {uuid.uuid4().hex}".encode(), b"x", [])

    async def firing() -> bool:
        return any(
            a["labels"]["alertname"] == "FerryRecordsDeadLettered"
            and a["labels"].get("topic") == topic
            and a["state"] == "firing"
            for a in await alerts(settings)
        )

    await eventually(firing, "firing", timeout=60, interval=1)
