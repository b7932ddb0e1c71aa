"""The local stack: all answer, `up` is idempotent, `down` stops everything, data survives."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client

from ferry.config import Settings
from ferry.devstack import DLQ_TOPIC, INBOUND_TOPICS, OUTBOUND_TOPICS, Stack
from ferry.devstack.services import tcp_open
from ferry.processes import connect
from ferry.producers import EventPublisher

pytestmark = pytest.mark.stack


def test_every_service_answers(stack: Stack) -> None:
    statuses = stack.status()
    assert {s.name for s in statuses} == {
        "kafka",
        "codec",
        "temporal",
        "postgres",
        "clamd",
        "moderator",
        "s3",
        "gcs",
        "azurite",
        "alert-webhook",
        "alertmanager",
        "blackbox",
        "prometheus",
    }
    assert all(s.answering for s in statuses), statuses


def test_up_again_restarts_nothing(stack: Stack) -> None:
    before = {s.name: s.pid for s in stack.status()}
    stack.up()
    assert {s.name: s.pid for s in stack.status()} == before


async def test_contract_topics_exist_with_configured_partitions(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([*INBOUND_TOPICS, *OUTBOUND_TOPICS, DLQ_TOPIC])
    finally:
        await admin.close()
    partitions = {t["topic"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
    assert set(partitions) == {*INBOUND_TOPICS, *OUTBOUND_TOPICS, DLQ_TOPIC}
    assert all(partitions[topic] == 6 for topic in INBOUND_TOPICS)


def _pg_url(settings: Settings) -> str:
    return settings.database_admin_url.get_secret_value().replace(
        "postgresql+asyncpg", "postgresql"
    )


@pytest.mark.restarts_stack
async def test_down_stops_every_process_and_up_brings_back_the_data(
    stack: Stack, settings: Settings, client: Client
) -> None:
    marker = uuid.uuid4().hex
    conn = await asyncpg.connect(_pg_url(settings))
    await conn.execute("CREATE TABLE IF NOT EXISTS stack_restart_check (marker text)")
    await conn.execute("INSERT INTO stack_restart_check VALUES ($1)", marker)
    await conn.close()
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        sent = await publisher.send_raw("ferry.notifications.v1", marker.encode(), b"restart", [])
    workflows_before = [wf.id async for wf in client.list_workflows()]
    pids = [s.pid for s in stack.status() if s.pid]

    await asyncio.to_thread(stack.down)

    assert not [
        pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
    ]
    ctx = stack.context()
    assert not [name for name, port in ctx.ports.items() if tcp_open(port)]

    await asyncio.to_thread(stack.up)

    conn = await asyncpg.connect(_pg_url(settings))
    assert (
        await conn.fetchval("SELECT count(*) FROM stack_restart_check WHERE marker = $1", marker)
        == 1
    )
    await conn.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition("ferry.notifications.v1", sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        batch = await consumer.getmany(tp, timeout_ms=10_000)
        assert batch[tp][0].value == marker.encode()
    finally:
        await consumer.stop()
    fresh = await connect(settings)
    assert {wf.id async for wf in fresh.list_workflows()} >= set(workflows_before)
