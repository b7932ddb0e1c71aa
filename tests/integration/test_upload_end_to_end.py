"""A `file.uploaded` record on Kafka, through the bridge and the workflow, to its outcome event."""

from __future__ import annotations

import asyncio
import hashlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.enums import TenantPlan
from ferry.contracts.plans import FAIRNESS_WEIGHT
from ferry.demo import EICAR, stage_upload
from ferry.producers import EventPublisher
from ferry.schemas import encode
from ferry.storage import LocalStorage

pytestmark = pytest.mark.stack

UPLOADS = "ferry.uploads.v1"


async def _runs(client: Client, query: str, expected: int, timeout: float = 30) -> list[str]:
    """Workflow IDs matching a visibility query, once `expected` of them are visible."""
    async with asyncio.timeout(timeout):
        while True:
            ids = [wf.id async for wf in client.list_workflows(query)]
            if len(ids) >= expected:
                return ids
            await asyncio.sleep(0.2)


async def test_clean_file_is_processed_and_stored_in_the_tenant_bucket(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    data = b"quarterly numbers\n" * 1000
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "numbers.txt", "text/plain", data
    )
    await publisher.publish(event, topic=UPLOADS)

    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])

    assert processed["event_type"] == "file.processed"
    assert processed["tenant_id"] == tenant
    assert processed["sha256"] == hashlib.sha256(data).hexdigest()
    assert processed["size_bytes"] == len(data)
    assert processed["content_type"] == "text/plain"
    assert processed["correlation_id"] == event["event_id"]
    stored = processed["storage"]
    assert stored == {
        "provider": "local",
        "bucket": f"ferry-{tenant}",
        "key": f"files/{event['file_id']}/original",
    }
    chunks = [c async for c in local_storage.read(stored["bucket"], stored["key"])]
    assert b"".join(chunks) == data
    assert await local_storage.head(settings.ingest_bucket, event["storage"]["key"]) is None

    workflow_id = f"file-upload/{tenant}/{event['file_id']}"
    handle = client.get_workflow_handle(workflow_id)
    await handle.result()
    description = await handle.describe()
    assert description.workflow_type == "file_upload_workflow"
    assert description.status == WorkflowExecutionStatus.COMPLETED
    attributes = description.typed_search_attributes
    assert attributes.get(SearchAttributeKey.for_keyword("TenantId")) == tenant
    assert attributes.get(SearchAttributeKey.for_keyword("FileId")) == event["file_id"]
    assert await _runs(client, f'TenantId = "{tenant}"', 1) == [workflow_id]
    # Task queue fairness: the run's key is its tenant, its activities weigh as its plan.
    assert description.raw_description.workflow_execution_info.priority.fairness_key == tenant
    history = await handle.fetch_history()
    weights = {
        e.activity_task_scheduled_event_attributes.activity_type.name: (
            e.activity_task_scheduled_event_attributes.priority.fairness_weight
        )
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert weights and set(weights.values()) == {FAIRNESS_WEIGHT[TenantPlan.FREE]}, weights


async def test_eicar_is_rejected_as_infected_and_quarantined(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
) -> None:
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "holiday.jpg", "image/jpeg", EICAR
    )
    await publisher.publish(event, topic=UPLOADS)

    [rejected] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])

    assert rejected["event_type"] == "file.rejected"
    assert rejected["reason"] == "infected"
    assert rejected["signature"] == "Eicar-Test-Signature.UNOFFICIAL"
    quarantined = f"quarantine/{tenant}/{event['file_id']}"
    assert await local_storage.head("ferry-quarantine", quarantined) is not None
    assert await local_storage.head(f"ferry-{tenant}", f"files/{event['file_id']}/original") is None
    assert await local_storage.head(settings.ingest_bucket, event["storage"]["key"]) is None


async def test_the_same_event_three_times_gives_one_workflow_run(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "once.txt", "text/plain", b"only once\n"
    )
    duplicates_before = bridge.counts["duplicate"]
    await publisher.publish(event, topic=UPLOADS)
    await publisher.publish(event, topic=UPLOADS)
    await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])
    # Once more after the workflow has completed: still refused as a duplicate.
    await publisher.publish(event, topic=UPLOADS)

    async with asyncio.timeout(30):
        while bridge.counts["duplicate"] < duplicates_before + 2:
            await asyncio.sleep(0.1)
    workflow_id = f"file-upload/{tenant}/{event['file_id']}"
    runs = [wf async for wf in client.list_workflows(f'WorkflowId = "{workflow_id}"')]
    assert len(runs) == 1
    with pytest.raises(TimeoutError):
        await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"], timeout=3)


