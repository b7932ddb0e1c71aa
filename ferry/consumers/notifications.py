"""Storage bucket notifications -> ``file.uploaded`` events (CONTRACT §3).

The topic ``ferry.storage-notifications.v1`` carries the providers' own JSON,
unchanged:

- S3 and MinIO event notifications (``Records``), and S3's test event;
- S3 events routed through Amazon EventBridge (``source: aws.s3``, ``detail-type``);
- GCS Pub/Sub notifications (``OBJECT_FINALIZE``, pushed or pulled);
- GCS events routed through Eventarc: CloudEvents of type
  ``google.cloud.storage.object.v1.*``, structured (JSON) or in binary mode (the
  attributes in ``ce-*``/``ce_*`` record headers, the object resource as the value);
- Azure Event Grid events (Event Grid or CloudEvents schema).

``read`` turns one record into zero or more uploads and the kinds of the known
non-events it holds (a test event, a deletion, an uncommitted block, a metadata
change), which the bridge counts. Anything else raises ``NotificationError``, and
the record goes to the DLQ with the reason. Each upload has a provider-specific
deduplication key, and its ``event_id`` is a UUIDv5 of that key, so a redelivered
notification repeats the same ``event_id``, whichever route delivered it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_plus

from ferry.contracts.layout import TENANT_SLUG
from ferry.schemas import EventDecodeError, encode

# Fixed namespace of the event IDs derived from dedup keys; changing it changes every ID.
NOTIFICATION_NAMESPACE = uuid.UUID("872148f5-ad01-4fa2-9617-df8f06442240")

EVENT_TYPE = "file.uploaded"
DEFAULT_CONTENT_TYPE = "application/octet-stream"

S3_SOURCE = "s3-notification"
MINIO_SOURCE = "minio-notification"
EVENTBRIDGE_SOURCE = "s3-eventbridge"
GCS_SOURCE = "gcs-notification"
EVENTARC_SOURCE = "gcs-eventarc"
AZURE_SOURCE = "azure-event-grid"

# The kinds of known non-events, as the bridge counts them.
TEST_EVENT = "test-event"
DELETION = "deletion"
METADATA_UPDATE = "metadata-update"
UNCOMMITTED = "uncommitted"
LIFECYCLE = "lifecycle"  # restores, transitions, replication: the object is not new
ACCESS = "access"  # MinIO's ObjectAccessed
SUBSCRIPTION = "subscription-validation"

# S3 `eventName` suffixes (after `ObjectCreated:`) that mean a new object. MinIO also
# files metadata changes under ObjectCreated (PutTagging, DeleteTagging, PutRetention,
# PutLegalHold); those are not uploads.
S3_CREATED = frozenset({"Put", "Post", "Copy", "CompleteMultipartUpload"})
S3_CREATED_METADATA = frozenset({"PutTagging", "DeleteTagging", "PutRetention", "PutLegalHold"})
# The other event families of S3's and MinIO's documentation, and what each is.
S3_FAMILIES = {
    "ObjectRemoved": DELETION,
    "LifecycleExpiration": DELETION,
    "ObjectTagging": METADATA_UPDATE,
    "ObjectAcl": METADATA_UPDATE,
    "ObjectRestore": LIFECYCLE,
    "LifecycleTransition": LIFECYCLE,
    "IntelligentTiering": LIFECYCLE,
    "Replication": LIFECYCLE,
    "ReducedRedundancyLostObject": LIFECYCLE,
    "ObjectTransition": LIFECYCLE,
    "ObjectAccessed": ACCESS,
}
# EventBridge's `detail-type`s for S3 (the S3 user guide's "EventBridge event message
# structure"), and what each is.
EVENTBRIDGE_CREATED = "Object Created"
EVENTBRIDGE_TYPES = {
    "Object Deleted": DELETION,
    "Object Tags Added": METADATA_UPDATE,
    "Object Tags Deleted": METADATA_UPDATE,
    "Object ACL Updated": METADATA_UPDATE,
    "Object Storage Class Changed": LIFECYCLE,
    "Object Access Tier Changed": LIFECYCLE,
    "Object Restore Initiated": LIFECYCLE,
    "Object Restore Completed": LIFECYCLE,
    "Object Restore Expired": LIFECYCLE,
}
# GCS Pub/Sub `eventType`s and Eventarc `type`s that are not new objects.
GCS_EVENT_TYPES = {
    "OBJECT_DELETE": DELETION,
    "OBJECT_ARCHIVE": DELETION,  # a live version became noncurrent
    "OBJECT_METADATA_UPDATE": METADATA_UPDATE,
}
EVENTARC_PREFIX = "google.cloud.storage.object.v1."
EVENTARC_FINALIZED = EVENTARC_PREFIX + "finalized"
EVENTARC_TYPES = {
    EVENTARC_PREFIX + "deleted": DELETION,
    EVENTARC_PREFIX + "archived": DELETION,
    EVENTARC_PREFIX + "metadataUpdated": METADATA_UPDATE,
}
EVENTARC_SOURCE_PREFIX = "//storage.googleapis.com/projects/_/buckets/"
# Azure `data.api` values that mean a committed blob. BlobCreated also fires for
# uncommitted states on hierarchical-namespace accounts (CreateFile, intermediate flushes).
AZURE_COMMITTED = frozenset({"PutBlob", "PutBlockList", "CopyBlob", "FlushWithClose", "SftpCommit"})
AZURE_BLOB_CREATED = "Microsoft.Storage.BlobCreated"
AZURE_TYPES = {
    "Microsoft.Storage.BlobDeleted": DELETION,
    "Microsoft.Storage.DirectoryDeleted": DELETION,
    "Microsoft.Storage.BlobTierChanged": LIFECYCLE,
    "Microsoft.EventGrid.SubscriptionValidationEvent": SUBSCRIPTION,
    "Microsoft.EventGrid.SubscriptionDeletedEvent": SUBSCRIPTION,
}
AZURE_SUBJECT_PREFIX = "/blobServices/default/containers/"
# CloudEvents attributes in binary mode: `ce_` in the Kafka binding, `ce-` in HTTP's.
CE_HEADER_PREFIXES = ("ce_", "ce-")

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MAX_KEY = 1024
_MAX_LONG = 2**63 - 1

JSONObject = dict[str, Any]


class NotificationError(ValueError):
    """A notification that cannot be turned into uploads; the message says why."""


@dataclass(frozen=True)
class Upload:
    """One uploaded object: a complete ``file.uploaded`` event and its deduplication key."""

    event: dict[str, Any]
    dedup_key: str


@dataclass(frozen=True)
class Notification:
    """What one record announces: uploads, and the kinds of the non-events beside them."""

    uploads: list[Upload] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# What one event of a notification is: an upload, or the kind of a known non-event.
_Item = Upload | str
Headers = Iterable[tuple[str, bytes]]


def event_id_for(dedup_key: str) -> str:
    """The deterministic ``event_id`` of the upload with this deduplication key."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, dedup_key))


