"""The stack's Prometheus scrapes Ferry for real, and its rules fire on real trouble."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from commands import ferry, running
from temporalio.client import ScheduleActionStartWorkflow, ScheduleOverlapPolicy
from temporalio.service import RPCError
from waiting import eventually

from ferry.activities.reconciliation import KINDS
from ferry.config import Settings
from ferry.consumers.offsets import start_group_at_end
from ferry.consumers.tail import TopicFollower
from ferry.contracts.topics import INBOUND_TOPICS, NOTIFICATIONS
from ferry.contracts.workflows import RECONCILIATION_SCHEDULE
from ferry.devstack import Stack
from ferry.processes import connect
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

    # The bridge's own series (there from its start), and the recording rule over them.
    async def series() -> bool:
        dead = await query(settings, 'ferry_bridge_records_total{outcome="dead-lettered"}')
        return bool(dead) and bool(await query(settings, "ferry:bridge_records:rate1m"))

    await eventually(series, "series", timeout=60, interval=1)


async def test_a_dead_letter_fires_its_alert_through_alertmanager_to_the_notifications(
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

    # Alertmanager has it, and its webhook made it a notification.requested on Kafka.
    [alert] = await eventually_in_alertmanager(settings, "FerryRecordsDeadLettered", topic=topic)
    notification = await notification_of(settings, alert)
    assert notification["params"]["label_topic"] == topic


@pytest.mark.restarts_stack
async def test_clamd_stopped_fires_its_alert_and_a_notification(
    stack: Stack, settings: Settings
) -> None:
    await asyncio.to_thread(stack.stop_service, "clamd")
    try:
        [alert] = await eventually_in_alertmanager(settings, "FerryClamdUnreachable", timeout=120)
        notification = await notification_of(settings, alert)
        assert notification["params"]["label_severity"] == "critical"
    finally:
        await asyncio.to_thread(stack.start_service, "clamd")


@pytest.mark.restarts_stack
async def test_the_moderation_service_is_probed_and_alerts_when_it_stops(
    stack: Stack, settings: Settings
) -> None:
    async def probed(value: str) -> bool:
        found = await query(settings, 'probe_success{job="moderator"}')
        return [r["value"][1] for r in found] == [value]

    await eventually(lambda: probed("1"), "probed and answering", timeout=60, interval=1)
    await asyncio.to_thread(stack.stop_service, "moderator")
    try:
        [alert] = await eventually_in_alertmanager(
            settings, "FerryModerationUnreachable", timeout=150
        )
        assert alert["labels"]["severity"] == "warning"
        assert alert["labels"]["instance"] == f"{settings.moderation_url}/health"
    finally:
        await asyncio.to_thread(stack.start_service, "moderator")
    await eventually(lambda: probed("1"), "answering again", timeout=60, interval=1)


async def eventually_in_alertmanager(
    settings: Settings, name: str, timeout: float = 60, **labels: str
) -> list[dict[str, Any]]:
    """The active alerts of that name and labels in Alertmanager's API, once there are."""

    async def active() -> list[dict[str, Any]]:
        async with httpx.AsyncClient(base_url=settings.alertmanager_url, timeout=10) as http:
            found: list[dict[str, Any]] = (await http.get("/api/v2/alerts")).json()
        return [
            a
            for a in found
            if a["labels"]["alertname"] == name
            and all(a["labels"].get(k) == v for k, v in labels.items())
            and a["status"]["state"] == "active"
        ]

    await eventually(active, "active", timeout=timeout, interval=1)
    return await active()


async def notification_of(settings: Settings, alert: dict[str, Any]) -> dict[str, Any]:
    """The notification.requested of this alert (its fingerprint), read from the topic's
    beginning: Alertmanager notifies a group's alerts once per repeat interval (4 h), so
    an alert that fired before on this stack may have been notified then."""
    async with TopicFollower(settings.kafka_bootstrap, NOTIFICATIONS, from_beginning=True) as f:
        [notification] = await f.wait_for(
            lambda e: (
                e.get("event_type") == "notification.requested"
                and e["params"].get("fingerprint") == alert["fingerprint"]
                and e["params"].get("status") == "firing"
            ),
            timeout=90,
        )
    assert (notification["channel"], notification["template"]) == ("webhook", "alert-firing")
    assert notification["params"]["alertname"] == alert["labels"]["alertname"]
    assert notification["params"]["runbook"] == "docs/operations.md#alerts"
    return notification


# Where the stack's Prometheus looks for the worker (the worker's default port).
WORKER_METRICS_PORT = 9465


async def test_the_worker_creates_the_reconciliation_schedule_whose_counts_reach_ferry_status(
    stack: Stack, settings: Settings
) -> None:
    queue = f"test-monitoring-{uuid.uuid4().hex[:8]}"
    env = {
        "FERRY_FILES_TASK_QUEUE": f"{queue}-files",
        "FERRY_TENANTS_TASK_QUEUE": f"{queue}-tenants",
        "FERRY_WORKER_METRICS_PORT": str(WORKER_METRICS_PORT),
        "FERRY_RECONCILIATION_INTERVAL_SECONDS": "3600",
        # Count only: the stack's database holds other tests' tenants, left unmonitored.
        "FERRY_RECONCILIATION_REPAIR": "false",
    }
    client = await connect(settings)
    schedule = client.get_schedule_handle(RECONCILIATION_SCHEDULE)
    try:
        async with running("worker", env=env):

            async def created() -> bool:
                try:
                    described = await schedule.describe()
                except RPCError:
                    return False
                action = described.schedule.action
                assert isinstance(action, ScheduleActionStartWorkflow)
                return action.task_queue == f"{queue}-tenants"

            await eventually(created, "the worker to create the schedule", timeout=60, interval=0.5)
            [interval] = (await schedule.describe()).schedule.spec.intervals
            assert interval.every == timedelta(hours=1)
            await schedule.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL)  # now, whatever runs

            async def reported() -> bool:
                found = await query(settings, "ferry:reconciliation_found:latest")
                return {r["metric"]["kind"] for r in found} == set(KINDS)

            await eventually(reported, "the run's counts in Prometheus", timeout=90, interval=1)
            shown = await ferry("status", "--once")
            assert "stuck (last reconciliation)" in shown
            assert "upload_overdue" in shown and "tenant_over_quota" in shown
    finally:
        with contextlib.suppress(RPCError):
            await schedule.delete()
