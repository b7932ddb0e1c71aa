"""S3 and MinIO event notifications, and S3's events through Amazon EventBridge."""

from __future__ import annotations

from ferry.consumers.notifications.common import (
    ACCESS,
    DELETION,
    LIFECYCLE,
    METADATA_UPDATE,
    Item,
    JSONObject,
    NotificationError,
    byte_count,
    json_object,
    optional_text,
    short,
    text,
    unquote,
    upload,
    utc_time,
)

S3_SOURCE = "s3-notification"
MINIO_SOURCE = "minio-notification"
EVENTBRIDGE_SOURCE = "s3-eventbridge"

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


def s3(document: JSONObject) -> list[Item]:
    records = document["Records"]
    if not isinstance(records, list) or not records:
        raise NotificationError("S3 notification: Records must be a non-empty array")
    return [
        _s3_record(json_object(record, f"Records[{i}]"), f"Records[{i}]")
        for i, record in enumerate(records)
    ]


def _s3_record(record: JSONObject, where: str) -> Item:
    event_source = text(record, "eventSource", where)
    if event_source == "aws:s3":
        source = S3_SOURCE
    elif event_source == "minio:s3":
        source = MINIO_SOURCE
    else:
        raise NotificationError(f"{where}.eventSource: unsupported source {event_source!r}")
    # AWS says `ObjectCreated:Put`, MinIO `s3:ObjectCreated:Put`.
    name = text(record, "eventName", where)
    family, _, action = name.removeprefix("s3:").partition(":")
    if family == "ObjectCreated" and action in S3_CREATED_METADATA:
        return METADATA_UPDATE
    if family in S3_FAMILIES:
        return S3_FAMILIES[family]
    if family != "ObjectCreated" or action not in S3_CREATED:
        raise NotificationError(f"{where}.eventName: {short(name)} is not an S3 event Ferry knows")

    s3 = json_object(record.get("s3"), f"{where}.s3")
    bucket = text(json_object(s3.get("bucket"), f"{where}.s3.bucket"), "name", f"{where}.s3.bucket")
    obj = json_object(s3.get("object"), f"{where}.s3.object")
    # Keys are form-encoded ('+' for a space); MinIO escapes '/' as %2F as well.
    key = unquote(text(obj, "key", f"{where}.s3.object"), f"{where}.s3.object.key")
    version = optional_text(obj, "versionId", f"{where}.s3.object")
    if version == "null":  # the "null version" of an unversioned or suspended bucket
        version = None
    marker = version or optional_text(obj, "sequencer", f"{where}.s3.object")
    if not marker:
        raise NotificationError(f"{where}.s3.object: neither versionId nor sequencer is given")
    identity = record.get("userIdentity")
    principal = (
        optional_text(identity, "principalId", f"{where}.userIdentity")
        if isinstance(identity, dict)
        else None
    )
    return upload(
        source=source,
        provider="s3",
        bucket=bucket,
        key=key,
        size=byte_count(obj.get("size"), f"{where}.s3.object.size"),
        content_type=optional_text(obj, "contentType", f"{where}.s3.object"),
        occurred_at=utc_time(record.get("eventTime"), f"{where}.eventTime"),
        uploaded_by=principal or source,
        dedup_key=f"s3:{bucket}/{key}:{marker}",
        where=where,
    )


# --- S3 through EventBridge ---------------------------------------------------------


def eventbridge(document: JSONObject) -> Item:
    where = "EventBridge event"
    detail_type = text(document, "detail-type", where)
    if detail_type in EVENTBRIDGE_TYPES:
        return EVENTBRIDGE_TYPES[detail_type]
    if detail_type != EVENTBRIDGE_CREATED:
        raise NotificationError(
            f"{where}: detail-type {short(detail_type)} is not an S3 event Ferry knows"
        )
    detail = json_object(document.get("detail"), f"{where}.detail")
    bucket = text(json_object(detail.get("bucket"), "detail.bucket"), "name", "detail.bucket")
    obj = json_object(detail.get("object"), "detail.object")
    # Encoded as in S3's own notifications ('+' for a space).
    key = unquote(text(obj, "key", "detail.object"), "detail.object.key")
    version = optional_text(obj, "version-id", "detail.object")
    if version == "null":
        version = None
    # The same marker as the S3 notification of this write: either route dedupes the other.
    marker = version or optional_text(obj, "sequencer", "detail.object")
    if not marker:
        raise NotificationError("detail.object: neither version-id nor sequencer is given")
    return upload(
        source=EVENTBRIDGE_SOURCE,
        provider="s3",
        bucket=bucket,
        key=key,
        size=byte_count(obj.get("size"), "detail.object.size"),
        content_type=None,  # EventBridge, like S3's notifications, carries no type
        occurred_at=utc_time(document.get("time"), f"{where}.time"),
        uploaded_by=optional_text(detail, "requester", "detail") or EVENTBRIDGE_SOURCE,
        dedup_key=f"s3:{bucket}/{key}:{marker}",
        where=where,
    )