def read(value: bytes, headers: Headers | None = None) -> Notification:
    """The uploads and known non-events a notification record holds.

    Raises ``NotificationError``, and nothing else, for anything it does not
    recognise or cannot handle.
    """
    attributes = _cloudevent_headers(headers)
    if attributes is not None:
        items = [_cloudevent({**attributes, "data": _load(value)}, "CloudEvent (binary mode)")]
    else:
        items = _items(_load(value))
    notification = Notification()
    for item in items:
        if isinstance(item, Upload):
            notification.uploads.append(item)
        else:
            notification.skipped.append(item)
    return notification


def normalise(value: bytes, headers: Headers | None = None) -> list[Upload]:
    """The uploads a notification record announces (``[]`` if it announces none)."""
    return read(value, headers).uploads


def _items(document: Any) -> list[_Item]:
    if isinstance(document, list):
        return _event_grid(document)
    if not isinstance(document, dict):
        raise NotificationError(f"expected a JSON object or array, got {_short(document)}")
    if "Records" in document:
        return _s3(document)
    if document.get("Event") == "s3:TestEvent":
        return [TEST_EVENT]
    if "detail-type" in document and document.get("source") == "aws.s3":
        return [_eventbridge(document)]
    if "message" in document or "attributes" in document:
        return [_gcs(document)]
    if "specversion" in document or "eventType" in document:
        return _event_grid([document])
    keys = ", ".join(_short(key) for key in sorted(document)[:8])
    raise NotificationError(f"unrecognised notification format (keys: {keys or 'none'})")


