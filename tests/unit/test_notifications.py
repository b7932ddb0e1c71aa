"""Bucket notifications (S3, MinIO, GCS Pub/Sub, Azure Event Grid) -> file.uploaded events."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ferry.consumers.notifications import (
    Notification,
    NotificationError,
    Upload,
    normalise,
    read,
)
from ferry.schemas import decode, encode

FIXTURES = Path(__file__).parent / "notifications"
# The namespace in ferry/consumers/notifications/common.py; event IDs already published depend
# on it, so it is written out here rather than imported.
NAMESPACE = uuid.UUID("872148f5-ad01-4fa2-9617-df8f06442240")


def raw(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def load(name: str) -> Any:
    return json.loads(raw(name))


def dump(document: Any) -> bytes:
    return json.dumps(document).encode("utf-8")


def only(value: bytes) -> Upload:
    uploads = normalise(value)
    assert len(uploads) == 1, uploads
    return uploads[0]


def gcs_resource(document: dict[str, Any]) -> dict[str, Any]:
    message = document.get("message", document)
    resource: dict[str, Any] = json.loads(base64.b64decode(message["data"]))
    return resource


def set_gcs_resource(document: dict[str, Any], resource: dict[str, Any]) -> None:
    message = document.get("message", document)
    message["data"] = base64.b64encode(json.dumps(resource).encode()).decode()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# --- Each fixture and the upload it announces ----------------------------------------

EXPECTED: dict[str, list[dict[str, Any]]] = {
    "s3_put.json": [
        {
            "source": "s3-notification",
            "tenant_id": "acme",
            "file_id": "0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69",
            "filename": "report.pdf",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 1024,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69/report.pdf",
            },
            "uploaded_by": "AWS:AIDAJDPLRKLG7UEXAMPLE",
            "occurred_at": utc("2024-05-14T09:21:37.412"),
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "0b0f2a52-8a5e-4d4c-9a4e-2f1d3c4b5a69/report.pdf:096fKKXTRTtl3on89fVO.nfljtsv6qko",
        }
    ],
    "s3_multipart_complete_with_spaces.json": [
        {
            "source": "s3-notification",
            "tenant_id": "acme",
            "file_id": "7c1e9f0a-3b5d-4e2f-8a6c-1d2e3f4a5b6c",
            "filename": "Quarterly Report (Q3) + appendix é.pdf",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 73400320,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/7c1e9f0a-3b5d-4e2f-8a6c-1d2e3f4a5b6c/"
                "Quarterly Report (Q3) + appendix é.pdf",
            },
            "uploaded_by": "AWS:AROA3XFRBF535PLBIFPI4:ferry-upload-gateway",
            "occurred_at": utc("2024-05-14T11:02:09.981"),
            # Unversioned bucket: no versionId, so the sequencer tells writes apart.
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "7c1e9f0a-3b5d-4e2f-8a6c-1d2e3f4a5b6c/Quarterly Report (Q3) + appendix é.pdf"
            ":0066433B51EE3A4A2C",
        }
    ],
    "s3_multiple_records.json": [
        {
            "source": "s3-notification",
            "tenant_id": "acme",
            "file_id": "1a2b3c4d-0000-4000-8000-000000000001",
            "filename": "a.txt",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 12,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/1a2b3c4d-0000-4000-8000-000000000001/a.txt",
            },
            "uploaded_by": "AWS:AIDAJDPLRKLG7UEXAMPLE",
            "occurred_at": utc("2024-05-14T10:00:00.120"),
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "1a2b3c4d-0000-4000-8000-000000000001/a.txt:Zx3l6bO7kT2D9m1Vn8Qp4Rs5Tu6Vw7Xy",
        },
        {
            "source": "s3-notification",
            "tenant_id": "acme",
            "file_id": "1a2b3c4d-0000-4000-8000-000000000002",
            "filename": "b.csv",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 2048,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/1a2b3c4d-0000-4000-8000-000000000002/b.csv",
            },
            "uploaded_by": "AWS:AIDAJDPLRKLG7UEXAMPLE",
            "occurred_at": utc("2024-05-14T10:00:01.377"),
            # versionId "null" is the null version, shared by every overwrite: not an ID.
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "1a2b3c4d-0000-4000-8000-000000000002/b.csv:0066433429E5F6A7B8",
        },
    ],
    "minio_put.json": [
        {
            "source": "minio-notification",
            "tenant_id": "initech",
            "file_id": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "filename": "cat photo.png",
            "declared_content_type": "image/png",
            "size_bytes": 84452,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/initech/uploads/f47ac10b-58cc-4372-a567-0e02b2c3d479/cat photo.png",
            },
            "uploaded_by": "ferry-uploader",
            "occurred_at": utc("2025-02-06T01:04:31.998"),
            "dedup_key": "s3:ferry-ingest/tenants/initech/uploads/"
            "f47ac10b-58cc-4372-a567-0e02b2c3d479/cat photo.png:182178E8B3728CAC",
        }
    ],
    "gcs_finalize_push.json": [
        {
            "source": "gcs-notification",
            "tenant_id": "umbrella-corp",
            "file_id": "9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "filename": "holiday photo+1.jpg",  # GCS names are literal: '+' stays '+'
            "declared_content_type": "image/jpeg",
            "size_bytes": 2479012,
            "storage": {
                "provider": "gcs",
                "bucket": "ferry-ingest",
                "key": "tenants/umbrella-corp/uploads/9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/"
                "holiday photo+1.jpg",
            },
            "uploaded_by": "gcs-notification",
            "occurred_at": utc("2024-05-14T09:20:17.246"),
            "dedup_key": "gcs:ferry-ingest/tenants/umbrella-corp/uploads/"
            "9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/holiday photo+1.jpg#1715678417230571",
        }
    ],
    "gcs_finalize_bare.json": [
        {
            "source": "gcs-notification",
            "tenant_id": "umbrella-corp",
            "file_id": "9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
            "filename": "holiday photo+1.jpg",
            "declared_content_type": "image/jpeg",
            "size_bytes": 2481337,
            "storage": {
                "provider": "gcs",
                "bucket": "ferry-ingest",
                "key": "tenants/umbrella-corp/uploads/9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/"
                "holiday photo+1.jpg",
            },
            "uploaded_by": "gcs-notification",
            "occurred_at": utc("2024-05-14T10:35:01.561"),
            "dedup_key": "gcs:ferry-ingest/tenants/umbrella-corp/uploads/"
            "9b2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f/holiday photo+1.jpg#1715682901554102",
        }
    ],
    "azure_blob_created.json": [
        {
            "source": "azure-event-grid",
            "tenant_id": "globex",
            "file_id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            "filename": "Invoice 2024-03.pdf",
            "declared_content_type": "application/pdf",
            "size_bytes": 524288,
            "storage": {
                "provider": "azure",
                "bucket": "ferry-ingest",
                "key": "tenants/globex/uploads/3fa85f64-5717-4562-b3fc-2c963f66afa6/"
                "Invoice 2024-03.pdf",
            },
            "uploaded_by": "azure-event-grid",
            "occurred_at": utc("2024-05-14T12:41:00.958"),
            # The eTag arrives quoted ("\"0x8D...\""); the key uses its bare value.
            "dedup_key": "azure:ferry-ingest/tenants/globex/uploads/"
            "3fa85f64-5717-4562-b3fc-2c963f66afa6/Invoice 2024-03.pdf@0x8D4BCC2E4835CD0",
        }
    ],
    "azure_blob_created_cloudevents.json": [
        {
            "source": "azure-event-grid",
            "tenant_id": "globex",
            "file_id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "filename": "diagram.png",
            "declared_content_type": "image/png",
            "size_bytes": 30699,
            "storage": {
                "provider": "azure",
                "bucket": "ferry-ingest",
                "key": "tenants/globex/uploads/6ba7b810-9dad-11d1-80b4-00c04fd430c8/diagram.png",
            },
            "uploaded_by": "azure-event-grid",
            "occurred_at": utc("2024-05-14T12:45:13.109"),
            "dedup_key": "azure:ferry-ingest/tenants/globex/uploads/"
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8/diagram.png@0x8DC7411A2B3C4D5",
        }
    ],
    "azure_flush_with_close.json": [
        {
            "source": "azure-event-grid",
            "tenant_id": "globex",
            "file_id": "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
            "filename": "telemetry.parquet",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 8388608,
            "storage": {
                "provider": "azure",
                "bucket": "ferry-ingest",
                "key": "tenants/globex/uploads/0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/"
                "telemetry.parquet",
            },
            "uploaded_by": "azure-event-grid",
            "occurred_at": utc("2024-05-14T14:10:04.091"),
            "dedup_key": "azure:ferry-ingest/tenants/globex/uploads/"
            "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6/telemetry.parquet@0x8DC7414A1E2F3A4",
        }
    ],
    "azure_sftp_commit.json": [
        {
            "source": "azure-event-grid",
            "tenant_id": "hooli",
            "file_id": "c56a4180-65aa-42ec-a945-5fd21dec0538",
            "filename": "export.csv",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 98317,
            "storage": {
                "provider": "azure",
                "bucket": "ferry-ingest",
                "key": "tenants/hooli/uploads/c56a4180-65aa-42ec-a945-5fd21dec0538/export.csv",
            },
            "uploaded_by": "hooli-sftp",  # data.identity, the SFTP local user
            "occurred_at": utc("2024-05-14T13:02:51.334"),
            "dedup_key": "azure:ferry-ingest/tenants/hooli/uploads/"
            "c56a4180-65aa-42ec-a945-5fd21dec0538/export.csv@0x8DC7413F5E6D7C8",
        }
    ],
    "s3_aws_lambda_go_put_png.json": [
        {
            "source": "s3-notification",
            "tenant_id": "acme",
            "file_id": "5d7c1a2b-3e4f-4a5b-8c6d-7e8f9a0b1c2d",
            "filename": "Happy Face.png",
            # AWS sends no content type: the upload is judged by its bytes and name.
            "declared_content_type": "application/octet-stream",
            "size_bytes": 1024,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/5d7c1a2b-3e4f-4a5b-8c6d-7e8f9a0b1c2d/Happy Face.png",
            },
            "uploaded_by": "EXAMPLE",
            "occurred_at": utc("2024-06-03T08:15:42.123"),
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "5d7c1a2b-3e4f-4a5b-8c6d-7e8f9a0b1c2d/Happy Face.png:version",
        }
    ],
    "eventbridge_object_created.json": [
        {
            "source": "s3-eventbridge",
            "tenant_id": "acme",
            "file_id": "8a6f0e2c-1b3d-4e5f-9a7b-6c5d4e3f2a1b",
            "filename": "IMG_m7fzo3.jpg",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 184662,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/acme/uploads/8a6f0e2c-1b3d-4e5f-9a7b-6c5d4e3f2a1b/IMG_m7fzo3.jpg",
            },
            "uploaded_by": "123456789012",
            "occurred_at": utc("2024-06-03T09:50:14"),
            "dedup_key": "s3:ferry-ingest/tenants/acme/uploads/"
            "8a6f0e2c-1b3d-4e5f-9a7b-6c5d4e3f2a1b/IMG_m7fzo3.jpg:006408CAD69598B05E",
        }
    ],
    "eventbridge_object_created_multipart_versioned.json": [
        {
            "source": "s3-eventbridge",
            "tenant_id": "initech",
            "file_id": "2b4d6f8a-0c1e-4a3b-9d5f-7a9c1e3b5d7f",
            "filename": "site survey (1).pdf",
            "declared_content_type": "application/octet-stream",
            "size_bytes": 198524144,
            "storage": {
                "provider": "s3",
                "bucket": "ferry-ingest",
                "key": "tenants/initech/uploads/2b4d6f8a-0c1e-4a3b-9d5f-7a9c1e3b5d7f/"
                "site survey (1).pdf",
            },
            "uploaded_by": "123456789012",
            "occurred_at": utc("2024-06-03T13:09:50"),
            "dedup_key": "s3:ferry-ingest/tenants/initech/uploads/"
            "2b4d6f8a-0c1e-4a3b-9d5f-7a9c1e3b5d7f/site survey (1).pdf"
            ":uhggCJ2_B6gU2JaXWXebnXFDstO0ID6G",
        }
    ],
    "eventarc_finalized.json": [
        {
            "source": "gcs-eventarc",
            "tenant_id": "umbrella-corp",
            "file_id": "4c3b2a19-0f8e-4d7c-b6a5-948372615049",
            "filename": "floor plan.png",
            "declared_content_type": "image/png",
            "size_bytes": 352817,
            "storage": {
                "provider": "gcs",
                "bucket": "ferry-ingest",
                "key": "tenants/umbrella-corp/uploads/4c3b2a19-0f8e-4d7c-b6a5-948372615049/"
                "floor plan.png",
            },
            "uploaded_by": "gcs-eventarc",
            "occurred_at": utc("2024-06-03T10:35:01.561"),
            "dedup_key": "gcs:ferry-ingest/tenants/umbrella-corp/uploads/"
            "4c3b2a19-0f8e-4d7c-b6a5-948372615049/floor plan.png#1717410901554102",
        }
    ],
}

# Each document without an upload, and the kind of non-event the bridge counts it as.
SKIPPED_KINDS = {
    "s3_test_event.json": ["test-event"],
    "s3_delete.json": ["deletion"],
    "minio_put_tagging.json": ["metadata-update"],
    "gcs_delete.json": ["deletion"],
    "azure_putblock_not_committed.json": ["uncommitted"],
    "azure_createfile_not_committed.json": ["uncommitted"],
    "azure_blob_deleted.json": ["deletion"],
    "azure_subscription_validation.json": ["subscription-validation"],
    "eventbridge_object_deleted.json": ["deletion"],
    "eventarc_metadata_updated.json": ["metadata-update"],
    "eventarc_deleted.json": ["deletion"],
}
SKIPPED = [
    "s3_test_event.json",
    "s3_delete.json",
    "minio_put_tagging.json",
    "gcs_delete.json",
    "azure_putblock_not_committed.json",
    "azure_createfile_not_committed.json",
    "azure_blob_deleted.json",
    "azure_subscription_validation.json",
    "eventbridge_object_deleted.json",
    "eventarc_metadata_updated.json",
    "eventarc_deleted.json",
]


def test_every_fixture_is_covered() -> None:
    assert {path.name for path in FIXTURES.glob("*.json")} == set(EXPECTED) | set(SKIPPED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_normalises_to_the_expected_uploads(name: str) -> None:
    uploads = normalise(raw(name))
    assert len(uploads) == len(EXPECTED[name])
    for upload, expected in zip(uploads, EXPECTED[name], strict=True):
        expected = dict(expected)
        dedup_key = expected.pop("dedup_key")
        assert upload.dedup_key == dedup_key
        assert upload.event == {
            "event_id": str(uuid.uuid5(NAMESPACE, dedup_key)),
            "event_type": "file.uploaded",
            "correlation_id": None,
            "sha256": None,
            **expected,
        }


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_events_are_valid_and_round_trip_through_the_codec(name: str) -> None:
    for upload in normalise(raw(name)):
        assert decode(encode(upload.event)) == upload.event
        occurred_at = upload.event["occurred_at"]
        assert occurred_at.utcoffset() is not None
        assert occurred_at.utcoffset().total_seconds() == 0


@pytest.mark.parametrize("name", sorted(SKIPPED))
def test_documents_without_an_upload_give_nothing(name: str) -> None:
    assert normalise(raw(name)) == []


def test_every_skipped_document_has_its_kind() -> None:
    assert set(SKIPPED_KINDS) == set(SKIPPED)


@pytest.mark.parametrize("name", sorted(SKIPPED))
def test_documents_without_an_upload_say_what_they_are(name: str) -> None:
    assert read(raw(name)) == Notification(uploads=[], skipped=SKIPPED_KINDS[name])


def test_a_batch_reports_its_uploads_and_its_non_events() -> None:
    batch = load("azure_subscription_validation.json") + load("azure_blob_created.json")
    notification = read(dump(batch))
    assert [u.event["filename"] for u in notification.uploads] == ["Invoice 2024-03.pdf"]
    assert notification.skipped == ["subscription-validation"]


# --- Routes that deliver the same object: one event ID ------------------------------


def test_eventbridge_and_s3_notifications_of_one_write_share_the_event_id() -> None:
    bridged = only(raw("eventbridge_object_created.json"))
    document = load("s3_put.json")
    obj = document["Records"][0]["s3"]["object"]
    obj["key"] = bridged.event["storage"]["key"]
    obj.pop("versionId", None)
    obj["sequencer"] = "006408CAD69598B05E"
    assert only(dump(document)).event["event_id"] == bridged.event["event_id"]


def test_eventarc_and_pubsub_notifications_of_one_object_share_the_event_id() -> None:
    eventarc = only(raw("eventarc_finalized.json"))
    document = load("gcs_finalize_push.json")
    resource = gcs_resource(document)
    resource["name"] = eventarc.event["storage"]["key"]
    resource["generation"] = "1717410901554102"
    set_gcs_resource(document, resource)
    assert only(dump(document)).event["event_id"] == eventarc.event["event_id"]


# --- Eventarc in binary mode and with base64 data ----------------------------------


def _binary(prefix: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """`eventarc_finalized.json` in binary mode: attributes as headers, data as the value."""
    event = load("eventarc_finalized.json")
    data = event.pop("data")
    headers = [(f"{prefix}{name}", str(value).encode()) for name, value in event.items()]
    headers.append(("content-type", b"application/json"))
    return dump(data), headers


@pytest.mark.parametrize("prefix", ["ce_", "ce-", "CE-"])
def test_eventarc_binary_mode_is_the_same_upload_as_structured(prefix: str) -> None:
    value, headers = _binary(prefix)
    assert normalise(value, headers) == normalise(raw("eventarc_finalized.json"))


def test_eventarc_binary_mode_of_a_deletion_is_skipped() -> None:
    value, headers = _binary("ce_")
    headers = [
        (name, b"google.cloud.storage.object.v1.deleted" if name == "ce_type" else value_)
        for name, value_ in headers
    ]
    assert read(value, headers) == Notification(uploads=[], skipped=["deletion"])


def test_headers_without_a_specversion_are_not_a_cloudevent() -> None:
    headers = [("ce_type", b"google.cloud.storage.object.v1.finalized")]
    assert normalise(raw("s3_put.json"), headers) == normalise(raw("s3_put.json"))


def test_eventarc_data_base64_is_decoded() -> None:
    event = load("eventarc_finalized.json")
    event["data_base64"] = base64.b64encode(json.dumps(event.pop("data")).encode()).decode()
    assert only(dump(event)) == only(raw("eventarc_finalized.json"))


def test_eventarc_names_the_object_by_source_and_subject_when_data_does_not() -> None:
    event = load("eventarc_finalized.json")
    del event["data"]["name"], event["data"]["bucket"]
    assert only(dump(event)) == only(raw("eventarc_finalized.json"))


# --- What Ferry does not know goes to the DLQ --------------------------------------


def _with(name: str, change: Callable[[Any], None]) -> bytes:
    document = load(name)
    change(document)
    return dump(document)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (
            _with("s3_put.json", lambda d: d["Records"][0].update(eventName="ObjectFrobbed:Put")),
            "'ObjectFrobbed:Put' is not an S3 event Ferry knows",
        ),
        (
            _with("eventbridge_object_created.json", lambda d: d.update({"detail-type": "X"})),
            "detail-type 'X' is not an S3 event Ferry knows",
        ),
        (
            _with("eventbridge_object_created.json", lambda d: d.update(source="aws.ec2")),
            "unrecognised notification format",
        ),
        (
            _with(
                "gcs_finalize_push.json",
                lambda d: d["message"]["attributes"].update(eventType="OBJECT_FROB"),
            ),
            "eventType 'OBJECT_FROB' is not one Ferry knows",
        ),
        (
            _with(
                "eventarc_finalized.json",
                lambda d: d.update(type="google.cloud.storage.object.v1.frobbed"),
            ),
            "is not a GCS event Ferry knows",
        ),
        (
            _with("eventarc_finalized.json", lambda d: d.update(type="com.example.thing")),
            "event type 'com.example.thing' is not one Ferry knows",
        ),
        (
            _with(
                "azure_blob_created.json",
                lambda d: d[0].update(eventType="Microsoft.Storage.BlobFrobbed"),
            ),
            "event type 'Microsoft.Storage.BlobFrobbed' is not one Ferry knows",
        ),
        (dump({"hello": "world"}), "unrecognised notification format (keys: 'hello')"),
    ],
    ids=[
        "s3-event-name",
        "eventbridge-detail-type",
        "eventbridge-other-service",
        "gcs-event-type",
        "eventarc-storage-type",
        "cloudevent-type",
        "azure-event-type",
        "unknown-document",
    ],
)
def test_what_ferry_does_not_know_is_refused_with_a_reason(value: bytes, reason: str) -> None:
    with pytest.raises(NotificationError) as caught:
        read(value)
    assert reason in str(caught.value)


# --- Redelivery and deduplication ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_redelivered_document_gives_the_same_event_ids(name: str) -> None:
    first = normalise(raw(name))
    again = normalise(raw(name))
    # Re-serialised (different whitespace and key order) is still the same notification.
    document = load(name)
    reserialised = normalise(json.dumps(document, sort_keys=True, separators=(",", ":")).encode())
    assert first == again == reserialised
    assert len({u.event["event_id"] for u in first}) == len(first)


def test_s3_versions_give_different_dedup_keys() -> None:
    document = load("s3_put.json")
    obj = document["Records"][0]["s3"]["object"]
    original = only(dump(document))
    obj["versionId"] = "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"
    obj["sequencer"] = "0055AED6DCD90281F7"
    new_version = only(dump(document))
    assert new_version.dedup_key != original.dedup_key
    assert new_version.event["event_id"] != original.event["event_id"]
    assert new_version.dedup_key.endswith(":3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY")


def test_s3_without_versions_uses_the_sequencer() -> None:
    document = load("s3_put.json")
    obj = document["Records"][0]["s3"]["object"]
    del obj["versionId"]
    first = only(dump(document))
    assert first.dedup_key.endswith(":0055AED6DCD90281E5")
    obj["sequencer"] = "0055AED6DCD90281F7"
    assert only(dump(document)).dedup_key != first.dedup_key


def test_minio_sequencers_give_different_dedup_keys() -> None:
    document = load("minio_put.json")
    first = only(dump(document))
    document["Records"][0]["s3"]["object"]["sequencer"] = "182178E8C0000001"
    assert only(dump(document)).dedup_key != first.dedup_key


def test_gcs_generations_give_different_dedup_keys() -> None:
    push, bare = only(raw("gcs_finalize_push.json")), only(raw("gcs_finalize_bare.json"))
    assert push.event["storage"] == bare.event["storage"]
    assert push.dedup_key != bare.dedup_key
    assert push.event["event_id"] != bare.event["event_id"]

    document = load("gcs_finalize_push.json")
    resource = gcs_resource(document)
    resource["generation"] = "1715678417230572"
    set_gcs_resource(document, resource)
    assert only(dump(document)).dedup_key.endswith("#1715678417230572")


def test_azure_etags_give_different_dedup_keys() -> None:
    document = load("azure_blob_created.json")
    first = only(dump(document))
    document[0]["data"]["eTag"] = '"0x8D4BCC2E4835CD1"'
    assert only(dump(document)).dedup_key != first.dedup_key
    # Quoted or bare, the same eTag is the same blob version.
    document[0]["data"]["eTag"] = "0x8D4BCC2E4835CD0"
    assert only(dump(document)).dedup_key == first.dedup_key


# --- Provider details ----------------------------------------------------------------


def test_minio_uses_the_record_key_not_the_top_level_key() -> None:
    document = load("minio_put.json")
    # MinIO escapes '/' in the record key; the top-level Key is bucket + unescaped key.
    assert "%2F" in document["Records"][0]["s3"]["object"]["key"]
    document["Key"] = "something/else entirely"
    assert only(dump(document)).event["storage"]["key"] == (
        "tenants/initech/uploads/f47ac10b-58cc-4372-a567-0e02b2c3d479/cat photo.png"
    )


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectCreated:Put",
    ],
)
def test_s3_create_events_are_uploads(event_name: str) -> None:
    document = load("s3_put.json")
    document["Records"][0]["eventName"] = event_name
    assert len(normalise(dump(document))) == 1


@pytest.mark.parametrize(
    "event_name",
    [
        "ObjectRemoved:Delete",
        "ObjectRemoved:DeleteMarkerCreated",
        "ObjectRestore:Completed",
        "ObjectTagging:Put",
        "LifecycleExpiration:Delete",
        "s3:ObjectCreated:PutRetention",
        "s3:ObjectCreated:PutLegalHold",
        "s3:ObjectCreated:DeleteTagging",
        "s3:ObjectAccessed:Get",
    ],
)
def test_s3_other_events_are_skipped(event_name: str) -> None:
    document = load("s3_put.json")
    document["Records"][0]["eventName"] = event_name
    assert normalise(dump(document)) == []


def test_s3_skips_deletes_but_keeps_uploads_in_one_document() -> None:
    document = load("s3_multiple_records.json")
    document["Records"].insert(1, load("s3_delete.json")["Records"][0])
    assert [u.event["filename"] for u in normalise(dump(document))] == ["a.txt", "b.csv"]


def test_minio_content_type_and_s3_default() -> None:
    assert only(raw("minio_put.json")).event["declared_content_type"] == "image/png"
    assert only(raw("s3_put.json")).event["declared_content_type"] == "application/octet-stream"


def test_uploaded_by_falls_back_to_the_source() -> None:
    document = load("s3_put.json")
    del document["Records"][0]["userIdentity"]
    assert only(dump(document)).event["uploaded_by"] == "s3-notification"
    document = load("minio_put.json")
    document["Records"][0]["userIdentity"]["principalId"] = ""  # anonymous MinIO upload
    assert only(dump(document)).event["uploaded_by"] == "minio-notification"


@pytest.mark.parametrize(
    "event_type", ["OBJECT_DELETE", "OBJECT_ARCHIVE", "OBJECT_METADATA_UPDATE"]
)
def test_gcs_events_other_than_finalize_are_skipped(event_type: str) -> None:
    document = load("gcs_finalize_push.json")
    document["message"]["attributes"]["eventType"] = event_type
    assert normalise(dump(document)) == []


def test_gcs_pull_response_message_is_accepted() -> None:
    document = load("gcs_finalize_push.json")
    pulled = {"ackId": "UAYWLF1GSFE3GQhoUQ5PXiM_NSAoRRIJB08CKF15MEorQV5Ta", **document}
    del pulled["subscription"]
    assert only(dump(pulled)) == only(raw("gcs_finalize_push.json"))


@pytest.mark.parametrize(
    "api", ["PutBlock", "CreateFile", "AppendBlock", "PutPage", "FlushWithoutClose", "SetBlobTier"]
)
def test_azure_uncommitted_apis_are_skipped(api: str) -> None:
    document = load("azure_blob_created.json")
    document[0]["data"]["api"] = api
    assert normalise(dump(document)) == []


@pytest.mark.parametrize("api", ["PutBlob", "PutBlockList", "CopyBlob", "FlushWithClose"])
def test_azure_committed_apis_are_uploads(api: str) -> None:
    document = load("azure_blob_created.json")
    document[0]["data"]["api"] = api
    assert len(normalise(dump(document))) == 1


def test_azure_batch_mixes_validation_skips_and_uploads() -> None:
    batch = (
        load("azure_subscription_validation.json")
        + load("azure_putblock_not_committed.json")
        + load("azure_blob_created.json")
        + [load("azure_blob_created_cloudevents.json")]
    )
    assert [u.event["filename"] for u in normalise(dump(batch))] == [
        "Invoice 2024-03.pdf",
        "diagram.png",
    ]


def test_azure_single_event_grid_object_and_cloudevents_array() -> None:
    single = load("azure_blob_created.json")[0]
    assert only(dump(single)) == only(raw("azure_blob_created.json"))
    batch = [load("azure_blob_created_cloudevents.json")]
    assert only(dump(batch)) == only(raw("azure_blob_created_cloudevents.json"))


def test_azure_key_comes_from_the_literal_subject_not_the_url() -> None:
    document = load("azure_blob_created.json")
    assert "%20" in document[0]["data"]["url"]
    assert only(dump(document)).event["filename"] == "Invoice 2024-03.pdf"


# --- Keys ----------------------------------------------------------------------------


def s3_with_key(key: str) -> bytes:
    document = load("s3_put.json")
    document["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="/")
    return dump(document)


def minio_with_key(key: str) -> bytes:
    document = load("minio_put.json")
    document["Records"][0]["s3"]["object"]["key"] = quote_plus(key, safe="")
    return dump(document)


def gcs_with_key(key: str) -> bytes:
    document = load("gcs_finalize_push.json")
    document["message"]["attributes"]["objectId"] = key
    resource = gcs_resource(document)
    resource["name"] = key
    set_gcs_resource(document, resource)
    return dump(document)


def azure_with_key(key: str) -> bytes:
    document = load("azure_blob_created.json")
    document[0]["subject"] = f"/blobServices/default/containers/ferry-ingest/blobs/{key}"
    return dump(document)


WITH_KEY: dict[str, Callable[[str], bytes]] = {
    "s3": s3_with_key,
    "minio": minio_with_key,
    "gcs": gcs_with_key,
    "azure": azure_with_key,
}

BAD_KEYS = [
    "uploads/x",
    "tenants/UPPER/uploads/f/n",
    "tenants/acme/uploads/f/",
    "tenants/acme/uploads//n",
    "tenants/acme/uploads/../n",
    "tenants/acme/uploads/f/..",
    "tenants/../uploads/f/n",
    "tenants/acme/uploads/f/n/extra",
    "tenants/acme/files/f/n",
    "tenants/a/uploads/f/n",  # a slug has at least two characters
    "tenants/-acme/uploads/f/n",
    f"tenants/{'a' * 64}/uploads/f/n",
    "tenants/acme/uploads/f/line\nbreak.txt",
    "tenants/acme/uploads/f/back\\slash.txt",
    "tenants/acme/uploads",
    "/tenants/acme/uploads/f/n",
]


@pytest.mark.parametrize("provider", sorted(WITH_KEY))
@pytest.mark.parametrize("key", BAD_KEYS)
def test_keys_outside_the_upload_layout_are_rejected(provider: str, key: str) -> None:
    with pytest.raises(NotificationError, match="key"):
        normalise(WITH_KEY[provider](key))


@pytest.mark.parametrize("provider", sorted(WITH_KEY))
@pytest.mark.parametrize(
    ("key", "tenant_id", "file_id", "filename"),
    [
        ("tenants/ab/uploads/f/n", "ab", "f", "n"),
        (f"tenants/{'a' * 63}/uploads/f/n", "a" * 63, "f", "n"),
        ("tenants/0-co/uploads/F_1/a..b.txt", "0-co", "F_1", "a..b.txt"),
        ("tenants/acme/uploads/x/naïve résumé (final) #2 100%.doc", "acme", "x", None),
        ("tenants/acme/uploads/x/ C++ & friends?.txt", "acme", "x", None),
    ],
)
def test_valid_keys_are_split_into_their_parts(
    provider: str, key: str, tenant_id: str, file_id: str, filename: str | None
) -> None:
    event = only(WITH_KEY[provider](key)).event
    assert event["storage"]["key"] == key
    assert (event["tenant_id"], event["file_id"], event["filename"]) == (
        tenant_id,
        file_id,
        filename or key.rsplit("/", 1)[1],
    )


def test_s3_encoded_slash_in_a_filename_is_a_separator() -> None:
    document = load("s3_put.json")
    document["Records"][0]["s3"]["object"]["key"] = "tenants/acme/uploads/f/a%2Fb.txt"
    with pytest.raises(NotificationError, match="key"):
        normalise(dump(document))


def test_bad_key_error_is_readable() -> None:
    with pytest.raises(NotificationError) as raised:
        normalise(s3_with_key("uploads/x"))
    message = str(raised.value)
    assert "Records[0]" in message
    assert "'uploads/x'" in message
    assert "tenants/{tenant_id}/uploads/{file_id}/{filename}" in message


# --- Garbage -------------------------------------------------------------------------


def mutated(name: str, change: Callable[[Any], None]) -> bytes:
    document = load(name)
    change(document)
    return dump(document)


def _gcs_payload_none(document: Any) -> None:
    document["message"]["attributes"]["payloadFormat"] = "NONE"
    document["message"]["data"] = ""


GARBAGE: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b"  \n",
    "not json": b"not json",
    "truncated": raw("s3_put.json")[:100],
    "not utf-8": b"\xff\xfe{\x00}",
    "json null": b"null",
    "json number": b"42",
    "json string": b'"s3:TestEvent"',
    "empty array": b"[]",
    "array of numbers": b"[1, 2]",
    "empty object": b"{}",
    "unknown object": b'{"kind": "storage#object", "name": "tenants/acme/uploads/f/n"}',
    "avro": b"\xc3\x01" + bytes(8) + b"\x00",
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,
    "huge number": b'{"Records": [' + b"1" * 5000 + b"]}",
    "records not a list": b'{"Records": {}}',
    "records empty": b'{"Records": []}',
    "record not an object": b'{"Records": ["x"]}',
    "s3 unknown source": mutated(
        "s3_put.json", lambda d: d["Records"][0].update(eventSource="aws:sqs")
    ),
    "s3 missing size": mutated(
        "s3_put.json", lambda d: d["Records"][0]["s3"]["object"].pop("size")
    ),
    "s3 negative size": mutated(
        "s3_put.json", lambda d: d["Records"][0]["s3"]["object"].update(size=-1)
    ),
    "s3 size as float": mutated(
        "s3_put.json", lambda d: d["Records"][0]["s3"]["object"].update(size=1.5)
    ),
    "s3 size as bool": mutated(
        "s3_put.json", lambda d: d["Records"][0]["s3"]["object"].update(size=True)
    ),
    "s3 size too large": mutated(
        "s3_put.json", lambda d: d["Records"][0]["s3"]["object"].update(size=2**63)
    ),
    "s3 no version or sequencer": mutated(
        "s3_multipart_complete_with_spaces.json",
        lambda d: d["Records"][0]["s3"]["object"].pop("sequencer"),
    ),
    "s3 missing bucket": mutated("s3_put.json", lambda d: d["Records"][0]["s3"].pop("bucket")),
    "s3 bad time": mutated("s3_put.json", lambda d: d["Records"][0].update(eventTime="yesterday")),
    "s3 missing time": mutated("s3_put.json", lambda d: d["Records"][0].pop("eventTime")),
    "s3 key not utf-8": mutated(
        "s3_put.json",
        lambda d: d["Records"][0]["s3"]["object"].update(key="tenants/acme/uploads/f/%FF.txt"),
    ),
    "s3 key with lone surrogate": b'{"Records":[{"eventSource":"aws:s3","eventName":'
    b'"ObjectCreated:Put","eventTime":"2024-01-01T00:00:00Z","s3":{"bucket":{"name":"b"},'
    b'"object":{"key":"tenants/acme/uploads/f/\\ud800","size":1,"sequencer":"01"}}}]}',
    "s3 event name missing": mutated("s3_put.json", lambda d: d["Records"][0].pop("eventName")),
    "gcs message not an object": b'{"message": "hello"}',
    "gcs attributes missing": b'{"message": {"data": "e30="}}',
    "gcs data not base64": mutated(
        "gcs_finalize_push.json", lambda d: d["message"].update(data="%%%not base64%%%")
    ),
    "gcs data not json": mutated(
        "gcs_finalize_push.json",
        lambda d: d["message"].update(data=base64.b64encode(b"<xml/>").decode()),
    ),
    "gcs data missing": mutated("gcs_finalize_push.json", lambda d: d["message"].pop("data")),
    "gcs payload none": mutated("gcs_finalize_push.json", _gcs_payload_none),
    "gcs bad generation": mutated(
        "gcs_finalize_bare.json",
        lambda d: set_gcs_resource(d, {**gcs_resource(d), "generation": "-1"}),
    ),
    "gcs size not a number": mutated(
        "gcs_finalize_bare.json",
        lambda d: set_gcs_resource(d, {**gcs_resource(d), "size": "12kB"}),
    ),
    "azure bad subject": mutated(
        "azure_blob_created.json",
        lambda d: d[0].update(subject="/blobServices/default/containers/ferry-ingest"),
    ),
    "azure missing etag": mutated("azure_blob_created.json", lambda d: d[0]["data"].pop("eTag")),
    "azure empty etag": mutated(
        "azure_blob_created.json", lambda d: d[0]["data"].update(eTag='""')
    ),
    "azure missing length": mutated(
        "azure_blob_created.json", lambda d: d[0]["data"].pop("contentLength")
    ),
    "azure data not an object": mutated(
        "azure_blob_created.json", lambda d: d[0].update(data="PutBlob")
    ),
    "azure array with garbage": mutated("azure_blob_created.json", lambda d: d.append(7)),
    "azure array with unknown object": mutated(
        "azure_blob_created.json", lambda d: d.append({"hello": "world"})
    ),
    "cloudevent without type": mutated(
        "azure_blob_created_cloudevents.json", lambda d: d.pop("type")
    ),
    "time out of range": mutated(
        "azure_blob_created.json", lambda d: d[0].update(eventTime="9999-12-31T23:59:59-01:00")
    ),
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_raises_a_notification_error(name: str) -> None:
    with pytest.raises(NotificationError) as raised:
        normalise(GARBAGE[name])
    assert str(raised.value)
    assert len(str(raised.value)) < 400


@pytest.mark.parametrize("value", [None, "text", 42, bytearray(b"{}")])
def test_non_bytes_values_raise_a_notification_error(value: Any) -> None:
    with pytest.raises(NotificationError):
        normalise(value)


def test_empty_record_says_so() -> None:
    with pytest.raises(NotificationError, match="empty notification"):
        normalise(b"")


def test_notification_error_is_a_value_error() -> None:
    assert issubclass(NotificationError, ValueError)


def test_memoryview_and_bytearray_are_accepted() -> None:
    data = raw("s3_put.json")
    # aiokafka hands over bytes, but a caller holding a buffer should not be punished.
    as_bytearray: Any = bytearray(data)
    as_memoryview: Any = memoryview(data)
    assert normalise(as_bytearray) == normalise(as_memoryview) == normalise(data)


# --- Nothing but NotificationError, whatever the input -------------------------------


def assert_total(value: bytes) -> None:
    try:
        uploads = normalise(value)
    except NotificationError as exc:
        assert str(exc)
        return
    for upload in uploads:
        encode(upload.event)
        assert upload.event["event_id"] == str(uuid.uuid5(NAMESPACE, upload.dedup_key))


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["", "null", "0", "OBJECT_FINALIZE", "Microsoft.Storage.BlobCreated"]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            found += paths(child, (*prefix, i))
    return found


def replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    document = copy.deepcopy(document)
    parent = document
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = value
    return document


def mutate(document: Any, draw: st.DrawFn) -> Any:
    """The document with one to three nodes replaced by random JSON or removed."""
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths(document)))
        if path and isinstance(path[-1], str) and draw(st.booleans()):
            document = copy.deepcopy(document)
            parent = document
            for step in path[:-1]:
                parent = parent[step]
            del parent[path[-1]]
        else:
            document = replaced(document, path, draw(json_values))
    return document


@st.composite
def mutated_fixtures(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(sorted(EXPECTED) + SKIPPED))
    document = load(name)
    if name.startswith("gcs_") and draw(st.booleans()):
        # Reach into the base64-encoded object resource as well.
        set_gcs_resource(document, mutate(gcs_resource(document), draw))
    else:
        document = mutate(document, draw)
    return json.dumps(document).encode("utf-8")


@given(st.binary(max_size=512))
@settings(max_examples=300)
def test_arbitrary_bytes_raise_nothing_but_notification_error(value: bytes) -> None:
    assert_total(value)


@given(json_values)
@settings(max_examples=300)
def test_arbitrary_json_raises_nothing_but_notification_error(value: Any) -> None:
    assert_total(json.dumps(value).encode("utf-8"))


@given(mutated_fixtures())
@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
def test_mutated_fixtures_raise_nothing_but_notification_error(value: bytes) -> None:
    assert_total(value)


@given(st.text(max_size=80))
@settings(max_examples=300)
def test_arbitrary_keys_raise_nothing_but_notification_error(key: str) -> None:
    for build in WITH_KEY.values():
        try:
            value = build(key)
        except UnicodeEncodeError:  # lone surrogates cannot even be put into the fixture
            continue
        assert_total(value)
