"""The bridge's guarantees on the real stack: no loss, no double action, order, backpressure."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from bridges import (
    running,
    terminate_uploads,
    upload_event,
    upload_workflow_id,
    workerless_bridge,
    workflow_ids,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.dlq import read_dead_letters, replay
from ferry.consumers.offsets import committed_offsets, start_group_at_end
from ferry.contracts.topics import INBOUND_TOPICS, STORAGE_NOTIFICATIONS
from ferry.db.ledger import EventLedger
from ferry.demo import ensure_tenant, stage_upload
from ferry.devstack import Stack
from ferry.processes import bridge_client, bridge_config
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage

pytestmark = pytest.mark.stack

UPLOADS = "ferry.uploads.v1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bridge_process(group: str, task_queue: str, metrics_port: int = 0) -> subprocess.Popen[bytes]:
    """`ferry consume` as its own process, in its own group, starting this test's workflows."""
    env = {
        **os.environ,
        "FERRY_CONSUMER_GROUP": group,
        "FERRY_FILES_TASK_QUEUE": task_queue,
        "FERRY_BRIDGE_METRICS_PORT": str(metrics_port),
        "FERRY_MAX_IN_FLIGHT": "64",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ferry.cli", "consume"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def staged_uploads(
    storage: LocalStorage, settings: Settings, tenant: str, count: int
) -> list[dict[str, Any]]:
    return [
        await stage_upload(
            storage, settings.ingest_bucket, tenant, f"f{i}.txt", "text/plain", f"{i}\n".encode()
        )
        for i in range(count)
    ]


@pytest.fixture
async def own_bridge(
    client: Client,
    publisher: EventPublisher,
    settings: Settings,
    task_queue: str,
    worker: None,
    ledger: EventLedger,
) -> AsyncIterator[Bridge]:
    """An in-process bridge in a group of its own, starting at the end of each topic."""
    config = bridge_config(settings, group_id=f"test-{uuid.uuid4().hex[:8]}")
    config.auto_offset_reset = "latest"
    config.task_queues = dict.fromkeys(config.task_queues, task_queue)
    bridge = Bridge(client, publisher, settings.kafka_bootstrap, config, ledger=ledger)
    async with running(bridge):
        yield bridge


async def test_a_consumer_killed_mid_batch_loses_nothing_and_duplicates_nothing(
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
    worker: None,
    tenant: str,
) -> None:
    group = f"test-kill-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    events = await staged_uploads(local_storage, settings, tenant, 150)
    expected = {f"file-upload/{tenant}/{e['file_id']}" for e in events}

    first = bridge_process(group, task_queue)
    for event in events:
        await publisher.publish(event, topic=UPLOADS)

    async def some_started() -> bool:
        return len(await workflow_ids(client, tenant)) >= 10

    await eventually(some_started, "some_started", timeout=60, interval=0.25)
    first.send_signal(signal.SIGKILL)
    first.wait()

    port = free_port()
    second = bridge_process(group, task_queue, metrics_port=port)
    try:

        async def all_started() -> bool:
            return len(await workflow_ids(client, tenant)) >= len(events)

        await eventually(all_started, "all_started", timeout=120, interval=0.25)
        ids = await workflow_ids(client, tenant)
        assert len(ids) == len(expected)  # one run per event: nothing twice
        assert set(ids) == expected  # and nothing lost

        partition = (await publisher.publish(events[-1], topic=UPLOADS)).partition
        tp = TopicPartition(UPLOADS, partition)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
        await consumer.start()
        end = (await consumer.end_offsets([tp]))[tp]
        await consumer.stop()

        async def caught_up() -> bool:
            return (await committed_offsets(settings.kafka_bootstrap, group)).get(tp, -1) >= end

        await eventually(caught_up, "caught_up", timeout=60, interval=0.25)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        assert 'ferry_bridge_records_total{outcome="started",topic="ferry.uploads.v1"}' in metrics
        assert 'ferry_bridge_records_total{outcome="duplicate",topic="ferry.uploads.v1"}' in metrics
        assert "ferry_bridge_ack_seconds_bucket" in metrics
        assert (
            f'ferry_bridge_consumer_lag{{partition="{partition}",topic="ferry.uploads.v1"}} 0.0'
            in metrics
        )
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            code = second.wait(timeout=60)
        except subprocess.TimeoutExpired:
            second.kill()
            raise
    stderr = second.stderr.read().decode() if second.stderr else ""
    assert code == 0, stderr  # SIGTERM: finish, commit, leave the group cleanly