# --- S3 and MinIO -----------------------------------------------------------------


def _s3(document: JSONObject) -> list[_Item]:
    records = document["Records"]
    if not isinstance(records, list) or not records:
        raise NotificationError("S3 notification: Records must be a non-empty array")
    return [
        _s3_record(_object(record, f"Records[{i}]"), f"Records[{i}]")
        for i, record in enumerate(records)
    ]


def _s3_record(record: JSONObject, where: str) -> _Item:
    event_source = _text(record, "eventSource", where)
    if event_source == "aws:s3":
        source = S3_SOURCE
    elif event_source == "minio:s3":
        source = MINIO_SOURCE
    else:
        raise NotificationError(f"{where}.eventSource: unsupported source {event_source!r}")
    # AWS says `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`.
    name = _text(record, "eventName", where)
    family, _, action = name.removeprefix("s3:").partition(":")
    if family == "ObjectCreated" and action in S3_CREATED_METADATA:
        return METADATA_UPDATE
    if family in S3_FAMILIES:
        return S3_FAMILIES[family]
    if family != "ObjectCreated" or action not in S3_CREATED:
        raise NotificationError(f"{where}.eventName: {_short(name)} is not an S3 event Ferry knows")

    s3 = _object(record.get("s3"), f"{where}.s3")
    bucket = _text(_object(s3.get("bucket"), f"{where}.s3.bucket"), "name", f"{where}.s3.bucket")
    obj = _object(s3.get("object"), f"{where}.s3.object")
    # Keys are form-encoded ('+' for a space); MinIO escapes '/' as %2F as well.
    key = _unquote(_text(obj, "key", f"{where}.s3.object"), f"{where}.s3.object.key")
    version = _optional_text(obj, "versionId", f"{where}.s3.object")
    if version == "null":  # the "null version" of an unversioned or suspended bucket
        version = None
    marker = version or _optional_text(obj, "sequencer", f"{where}.s3.object")
    if not marker:
        raise NotificationError(f"{where}.s3.object: neither versionId nor sequencer is given")
    identity = record.get("userIdentity")
    principal = (
        _optional_text(identity, "principalId", f"{where}.userIdentity")
        if isinstance(identity, dict)
        else None
    )
    return _upload(
        source=source,
        provider="s3",
        bucket=bucket,
        key=key,
        size=_size(obj.get("size"), f"{where}.s3.object.size"),
        content_type=_optional_text(obj, "contentType", f"{where}.s3.object"),
        occurred_at=_time(record.get("eventTime"), f"{where}.eventTime"),
        uploaded_by=principal or source,
        dedup_key=f"s3:{bucket}/{key}:{marker}",
        where=where,
    )


# --- S3 through EventBridge ---------------------------------------------------------


def _eventbridge(document: JSONObject) -> _Item:
    where = "EventBridge event"
    detail_type = _text(document, "detail-type", where)
    if detail_type in EVENTBRIDGE_TYPES:
        return EVENTBRIDGE_TYPES[detail_type]
    if detail_type != EVENTBRIDGE_CREATED:
        raise NotificationError(
            f"{where}: detail-type {_short(detail_type)} is not an S3 event Ferry knows"
        )
    detail = _object(document.get("detail"), f"{where}.detail")
    bucket = _text(_object(detail.get("bucket"), "detail.bucket"), "name", "detail.bucket")
    obj = _object(detail.get("object"), "detail.object")
    # Encoded as in S3's own notifications ('+' for a space).
    key = _unquote(_text(obj, "key", "detail.object"), "detail.object.key")
    version = _optional_text(obj, "version-id", "detail.object")
    if version == "null":
        version = None
    # The same marker as the S3 notification of this write: either route dedupes the other.
    marker = version or _optional_text(obj, "sequencer", "detail.object")
    if not marker:
        raise NotificationError("detail.object: neither version-id nor sequencer is given")
    return _upload(
        source=EVENTBRIDGE_SOURCE,
        provider="s3",
        bucket=bucket,
        key=key,
        size=_size(obj.get("size"), "detail.object.size"),
        content_type=None,  # EventBridge, like S3's notifications, carries no type
        occurred_at=_time(document.get("time"), f"{where}.time"),
        uploaded_by=_optional_text(detail, "requester", "detail") or EVENTBRIDGE_SOURCE,
        dedup_key=f"s3:{bucket}/{key}:{marker}",
        where=where,
    )


