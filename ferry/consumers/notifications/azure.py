"""Azure Event Grid: `Microsoft.Storage.BlobCreated`, in the Event Grid or CloudEvents schema."""

from __future__ import annotations

from ferry.consumers.notifications.common import (
    DELETION,
    LIFECYCLE,
    SUBSCRIPTION,
    UNCOMMITTED,
    Item,
    JSONObject,
    NotificationError,
    byte_count,
    json_object,
    optional_text,
    short,
    text,
    upload,
    utc_time,
)

AZURE_SOURCE = "azure-event-grid"

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


def event_grid_event(event: JSONObject, where: str) -> Item:
    if "specversion" in event:  # CloudEvents 1.0 schema
        event_type, time_field = text(event, "type", where), "time"
    elif "eventType" in event:  # Event Grid schema
        event_type, time_field = text(event, "eventType", where), "eventTime"
    else:
        raise NotificationError(f"{where}: neither an Event Grid nor a CloudEvents event")
    if event_type in AZURE_TYPES:
        return AZURE_TYPES[event_type]
    if event_type != AZURE_BLOB_CREATED:
        raise NotificationError(f"{where}: event type {short(event_type)} is not one Ferry knows")
    data = json_object(event.get("data"), f"{where}.data")
    if text(data, "api", f"{where}.data") not in AZURE_COMMITTED:
        return UNCOMMITTED
    container, blob = _azure_subject(text(event, "subject", where), where)
    # The documented examples quote the eTag ("\"0x8D...\""); others do not.
    etag = text(data, "eTag", f"{where}.data").strip('"')
    if not etag:
        raise NotificationError(f"{where}.data.eTag: empty")
    return upload(
        source=AZURE_SOURCE,
        provider="azure",
        bucket=container,
        key=blob,
        size=byte_count(data.get("contentLength"), f"{where}.data.contentLength"),
        content_type=optional_text(data, "contentType", f"{where}.data"),
        occurred_at=utc_time(event.get(time_field), f"{where}.{time_field}"),
        uploaded_by=optional_text(data, "identity", f"{where}.data") or AZURE_SOURCE,
        dedup_key=f"azure:{container}/{blob}@{etag}",
        where=where,
    )


def _azure_subject(subject: str, where: str) -> tuple[str, str]:
    """Container and blob path from a literal (not percent-encoded) Event Grid subject."""
    container, sep, blob = subject.removeprefix(AZURE_SUBJECT_PREFIX).partition("/blobs/")
    if not subject.startswith(AZURE_SUBJECT_PREFIX) or not sep or not container or not blob:
        raise NotificationError(
            f"{where}.subject: {short(subject)} is not "
            "/blobServices/default/containers/{container}/blobs/{path}"
        )
    return container, blob