async def test_records_of_one_tenant_start_their_workflows_in_order(
    own_bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    events = await staged_uploads(local_storage, settings, tenant, 20)
    for event in events:
        await publisher.publish(event, topic=UPLOADS)

    async def all_started() -> bool:
        return len(await workflow_ids(client, tenant)) >= len(events)

    await eventually(all_started, "all_started", timeout=60, interval=0.25)
    runs = [wf async for wf in client.list_workflows(f'TenantId = "{tenant}"')]
    started_in = [wf.id for wf in sorted(runs, key=lambda wf: wf.start_time)]
    assert started_in == [f"file-upload/{tenant}/{e['file_id']}" for e in events]


async def test_a_backlog_on_one_partition_does_not_hold_back_the_others(
    publisher: EventPublisher,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: str,
    ledger: EventLedger,
) -> None:
    client = await bridge_client(settings)
    group = f"test-share-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    # One tenant's backlog, started one after another; then one record each of
    # tenants that mostly live on other partitions.
    backlog = [upload_event(tenant, f"f{i}.txt") for i in range(40)]
    others = [
        upload_event(await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}"), "g.txt")
        for _ in range(8)
    ]
    busy = {(await publisher.publish(e, topic=UPLOADS)).partition for e in backlog}
    elsewhere = [
        e for e in others if (await publisher.publish(e, topic=UPLOADS)).partition not in busy
    ]
    assert elsewhere, "every other tenant landed on the backlog's partition"

    ids = [upload_workflow_id(e) for e in backlog + others]
    async with running(workerless_bridge(client, publisher, settings, group, ledger)) as bridge:

        async def all_started() -> bool:
            return bridge.counts["started"] >= len(ids)

        await eventually(all_started, "all_started", timeout=120, interval=0.25)
    started = {
        wf.id: wf.start_time for wf in [await client.get_workflow_handle(i).describe() for i in ids]
    }
    tenth_of_backlog = started[ids[9]]
    for event in elsewhere:
        assert started[upload_workflow_id(event)] < tenth_of_backlog
    await terminate_uploads(client, backlog + others)


async def test_a_signal_for_a_workflow_that_does_not_exist_goes_to_the_dlq(
    own_bridge: Bridge, publisher: EventPublisher, tenant: str, settings: Settings
) -> None:
    share_id = str(uuid.uuid4())
    event = {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.share_revocation_requested",
        "occurred_at": 1_795_000_000_000,
        "tenant_id": tenant,
        "source": "test",
        "share_id": share_id,
        "revoked_by": "u-1",
    }
    sent = await publisher.publish(event, topic="ferry.file-commands.v1")

    async def dead_lettered() -> bool:
        letters = await read_dead_letters(settings.kafka_bootstrap, limit=20)
        return any(
            d.header("ferry-source-offset") == str(sent.offset)
            and d.header("ferry-source-topic") == "ferry.file-commands.v1"
            and d.header("ferry-source-partition") == str(sent.partition)
            for d in letters
        )

    await eventually(dead_lettered, "dead_lettered", timeout=30, interval=0.25)
    [letter] = [
        d
        for d in await read_dead_letters(settings.kafka_bootstrap, limit=20)
        if d.header("ferry-source-offset") == str(sent.offset)
        and d.header("ferry-source-partition") == str(sent.partition)
        and d.header("ferry-source-topic") == "ferry.file-commands.v1"
    ]
    assert f"file-share/{tenant}/{share_id}" in letter.reason


async def test_a_dead_letter_is_replayed_to_its_source_topic_unchanged(
    own_bridge: Bridge, publisher: EventPublisher, settings: Settings, tenant: str
) -> None:
    value = b'{"event_type": "tenant.suspension_requested"}'
    headers = [("content-type", b"application/json"), ("x-origin", b"upstream")]
    sent = await publisher.send_raw("ferry.tenants.v1", value, tenant.encode(), headers)

    async def find() -> Any:
        return [
            d
            for d in await read_dead_letters(settings.kafka_bootstrap, limit=50)
            if d.header("ferry-source-offset") == str(sent.offset)
            and d.header("ferry-source-partition") == str(sent.partition)
            and d.header("ferry-source-topic") == "ferry.tenants.v1"
        ]

    await eventually(find, "find", timeout=30, interval=0.25)
    [letter] = await find()

    tp = TopicPartition("ferry.tenants.v1", sent.partition)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        await replay(settings.kafka_bootstrap, {letter.offset})
        consumer.seek(tp, end)
        batch = await consumer.getmany(tp, timeout_ms=10_000)
    finally:
        await consumer.stop()
    [record] = batch[tp]
    assert (record.key, record.value, list(record.headers)) == (tenant.encode(), value, headers)


@pytest.mark.restarts_stack
async def test_while_temporal_is_down_nothing_is_committed_and_everything_runs_after(
    stack: Stack, publisher: EventPublisher, settings: Settings, tenant: str, ledger: EventLedger
) -> None:
    client = await bridge_client(settings)
    group = f"test-outage-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    events = [upload_event(tenant, f"f{i}.txt") for i in range(10)]
    try:
        async with running(workerless_bridge(client, publisher, settings, group, ledger)) as bridge:
            before = await committed_offsets(settings.kafka_bootstrap, group)
            await asyncio.to_thread(stack.stop_service, "temporal")
            for event in events:
                await publisher.publish(event, topic=UPLOADS)
            await asyncio.sleep(5)
            assert await committed_offsets(settings.kafka_bootstrap, group) == before
            assert bridge.counts["started"] == 0
            assert bridge.metrics.paused._value.get() == 1  # backpressure: partitions paused

            await asyncio.to_thread(stack.up)

            async def all_started() -> bool:
                return bridge.counts["started"] == len(events)

            await eventually(all_started, "all_started", timeout=120, interval=0.25)
            sent = await publisher.publish(events[0], topic=UPLOADS)
            tp = TopicPartition(UPLOADS, sent.partition)

            async def committed_past() -> bool:
                return (await committed_offsets(settings.kafka_bootstrap, group)).get(
                    tp, -1
                ) > before.get(tp, -1)

            await eventually(committed_past, "committed_past", timeout=30, interval=0.25)
            assert set(await workflow_ids(client, tenant)) == {
                upload_workflow_id(e) for e in events
            }
    finally:
        await terminate_uploads(client, events)


class HeldLedger:
    """The database's ledger, whose marking (the first step of every commit) waits for the test."""

    def __init__(self, ledger: EventLedger) -> None:
        self._ledger = ledger
        self.marking = asyncio.Event()
        self.release = asyncio.Event()

    async def existing_tenants(self, tenant_ids: Collection[str]) -> set[str]:
        return await self._ledger.existing_tenants(tenant_ids)

    async def processed(self, tenant_id: str, consumer: str, event_id: str) -> bool:
        return await self._ledger.processed(tenant_id, consumer, event_id)

    async def mark_many(self, consumer: str, events: Sequence[tuple[str, str, str]]) -> None:
        self.marking.set()
        await self.release.wait()
        await self._ledger.mark_many(consumer, events)


async def test_records_keep_starting_while_a_commit_is_slow(
    publisher: EventPublisher, settings: Settings, tenant: str, ledger: EventLedger
) -> None:
    client = await bridge_client(settings)
    group = f"test-slow-commit-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(settings.kafka_bootstrap, group, INBOUND_TOPICS)
    held = HeldLedger(ledger)
    events = [upload_event(tenant, f"f{i}.txt") for i in range(4)]
    first, *later = events
    try:
        async with running(workerless_bridge(client, publisher, settings, group, held)) as bridge:
            try:
                before = await committed_offsets(settings.kafka_bootstrap, group)
                await publisher.publish(first, topic=UPLOADS)
                await asyncio.wait_for(held.marking.wait(), 30)  # its commit has begun, and hangs

                sent = [await publisher.publish(event, topic=UPLOADS) for event in later]

                async def all_started() -> bool:
                    return bridge.counts["started"] == 4

                await eventually(all_started, "all_started", timeout=30, interval=0.25)
                # Started while the commit hung, and nothing committed that the ledger lacks.
                assert await committed_offsets(settings.kafka_bootstrap, group) == before

                held.release.set()
                tp = TopicPartition(UPLOADS, sent[-1].partition)

                async def all_committed() -> bool:
                    offsets = await committed_offsets(settings.kafka_bootstrap, group)
                    return offsets.get(tp, -1) == sent[-1].offset + 1

                await eventually(all_committed, "all_committed", timeout=30, interval=0.25)
                for event in events:
                    assert await ledger.processed(tenant, group, event["event_id"])
            finally:
                held.release.set()  # else the bridge's last commit, as it stops, hangs too
    finally:
        await terminate_uploads(client, events)


NOTIFICATIONS = Path(__file__).parent.parent / "unit" / "notifications"


async def test_a_bucket_notification_starts_one_upload_and_a_test_event_is_skipped(
    own_bridge: Bridge, publisher: EventPublisher, client: Client, settings: Settings, tenant: str
) -> None:
    file_id = str(uuid.uuid4())
    document = json.loads((NOTIFICATIONS / "s3_put.json").read_text())
    s3 = document["Records"][0]["s3"]
    s3["object"]["key"] = f"tenants/{tenant}/uploads/{file_id}/annual+report.pdf"
    value = json.dumps(document).encode()
    skipped_before = own_bridge.counts["skipped"]
    duplicates_before = own_bridge.counts["duplicate"]
    registry = own_bridge.metrics.registry

    def test_events_skipped() -> float:
        name, labels = "ferry_bridge_notifications_skipped_total", {"kind": "test-event"}
        return registry.get_sample_value(name, labels) or 0.0

    test_events_before = test_events_skipped()

    await publisher.send_raw(STORAGE_NOTIFICATIONS, value, tenant.encode(), [])
    await publisher.send_raw(STORAGE_NOTIFICATIONS, value, tenant.encode(), [])
    test_event = (NOTIFICATIONS / "s3_test_event.json").read_bytes()
    await publisher.send_raw(STORAGE_NOTIFICATIONS, test_event, tenant.encode(), [])

    async def handled() -> bool:
        return (
            own_bridge.counts["skipped"] > skipped_before
            and own_bridge.counts["duplicate"] > duplicates_before
        )

    await eventually(handled, "handled", timeout=30, interval=0.25)
    # Counted by kind: the operator sees what was skipped, not only that something was.
    assert test_events_skipped() == test_events_before + 1
    runs = [
        wf async for wf in client.list_workflows(f'WorkflowId = "file-upload/{tenant}/{file_id}"')
    ]
    assert len(runs) == 1
    history = await client.get_workflow_handle(runs[0].id).fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes
    # The history holds the input encrypted; the client's codec opens it.
    codec = client.data_converter.payload_codec
    assert codec is not None
    [payload] = await codec.decode(started.input.payloads)
    upload = json.loads(payload.data)
    assert upload["filename"] == "annual report.pdf"
    assert upload["storage"] == {
        "provider": "s3",
        "bucket": s3["bucket"]["name"],
        "key": f"tenants/{tenant}/uploads/{file_id}/annual report.pdf",
    }
    assert upload["size_bytes"] == s3["object"]["size"]


async def test_an_event_for_an_unknown_tenant_goes_to_the_dlq(
    own_bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
) -> None:
    stranger = f"t-{uuid.uuid4().hex[:12]}"  # never provisioned
    [event] = await staged_uploads(local_storage, settings, stranger, 1)
    sent = await publisher.publish(event, topic=UPLOADS)

    async def find() -> Any:
        return [
            d
            for d in await read_dead_letters(settings.kafka_bootstrap, limit=50)
            if d.header("ferry-source-offset") == str(sent.offset)
            and d.header("ferry-source-partition") == str(sent.partition)
            and d.header("ferry-source-topic") == UPLOADS
        ]

    await eventually(find, "find", timeout=30, interval=0.25)
    [letter] = await find()
    assert letter.reason == f"unknown tenant {stranger!r}"
    assert await workflow_ids(client, stranger) == []


async def test_an_event_the_ledger_has_seen_starts_nothing_even_if_temporal_forgot_it(
    own_bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    ledger: EventLedger,
    tenant: str,
) -> None:
    # As after Temporal's retention: the ledger remembers the event, Temporal does not.
    [event] = await staged_uploads(local_storage, settings, tenant, 1)
    assert own_bridge.retention is not None
    event["occurred_at"] = datetime.now(UTC) - own_bridge.retention
    await ledger.mark_many(
        own_bridge.config.group_id, [(tenant, event["event_id"], "file.uploaded")]
    )
    duplicates = own_bridge.counts["duplicate"]
    await publisher.publish(event, topic=UPLOADS)

    async def counted() -> bool:
        return own_bridge.counts["duplicate"] > duplicates

    await eventually(counted, "counted", timeout=30, interval=0.25)
    assert await workflow_ids(client, tenant) == []
