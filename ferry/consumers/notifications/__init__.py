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

from typing import Any

from ferry.consumers.notifications.aws import eventbridge, s3
from ferry.consumers.notifications.azure import event_grid_event
from ferry.consumers.notifications.common import (
    NOTIFICATION_NAMESPACE,
    TEST_EVENT,
    Headers,
    Item,
    JSONObject,
    Notification,
    NotificationError,
    Upload,
    event_id_for,
    json_object,
    load_json,
    short,
    text,
)
from ferry.consumers.notifications.gcs import EVENTARC_PREFIX, eventarc, gcs

__all__ = [
    "NOTIFICATION_NAMESPACE",
    "Notification",
    "NotificationError",
    "Upload",
    "event_id_for",
    "normalise",
    "read",
]

# CloudEvents attributes in binary mode: `ce_` in the Kafka binding, `ce-` in HTTP's.
CE_HEADER_PREFIXES = ("ce_", "ce-")


def read(value: bytes, headers: Headers | None = None) -> Notification:
    """The uploads and known non-events a notification record holds.

    Raises ``NotificationError``, and nothing else, for anything it does not
    recognise or cannot handle.
    """
    attributes = _cloudevent_headers(headers)
    if attributes is not None:
        items = [_cloudevent({**attributes, "data": load_json(value)}, "CloudEvent (binary mode)")]
    else:
        items = _items(load_json(value))
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


def _items(document: Any) -> list[Item]:
    if isinstance(document, list):
        return _event_grid(document)
    if not isinstance(document, dict):
        raise NotificationError(f"expected a JSON object or array, got {short(document)}")
    if "Records" in document:
        return s3(document)
    if document.get("Event") == "s3:TestEvent":
        return [TEST_EVENT]
    if "detail-type" in document and document.get("source") == "aws.s3":
        return [eventbridge(document)]
    if "message" in document or "attributes" in document:
        return [gcs(document)]
    if "specversion" in document or "eventType" in document:
        return _event_grid([document])
    keys = ", ".join(short(key) for key in sorted(document)[:8])
    raise NotificationError(f"unrecognised notification format (keys: {keys or 'none'})")


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
                    raise NotificationError(f"header {short(name)} is not UTF-8") from None
    return attributes if "specversion" in attributes else None


def _cloudevent(event: JSONObject, where: str) -> Item:
    """One CloudEvent (structured, or rebuilt from binary mode), by its type."""
    event_type = text(event, "type", where)
    if event_type.startswith(EVENTARC_PREFIX):
        return eventarc(event, event_type, where)
    return event_grid_event(event, where)


def _event_grid(events: list[Any]) -> list[Item]:
    if not events:
        raise NotificationError("Event Grid notification: empty array of events")
    items = []
    for i, item in enumerate(events):
        where = f"event[{i}]"
        event = json_object(item, where)
        if "specversion" in event:
            items.append(_cloudevent(event, where))
        else:
            items.append(event_grid_event(event, where))
    return items