# --- GCS Pub/Sub --------------------------------------------------------------------


def _gcs(document: JSONObject) -> _Item:
    # A push delivery (or a pull response) wraps the Pub/Sub message in "message".
    message = _object(document["message"], "message") if "message" in document else document
    attributes = _object(message.get("attributes"), "message.attributes")
    event_type = _text(attributes, "eventType", "message.attributes")
    if event_type in GCS_EVENT_TYPES:
        return GCS_EVENT_TYPES[event_type]
    if event_type != "OBJECT_FINALIZE":
        raise NotificationError(
            f"GCS notification: eventType {_short(event_type)} is not one Ferry knows"
        )
    payload_format = _optional_text(attributes, "payloadFormat", "message.attributes")
    if payload_format not in (None, "JSON_API_V1"):
        raise NotificationError(
            f"GCS notification: payloadFormat {payload_format!r} carries no object metadata "
            "(configure the notification with JSON_API_V1)"
        )
    resource = _gcs_resource(message.get("data"))
    name = _optional_text(resource, "name", "data") or _text(
        attributes, "objectId", "message.attributes"
    )
    bucket = _optional_text(resource, "bucket", "data") or _text(
        attributes, "bucketId", "message.attributes"
    )
    generation = _generation(
        resource["generation"] if "generation" in resource else attributes.get("objectGeneration")
    )
    event_time = attributes.get("eventTime") or resource.get("timeCreated")
    return _upload(
        source=GCS_SOURCE,
        provider="gcs",
        bucket=bucket,
        key=name,  # GCS object names are not URL-encoded
        size=_size(resource.get("size"), "data.size"),
        content_type=_optional_text(resource, "contentType", "data"),
        occurred_at=_time(event_time, "message.attributes.eventTime"),
        uploaded_by=GCS_SOURCE,
        dedup_key=f"gcs:{bucket}/{name}#{generation}",
        where="GCS notification",
    )


# --- GCS through Eventarc (CloudEvents) ---------------------------------------------


def _eventarc(event: JSONObject, event_type: str, where: str) -> _Item:
    if event_type in EVENTARC_TYPES:
        return EVENTARC_TYPES[event_type]
    if event_type != EVENTARC_FINALIZED:
        raise NotificationError(
            f"{where}: type {_short(event_type)} is not a GCS event Ferry knows"
        )
    resource = _cloudevent_data(event, where)
    # The object resource names it; the event's source and subject say the same.
    source = _optional_text(event, "source", where) or ""
    subject = _optional_text(event, "subject", where) or ""
    bucket = _optional_text(resource, "bucket", f"{where}.data") or (
        source.removeprefix(EVENTARC_SOURCE_PREFIX)
        if source.startswith(EVENTARC_SOURCE_PREFIX)
        else None
    )
    name = _optional_text(resource, "name", f"{where}.data") or (
        subject.removeprefix("objects/") if subject.startswith("objects/") else None
    )
    if not bucket or not name:
        raise NotificationError(f"{where}: the object's bucket and name are missing")
    generation = _generation(resource.get("generation"))
    return _upload(
        source=EVENTARC_SOURCE,
        provider="gcs",
        bucket=bucket,
        key=name,
        size=_size(resource.get("size"), f"{where}.data.size"),
        content_type=_optional_text(resource, "contentType", f"{where}.data"),
        occurred_at=_time(event.get("time") or resource.get("timeCreated"), f"{where}.time"),
        uploaded_by=EVENTARC_SOURCE,
        # As for Pub/Sub notifications: the same object delivered both ways is one upload.
        dedup_key=f"gcs:{bucket}/{name}#{generation}",
        where=where,
    )


