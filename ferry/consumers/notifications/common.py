"""What every provider's notification reader shares: the upload it builds, its errors, JSON."""

from __future__ import annotations

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

# The kinds of known non-events, as the bridge counts them.
TEST_EVENT = "test-event"
DELETION = "deletion"
METADATA_UPDATE = "metadata-update"
UNCOMMITTED = "uncommitted"
LIFECYCLE = "lifecycle"  # restores, transitions, replication: the object is not new
ACCESS = "access"  # MinIO's ObjectAccessed
SUBSCRIPTION = "subscription-validation"

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
Item = Upload | str
Headers = Iterable[tuple[str, bytes]]


def event_id_for(dedup_key: str) -> str:
    """The deterministic ``event_id`` of the upload with this deduplication key."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, dedup_key))


# --- The event ----------------------------------------------------------------------


def upload(
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
    tenant_id, file_id, filename = parse_key(key, where)
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


def parse_key(key: str, where: str) -> tuple[str, str, str]:
    """``tenants/{tenant_id}/uploads/{file_id}/{filename}`` -> its three parts (CONTRACT §6)."""
    parts = key.split("/")
    if len(key) > _MAX_KEY or len(parts) != 5 or parts[0] != "tenants" or parts[2] != "uploads":
        raise NotificationError(
            f"{where}: object key {short(key)} is not "
            "tenants/{tenant_id}/uploads/{file_id}/{filename}"
        )
    _, tenant_id, _, file_id, filename = parts
    if not TENANT_SLUG.fullmatch(tenant_id):
        raise NotificationError(f"{where}: object key names an invalid tenant id {tenant_id!r}")
    for label, part in (("file id", file_id), ("filename", filename)):
        if part in ("", ".", "..") or "\\" in part or _CONTROL.search(part):
            raise NotificationError(f"{where}: object key has an invalid {label} {short(part)}")
    return tenant_id, file_id, filename


# --- JSON helpers -------------------------------------------------------------------


def load_json(value: bytes) -> Any:
    if isinstance(value, bytearray | memoryview):
        value = bytes(value)
    if not isinstance(value, bytes):
        raise NotificationError(f"a notification must be bytes, not {type(value).__name__}")
    if not value.strip():
        raise NotificationError("empty notification record")
    try:
        return json.loads(value.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise NotificationError(f"undecodable JSON: {describe(exc)}") from None


def json_object(value: object, where: str) -> JSONObject:
    if not isinstance(value, dict):
        raise NotificationError(f"{where}: expected an object, got {short(value)}")
    return value


def optional_text(mapping: JSONObject, field: str, where: str) -> str | None:
    """A string field, or None if it is absent or null; "" counts as absent."""
    value = mapping.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise NotificationError(f"{where}.{field}: expected a string, got {short(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise NotificationError(f"{where}.{field}: not valid Unicode text") from None
    return value or None


def text(mapping: JSONObject, field: str, where: str) -> str:
    value = optional_text(mapping, field, where)
    if value is None:
        raise NotificationError(f"{where}.{field}: missing or empty")
    return value


def unquote(value: str, where: str) -> str:
    try:
        return unquote_plus(value, errors="strict")
    except UnicodeDecodeError:
        raise NotificationError(f"{where}: {short(value)} is not valid URL-encoded UTF-8") from None


def byte_count(value: object, where: str) -> int:
    """A byte count: a JSON number, or a decimal string as GCS sends it."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        size = int(value)
    else:
        raise NotificationError(f"{where}: expected a byte count, got {short(value)}")
    if not 0 <= size <= _MAX_LONG:
        raise NotificationError(f"{where}: byte count {size} is out of range")
    return size


def utc_time(value: object, where: str) -> datetime:
    """An ISO-8601 time (naive means UTC) as a UTC datetime, cut to the milliseconds Avro keeps."""
    if not isinstance(value, str) or not value:
        raise NotificationError(f"{where}: expected an ISO-8601 time, got {short(value)}")
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise NotificationError(f"{where}: {short(value)} is not an ISO-8601 time") from None
    return parsed.replace(microsecond=parsed.microsecond // 1000 * 1000)


def short(value: object) -> str:
    try:
        shown = repr(value)
    except Exception:  # e.g. an int too large to print
        shown = "..."
    return shown if len(shown) <= 80 else shown[:77] + "..."


def describe(exc: BaseException) -> str:
    message = str(exc)[:200]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__