async def test_offsets_are_committed_only_after_temporal_accepted_the_start(
    bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "c.txt", "text/plain", b"commit me\n"
    )
    sent = await publisher.publish(event, topic=UPLOADS)
    tp = TopicPartition(UPLOADS, sent.partition)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        async with asyncio.timeout(30):
            while True:
                offsets = await admin.list_consumer_group_offsets(bridge.config.group_id)
                committed = offsets.get(tp)
                if committed is not None and committed.offset > sent.offset:
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()
    # By the time the offset passed the record, its workflow existed in Temporal.
    handle = client.get_workflow_handle(f"file-upload/{tenant}/{event['file_id']}")
    assert (await handle.describe()).workflow_type == "file_upload_workflow"


async def test_a_poison_record_goes_to_the_dlq_and_the_records_behind_it_are_processed(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    dlq: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
) -> None:
    key = tenant.encode()  # same key, same partition: the good record sits behind the bad one
    poison = b"\xc3\x01" + uuid.uuid4().bytes[:8] + b"not avro"
    sent = await publisher.send_raw(
        UPLOADS, poison, key, [("content-type", b"application/vnd.ferry.avro")]
    )
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "after.txt", "text/plain", b"behind poison\n"
    )
    await publisher.send_raw(UPLOADS, encode(event), key, [])

    [dead] = await dlq.wait_for(
        lambda e: (
            e.get("headers", {}).get("ferry-source-offset") == str(sent.offset)
            and e["headers"].get("ferry-source-partition") == str(sent.partition)
        )
    )
    assert dead["headers"]["ferry-source-topic"] == UPLOADS
    assert "UnknownSchema" in dead["headers"]["ferry-error"]
    assert dead["headers"]["ferry-failed-at"]
    [processed] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])
    assert processed["event_type"] == "file.processed"


async def test_the_dlq_keeps_the_record_unchanged(
    bridge: Bridge, publisher: EventPublisher, settings: Settings, tenant: str
) -> None:
    value = b'{"event_type": "file.uploaded", "tenant_id": "' + tenant.encode() + b'"}'
    sent = await publisher.send_raw(
        UPLOADS, value, tenant.encode(), [("content-type", b"application/json")]
    )
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=None)
    await consumer.start()
    try:
        dlq = TopicPartition("ferry.dlq.v1", 0)
        consumer.assign([dlq])
        await consumer.seek_to_beginning(dlq)
        async with asyncio.timeout(30):
            while True:
                found = [
                    r
                    for records in (await consumer.getmany(timeout_ms=500)).values()
                    for r in records
                    if dict(r.headers).get("ferry-source-offset") == str(sent.offset).encode()
                    and dict(r.headers).get("ferry-source-partition")
                    == str(sent.partition).encode()
                ]
                if found:
                    break
    finally:
        await consumer.stop()
    [record] = found
    assert record.value == value
    assert record.key == tenant.encode()
    headers = dict(record.headers)
    assert headers["content-type"] == b"application/json"
    assert b"InvalidEvent" in headers["ferry-error"]
    assert b"missing required field" in headers["ferry-error"]


async def test_an_upload_whose_object_does_not_exist_is_rejected_not_stuck(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "gone.txt", "text/plain", b"soon gone"
    )
    await local_storage.delete(settings.ingest_bucket, event["storage"]["key"])

    await publisher.publish(event, topic=UPLOADS)
    [rejected] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])

    assert rejected["event_type"] == "file.rejected"
    assert rejected["reason"] == "corrupt"
    assert (
        rejected["detail"]
        == f"no object at local:{settings.ingest_bucket}/{event['storage']['key']}"
    )
    handle = client.get_workflow_handle(f"file-upload/{tenant}/{event['file_id']}")
    assert (await handle.result())["status"] == "rejected"
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