def _cloudevent_data(event: JSONObject, where: str) -> JSONObject:
    """A CloudEvent's JSON data: `data`, or `data_base64` as the JSON format allows."""
    if "data_base64" in event and event.get("data") is None:
        encoded = event["data_base64"]
        if not isinstance(encoded, str):
            raise NotificationError(f"{where}.data_base64: expected a string")
        try:
            decoded = json.loads(base64.b64decode(encoded, validate=True).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise NotificationError(f"{where}: undecodable data_base64: {exc}") from None
        return _object(decoded, f"{where}.data_base64")
    return _object(event.get("data"), f"{where}.data")


def _cloudevent_headers(headers: Headers | None) -> JSONObject | None:
    """A binary-mode CloudEvent's attributes from its record headers, or None if it is not one."""
    attributes: JSONObject = {}
    for name, raw_value in headers or ():
        lowered = name.lower()
        for prefix in CE_HEADER_PREFIXES:
            if lowered.startswith(prefix):
                try:
                    attributes[lowered[len(prefix) :]] = bytes(raw_value).decode("utf-8")
                except UnicodeDecodeError:
                    raise NotificationError(f"header {_short(name)} is not UTF-8") from None
    return attributes if "specversion" in attributes else None


def _cloudevent(event: JSONObject, where: str) -> _Item:
    """One CloudEvent (structured, or rebuilt from binary mode), by its type."""
    event_type = _text(event, "type", where)
    if event_type.startswith(EVENTARC_PREFIX):
        return _eventarc(event, event_type, where)
    return _event_grid_event(event, where)


def _gcs_resource(data: object) -> JSONObject:
    """The object resource (JSON_API_V1) carried base64-encoded in the message data."""
    if isinstance(data, dict):  # a connector that already decoded the payload
        return data
    if not isinstance(data, str) or not data:
        raise NotificationError("GCS notification: message data is missing")
    try:
        resource = json.loads(base64.b64decode(data, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotificationError(f"GCS notification: undecodable message data: {exc}") from None
    return _object(resource, "message data")


def _generation(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return value
    raise NotificationError(f"GCS notification: generation: expected a number, got {_short(value)}")


# --- Azure Event Grid ---------------------------------------------------------------


def _event_grid(events: list[Any]) -> list[_Item]:
    if not events:
        raise NotificationError("Event Grid notification: empty array of events")
    items = []
    for i, item in enumerate(events):
        where = f"event[{i}]"
        event = _object(item, where)
        if "specversion" in event:
            items.append(_cloudevent(event, where))
        else:
            items.append(_event_grid_event(event, where))
    return items


def _event_grid_event(event: JSONObject, where: str) -> _Item:
    if "specversion" in event:  # CloudEvents 1.0 schema
        event_type, time_field = _text(event, "type", where), "time"
    elif "eventType" in event:  # Event Grid schema
        event_type, time_field = _text(event, "eventType", where), "eventTime"
    else:
        raise NotificationError(f"{where}: neither an Event Grid nor a CloudEvents event")
    if event_type in AZURE_TYPES:
        return AZURE_TYPES[event_type]
    if event_type != AZURE_BLOB_CREATED:
        raise NotificationError(f"{where}: event type {_short(event_type)} is not one Ferry knows")
    data = _object(event.get("data"), f"{where}.data")
    if _text(data, "api", f"{where}.data") not in AZURE_COMMITTED:
        return UNCOMMITTED
    container, blob = _azure_subject(_text(event, "subject", where), where)
    # The documented examples quote the eTag ("\"0x8D...\""); others do not.
    etag = _text(data, "eTag", f"{where}.data").strip('"')
    if not etag:
        raise NotificationError(f"{where}.data.eTag: empty")
    return _upload(
        source=AZURE_SOURCE,
        provider="azure",
        bucket=container,
        key=blob,
        size=_size(data.get("contentLength"), f"{where}.data.contentLength"),
        content_type=_optional_text(data, "contentType", f"{where}.data"),
        occurred_at=_time(event.get(time_field), f"{where}.{time_field}"),
        uploaded_by=_optional_text(data, "identity", f"{where}.data") or AZURE_SOURCE,
        dedup_key=f"azure:{container}/{blob}@{etag}",
        where=where,
    )


def _azure_subject(subject: str, where: str) -> tuple[str, str]:
    """Container and blob path from a literal (not percent-encoded) Event Grid subject."""
    container, sep, blob = subject.removeprefix(AZURE_SUBJECT_PREFIX).partition("/blobs/")
    if not subject.startswith(AZURE_SUBJECT_PREFIX) or not sep or not container or not blob:
        raise NotificationError(
            f"{where}.subject: {_short(subject)} is not "
            "/blobServices/default/containers/{container}/blobs/{path}"
        )
    return container, blob


# --- The event ----------------------------------------------------------------------


def _upload(
    *,
    source: str,
    provider: str,
    bucket: str,
    key: str,
    size: int,
    content_type: str | None,
    occurred_at: datetime,
    uploaded_by: str,
    dedup_key: str,
    where: str,
) -> Upload:
    tenant_id, file_id, filename = _parse_key(key, where)
    event: dict[str, Any] = {
        "event_id": event_id_for(dedup_key),
        "event_type": EVENT_TYPE,
        "occurred_at": occurred_at,
        "tenant_id": tenant_id,
        "correlation_id": None,
        "source": source,
        "file_id": file_id,
        "filename": filename,
        "declared_content_type": content_type or DEFAULT_CONTENT_TYPE,
        "size_bytes": size,
        "storage": {"provider": provider, "bucket": bucket, "key": key},
        "sha256": None,
        "uploaded_by": uploaded_by,
    }
    try:
        encode(event)
    except EventDecodeError as exc:
        raise NotificationError(f"{where}: not a valid {EVENT_TYPE} event: {exc.reason}") from None
    return Upload(event=event, dedup_key=dedup_key)


def _parse_key(key: str, where: str) -> tuple[str, str, str]:
    """``tenants/{tenant_id}/uploads/{file_id}/{filename}`` -> its three parts (CONTRACT §6)."""
    parts = key.split("/")
    if len(key) > _MAX_KEY or len(parts) != 5 or parts[0] != "tenants" or parts[2] != "uploads":
        raise NotificationError(
            f"{where}: object key {_short(key)} is not "
            "tenants/{tenant_id}/uploads/{file_id}/{filename}"
        )
    _, tenant_id, _, file_id, filename = parts
    if not TENANT_SLUG.fullmatch(tenant_id):
        raise NotificationError(f"{where}: object key names an invalid tenant id {tenant_id!r}")
    for label, part in (("file id", file_id), ("filename", filename)):
        if part in ("", ".", "..") or "\\" in part or _CONTROL.search(part):
            raise NotificationError(f"{where}: object key has an invalid {label} {_short(part)}")
    return tenant_id, file_id, filename


# --- JSON helpers -------------------------------------------------------------------


def _load(value: bytes) -> Any:
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise NotificationError(f"a notification must be bytes, not {type(value).__name__}")
    if not value.strip():
        raise NotificationError("empty notification record")
    try:
        return json.loads(value.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotificationError(f"undecodable JSON: {_describe(exc)}") from None


def _object(value: object, where: str) -> JSONObject:
    if not isinstance(value, dict):
        raise NotificationError(f"{where}: expected an object, got {_short(value)}")
    return value


def _optional_text(mapping: JSONObject, field: str, where: str) -> str | None:
    """A string field, or None if it is absent or null; "" counts as absent."""
    value = mapping.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise NotificationError(f"{where}.{field}: expected a string, got {_short(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise NotificationError(f"{where}.{field}: not valid Unicode text") from None
    return value or None


def _text(mapping: JSONObject, field: str, where: str) -> str:
    value = _optional_text(mapping, field, where)
    if value is None:
        raise NotificationError(f"{where}.{field}: missing or empty")
    return value


def _unquote(value: str, where: str) -> str:
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise NotificationError(
            f"{where}: {_short(value)} is not valid URL-encoded UTF-8"
        ) from None


def _size(value: object, where: str) -> int:
    """A byte count: a JSON number, or a decimal string as GCS sends it."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        size = int(value)
    else:
        raise NotificationError(f"{where}: expected a byte count, got {_short(value)}")
    if not 0 <= size <= _MAX_LONG:
        raise NotificationError(f"{where}: byte count {size} is out of range")
    return size


def _time(value: object, where: str) -> datetime:
    """An ISO-8601 time (naive means UTC) as a UTC datetime, cut to the milliseconds Avro keeps."""
    if not isinstance(value, str) or not value:
        raise NotificationError(f"{where}: expected an ISO-8601 time, got {_short(value)}")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise NotificationError(f"{where}: {_short(value)} is not an ISO-8601 time") from None
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def _short(value: object) -> str:
    try:
        text = repr(value)
    except Exception:  # e.g. an int too large to print
        text = "..."
    return text if len(text) <= 80 else text[:77] + "..."


def _describe(exc: BaseException) -> str:
    text = str(exc)[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
