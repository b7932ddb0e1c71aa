"""GCS notifications: Pub/Sub (`OBJECT_FINALIZE`) and Eventarc's CloudEvents."""

from __future__ import annotations

import base64
import binascii
import json

from ferry.consumers.notifications.common import (
    DELETION,
    METADATA_UPDATE,
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

GCS_SOURCE = "gcs-notification"
EVENTARC_SOURCE = "gcs-eventarc"

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


def gcs(document: JSONObject) -> Item:
    # A push delivery (or a pull response) wraps the Pub/Sub message in "message".
    message = json_object(document["message"], "message") if "message" in document else document
    attributes = json_object(message.get("attributes"), "message.attributes")
    event_type = text(attributes, "eventType", "message.attributes")
    if event_type in GCS_EVENT_TYPES:
        return GCS_EVENT_TYPES[event_type]
    if event_type != "OBJECT_FINALIZE":
        raise NotificationError(
            f"GCS notification: eventType {short(event_type)} is not one Ferry knows"
        )
    payload_format = optional_text(attributes, "payloadFormat", "message.attributes")
    if payload_format not in (None, "JSON_API_V1"):
        raise NotificationError(
            f"GCS notification: payloadFormat {payload_format!r} carries no object metadata "
            "(configure the notification with JSON_API_V1)"
        )
    resource = gcs_resource(message.get("data"))
    name = optional_text(resource, "name", "data") or text(
        attributes, "objectId", "message.attributes"
    )
    bucket = optional_text(resource, "bucket", "data") or text(
        attributes, "bucketId", "message.attributes"
    )
    generation = object_generation(
        resource["generation"] if "generation" in resource else attributes.get("objectGeneration")
    )
    event_time = attributes.get("eventTime") or resource.get("timeCreated")
    return upload(
        source=GCS_SOURCE,
        provider="gcs",
        bucket=bucket,
        key=name,  # GCS object names are not URL-encoded
        size=byte_count(resource.get("size"), "data.size"),
        content_type=optional_text(resource, "contentType", "data"),
        occurred_at=utc_time(event_time, "message.attributes.eventTime"),
        uploaded_by=GCS_SOURCE,
        dedup_key=f"gcs:{bucket}/{name}#{generation}",
        where="GCS notification",
    )


# --- GCS through Eventarc (CloudEvents) ---------------------------------------------


def eventarc(event: JSONObject, event_type: str, where: str) -> Item:
    if event_type in EVENTARC_TYPES:
        return EVENTARC_TYPES[event_type]
    if event_type != EVENTARC_FINALIZED:
        raise NotificationError(f"{where}: type {short(event_type)} is not a GCS event Ferry knows")
    resource = _cloudevent_data(event, where)
    # The object resource names it; the event's source and subject say the same.
    source = optional_text(event, "source", where) or ""
    subject = optional_text(event, "subject", where) or ""
    bucket = optional_text(resource, "bucket", f"{where}.data") or (
        source.removeprefix(EVENTARC_SOURCE_PREFIX)
        if source.startswith(EVENTARC_SOURCE_PREFIX)
        else None
    )
    name = optional_text(resource, "name", f"{where}.data") or (
        subject.removeprefix("objects/") if subject.startswith("objects/") else None
    )
    if not bucket or not name:
        raise NotificationError(f"{where}: the object's bucket and name are missing")
    generation = object_generation(resource.get("generation"))
    return upload(
        source=EVENTARC_SOURCE,
        provider="gcs",
        bucket=bucket,
        key=name,
        size=byte_count(resource.get("size"), f"{where}.data.size"),
        content_type=optional_text(resource, "contentType", f"{where}.data"),
        occurred_at=utc_time(event.get("time") or resource.get("timeCreated"), f"{where}.time"),
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
        return json_object(decoded, f"{where}.data_base64")
    return json_object(event.get("data"), f"{where}.data")


def gcs_resource(data: object) -> JSONObject:
    """The object resource (JSON_API_V1) carried base64-encoded in the message data."""
    if isinstance(data, dict):  # a connector that already decoded the payload
        return data
    if not isinstance(data, str) or not data:
        raise NotificationError("GCS notification: message data is missing")
    try:
        resource = json.loads(base64.b64decode(data, validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotificationError(f"GCS notification: undecodable message data: {exc}") from None
    return json_object(resource, "message data")


def object_generation(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        return value
    raise NotificationError(f"GCS notification: generation: expected a number, got {short(value)}")
