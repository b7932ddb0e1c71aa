"""What an upload may name, tried from the outside: another tenant's objects, keys that
climb out, and the providers' own notification formats, on the real stack."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client
from waiting import eventually

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.dlq import DeadLetter, read_dead_letters
from ferry.consumers.tail import TopicFollower
from ferry.contracts.storage import StorageRef
from ferry.contracts.topics import STORAGE_NOTIFICATIONS
from ferry.demo import DEMO_FILES, ensure_tenant, stage_upload
from ferry.producers import EventPublisher, Published
from ferry.storage import LocalStorage, StorageProvider, providers_from_env
from ferry.workflows.file_upload import FileUploadInput, FileUploadWorkflow

pytestmark = pytest.mark.stack

UPLOADS = "ferry.uploads.v1"
NOTIFICATIONS = Path(__file__).parent.parent / "unit" / "notifications"
PNG = next(data for name, _, data in DEMO_FILES if name.endswith(".png"))


@pytest.fixture
async def other_tenant(sessionmaker: async_sessionmaker[AsyncSession]) -> str:
    """The victim: a second tenant whose objects the first tries to take."""
    return await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
async def providers(settings: Settings) -> AsyncIterator[dict[str, StorageProvider]]:
    providers = providers_from_env(settings.local_storage_root)
    yield providers
    for provider in providers.values():
        await provider.close()


async def put(storage: StorageProvider, bucket: str, key: str, data: bytes) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await storage.create_bucket(bucket)
    await storage.write(bucket, key, chunks())


async def read(storage: StorageProvider, bucket: str, key: str) -> bytes:
    return b"".join([chunk async for chunk in storage.read(bucket, key)])


def upload_of(tenant: str, bucket: str, key: str, data: bytes) -> dict[str, Any]:
    """A well-formed `file.uploaded` of `tenant` that names `bucket`/`key`."""
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.uploaded",
        "occurred_at": datetime.now(UTC),
        "tenant_id": tenant,
        "correlation_id": None,
        "source": "tests.attacker",
        "file_id": str(uuid.uuid4()),
        "filename": "private.txt",
        "declared_content_type": "text/plain",
        "size_bytes": len(data),
        "storage": {"provider": "local", "bucket": bucket, "key": key},
        "sha256": hashlib.sha256(data).hexdigest(),
        "uploaded_by": "mallory",
    }


async def dead_letter_of(settings: Settings, sent: Published, timeout: float = 30) -> DeadLetter:
    """The dead letter of the record `sent`, once the bridge has written it."""
    found: list[DeadLetter] = []

    async def written() -> bool:
        found[:] = [
            letter
            for letter in await read_dead_letters(settings.kafka_bootstrap, limit=200)
            if letter.source_topic == sent.topic
            and letter.header("ferry-source-partition") == str(sent.partition)
            and letter.header("ferry-source-offset") == str(sent.offset)
        ]
        return bool(found)

    await eventually(written, f"the dead letter of {sent}", timeout=timeout, interval=0.25)
    return found[0]


async def workflow_ids(client: Client, tenant: str) -> list[str]:
    return [wf.id async for wf in client.list_workflows(f'TenantId = "{tenant}"')]


async def run_directly(
    client: Client, task_queue: str, event: dict[str, Any]
) -> tuple[str, str | None, str | None]:
    """Start the upload workflow as another client might, bypassing the bridge."""
    result = await client.execute_workflow(
        FileUploadWorkflow.run,
        FileUploadInput(
            event_id=event["event_id"],
            tenant_id=event["tenant_id"],
            file_id=event["file_id"],
            filename=event["filename"],
            declared_content_type=event["declared_content_type"],
            size_bytes=event["size_bytes"],
            storage=StorageRef(**event["storage"]),
            uploaded_by=event["uploaded_by"],
            sha256=event["sha256"],
        ),
        id=f"file-upload/{event['tenant_id']}/{event['file_id']}",
        task_queue=task_queue,
    )
    return result.status, result.reason, result.detail


# --- 1. Another tenant's objects ---------------------------------------------------


async def test_an_upload_naming_another_tenants_objects_is_dead_lettered_and_nothing_moves(
    bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
    other_tenant: str,
) -> None:
    private = b"B's private numbers\n"
    staged = await stage_upload(
        local_storage, settings.ingest_bucket, other_tenant, "private.txt", "text/plain", private
    )
    b_upload = staged["storage"]["key"]
    b_original = f"files/{uuid.uuid4()}/original"
    await put(local_storage, f"ferry-{other_tenant}", b_original, private)

    in_ingest = await publisher.publish(
        upload_of(tenant, settings.ingest_bucket, b_upload, private), topic=UPLOADS
    )
    in_bucket = await publisher.publish(
        upload_of(tenant, f"ferry-{other_tenant}", b_original, private), topic=UPLOADS
    )

    for sent in (in_ingest, in_bucket):
        letter = await dead_letter_of(settings, sent)
        assert letter.reason.startswith("storage key outside the tenant's upload prefix")
    assert await read(local_storage, settings.ingest_bucket, b_upload) == private
    assert await read(local_storage, f"ferry-{other_tenant}", b_original) == private
    assert (await local_storage.list(f"ferry-{tenant}")).items == []
    assert await workflow_ids(client, tenant) == []


async def test_an_upload_workflow_started_directly_refuses_another_tenants_objects(
    worker: None,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
    tenant: str,
    other_tenant: str,
) -> None:
    private = b"B's private numbers\n"
    staged = await stage_upload(
        local_storage, settings.ingest_bucket, other_tenant, "private.txt", "text/plain", private
    )
    b_original = f"files/{uuid.uuid4()}/original"
    await put(local_storage, f"ferry-{other_tenant}", b_original, private)
    # The right key for the attacker's own upload, but in the victim's bucket: only the
    # activities know which bucket is the ingest bucket, and they refuse it.
    attack = upload_of(tenant, f"ferry-{other_tenant}", "", private)
    attack["storage"]["key"] = f"tenants/{tenant}/uploads/{attack['file_id']}/private.txt"
    await put(local_storage, f"ferry-{other_tenant}", attack["storage"]["key"], private)
    attacks = [
        upload_of(tenant, settings.ingest_bucket, staged["storage"]["key"], private),
        upload_of(tenant, f"ferry-{other_tenant}", b_original, private),
        attack,
    ]

    for event in attacks:
        status, reason, detail = await run_directly(client, task_queue, event)
        assert (status, reason) == ("rejected", "corrupt")
        assert detail is not None
        assert detail.startswith("storage key outside the tenant's upload prefix"), detail

    file_ids = {event["file_id"] for event in attacks}
    outcomes = await file_events.wait_for(lambda e: e.get("file_id") in file_ids, count=3)
    assert {(e["event_type"], e["reason"]) for e in outcomes} == {("file.rejected", "corrupt")}
    for event in attacks:
        storage = event["storage"]
        assert await read(local_storage, storage["bucket"], storage["key"]) == private
    assert (await local_storage.list(f"ferry-{tenant}")).items == []
    assert (await local_storage.list("ferry-quarantine", f"quarantine/{tenant}/")).items == []


# --- 2. A key that climbs out ------------------------------------------------------


async def test_a_key_that_climbs_out_is_dead_lettered_with_its_reason(
    bridge: Bridge,
    publisher: EventPublisher,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    canary = f"canary-{uuid.uuid4().hex[:8]}/secret.txt"
    await put(local_storage, settings.ingest_bucket, canary, b"do not touch\n")
    event = upload_of(tenant, settings.ingest_bucket, "", b"do not touch\n")
    event["storage"]["key"] = f"tenants/{tenant}/uploads/{event['file_id']}/../../../../{canary}"

    sent = await publisher.publish(event, topic=UPLOADS)

    letter = await dead_letter_of(settings, sent)
    assert letter.reason.startswith("invalid key: a key must not contain empty, '.' or '..'")
    assert await read(local_storage, settings.ingest_bucket, canary) == b"do not touch\n"
    assert await workflow_ids(client, tenant) == []


async def test_a_key_that_climbs_out_ends_in_file_rejected_when_started_directly(
    worker: None,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    client: Client,
    task_queue: str,
    tenant: str,
) -> None:
    canary = f"canary-{uuid.uuid4().hex[:8]}/secret.txt"
    await put(local_storage, settings.ingest_bucket, canary, b"do not touch\n")
    event = upload_of(tenant, settings.ingest_bucket, "", b"do not touch\n")
    event["storage"]["key"] = f"tenants/{tenant}/uploads/{event['file_id']}/../../../../{canary}"

    status, reason, detail = await run_directly(client, task_queue, event)

    assert (status, reason) == ("rejected", "corrupt")
    assert detail is not None and detail.startswith("invalid key"), detail
    [rejected] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])
    assert (rejected["event_type"], rejected["detail"]) == ("file.rejected", detail)
    assert await read(local_storage, settings.ingest_bucket, canary) == b"do not touch\n"


# --- 3 and 4. The providers' own notifications -------------------------------------


def _fixture(name: str) -> Any:
    return json.loads((NOTIFICATIONS / name).read_text())


Notification = tuple[bytes, list[tuple[str, bytes]]]


def _aws_s3(key: str, size: int) -> Notification:
    document = _fixture("s3_aws_lambda_go_put_png.json")
    obj = document["Records"][0]["s3"]["object"]
    assert "contentType" not in obj  # AWS's records carry none
    obj.update(key=key.replace(" ", "+"), size=size, versionId=uuid.uuid4().hex)
    obj["urlDecodedKey"] = key
    return json.dumps(document).encode(), []


def _eventbridge(key: str, size: int) -> Notification:
    document = _fixture("eventbridge_object_created.json")
    document["detail"]["object"].update(
        key=key.replace(" ", "+"), size=size, sequencer=uuid.uuid4().hex[:18].upper()
    )
    return json.dumps(document).encode(), []


def _eventarc(key: str, size: int) -> dict[str, Any]:
    event: dict[str, Any] = _fixture("eventarc_finalized.json")
    event["id"] = uuid.uuid4().hex
    event["subject"] = f"objects/{key}"
    generation = str(uuid.uuid4().int % 10**16)
    event["data"].update(name=key, size=str(size), generation=generation)
    event["data"]["id"] = f"ferry-ingest/{key}/{generation}"
    return event


def _eventarc_structured(key: str, size: int) -> Notification:
    headers = [("content-type", b"application/cloudevents+json; charset=UTF-8")]
    return json.dumps(_eventarc(key, size)).encode(), headers


def _eventarc_binary(key: str, size: int) -> Notification:
    event = _eventarc(key, size)
    data = event.pop("data")
    # The Kafka protocol binding of CloudEvents: attributes as `ce_` headers.
    headers = [(f"ce_{name}", str(value).encode()) for name, value in event.items()]
    headers.append(("content-type", b"application/json"))
    return json.dumps(data).encode(), headers


@pytest.mark.parametrize(
    ("provider", "notification"),
    [
        ("s3", _aws_s3),
        ("s3", _eventbridge),
        ("gcs", _eventarc_structured),
        ("gcs", _eventarc_binary),
    ],
    ids=[
        "aws-s3-notification-without-content-type",
        "s3-through-eventbridge",
        "eventarc-cloudevent",
        "eventarc-cloudevent-in-binary-mode",
    ],
)
async def test_a_providers_notification_of_a_png_is_processed(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    providers: dict[str, StorageProvider],
    settings: Settings,
    tenant: str,
    provider: str,
    notification: Callable[[str, int], Notification],
) -> None:
    """A PNG put in a provider's ingest bucket and announced as that provider would."""
    storage = providers[provider]
    file_id = str(uuid.uuid4())
    key = f"tenants/{tenant}/uploads/{file_id}/Happy Face.png"
    await put(storage, settings.ingest_bucket, key, PNG)
    value, headers = notification(key, len(PNG))

    await publisher.send_raw(STORAGE_NOTIFICATIONS, value, tenant.encode(), headers)

    [outcome] = await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=60)
    assert outcome["event_type"] == "file.processed", outcome
    assert outcome["content_type"] == "image/png"
    assert outcome["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert outcome["metadata"]["filename"] == "Happy Face.png"
    assert {t["name"] for t in outcome["thumbnails"]}, "an image gets its thumbnails"
    stored = outcome["storage"]
    assert (stored["bucket"], stored["key"]) == (f"ferry-{tenant}", f"files/{file_id}/original")
    assert await read(local_storage, stored["bucket"], stored["key"]) == PNG
    assert await storage.head(settings.ingest_bucket, key) is None


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b'{"kind": "something-else", "id": 7}', "unrecognised notification format"),
        (
            json.dumps({**_fixture("eventarc_finalized.json"), "type": "com.example.x"}).encode(),
            "event type 'com.example.x' is not one Ferry knows",
        ),
    ],
    ids=["unknown-json", "unknown-cloudevent"],
)
async def test_an_unknown_document_on_the_notifications_topic_is_dead_lettered(
    bridge: Bridge, publisher: EventPublisher, settings: Settings, value: bytes, reason: str
) -> None:
    sent = await publisher.send_raw(STORAGE_NOTIFICATIONS, value, b"whoever", [])

    letter = await dead_letter_of(settings, sent)
    assert reason in letter.reason
    assert letter.value == value


async def test_a_notification_of_another_buckets_object_is_dead_lettered(
    bridge: Bridge,
    publisher: EventPublisher,
    providers: dict[str, StorageProvider],
    settings: Settings,
    client: Client,
    tenant: str,
) -> None:
    # A well-formed upload key, but in a bucket that is not the ingest bucket.
    document = _fixture("s3_aws_lambda_go_put_png.json")
    key = f"tenants/{tenant}/uploads/{uuid.uuid4()}/Happy+Face.png"
    document["Records"][0]["s3"]["object"]["key"] = key
    document["Records"][0]["s3"]["bucket"]["name"] = "someone-elses-bucket"

    sent = await publisher.send_raw(
        STORAGE_NOTIFICATIONS, json.dumps(document).encode(), tenant.encode(), []
    )

    letter = await dead_letter_of(settings, sent)
    assert "is not the ingest bucket 'ferry-ingest'" in letter.reason
    assert await workflow_ids(client, tenant) == []
