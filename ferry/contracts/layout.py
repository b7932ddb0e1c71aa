"""Where a tenant's objects are (CONTRACT §6), and which of them an event may name.

Every key Ferry writes is built here from IDs. Every location that arrives from
outside (an event's `storage`, a workflow's input) is checked here before anything
reads or moves it: an upload names an object under its own tenant's upload prefix
in the ingest bucket, and a tenant's activities touch only that tenant's places.
The bridge, the workflows and the activities all apply these same functions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# A tenant ID (CONTRACT §2).
TENANT_SLUG = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# The readable reasons of a refusal: the DLQ's `ferry-error` and `file.rejected`'s
# `detail` start with one of these.
REASON_OUTSIDE_UPLOAD_PREFIX = "storage key outside the tenant's upload prefix"
REASON_OUTSIDE_TENANT = "storage location outside the tenant's places"
REASON_INVALID_KEY = "invalid key"


class InvalidKey(ValueError):
    """A bucket or key that could escape its prefix or is not well formed."""


def validate_key(key: str) -> str:
    """Refuse keys that are absolute, climb out (`..`), or hold control characters."""
    if not key or len(key) > 1024:
        raise InvalidKey("a key must be 1 to 1024 characters")
    if _CONTROL.search(key):
        raise InvalidKey("a key must not contain NUL or control characters")
    if key.startswith("/") or "\\" in key:
        raise InvalidKey(f"a key must be relative: {key!r}")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise InvalidKey(f"a key must not contain empty, '.' or '..' segments: {key!r}")
    return key


def tenant_bucket(tenant_id: str) -> str:
    """The tenant's own bucket (a container on Azure, a directory locally), on any provider."""
    return f"ferry-{tenant_id}"


def upload_prefix(tenant_id: str, file_id: str) -> str:
    """Where an upstream upload of this file lands in the ingest bucket."""
    return f"tenants/{tenant_id}/uploads/{file_id}/"


def original_key(file_id: str) -> str:
    return f"files/{file_id}/original"


def thumbnail_key(file_id: str, name: str) -> str:
    return f"files/{file_id}/thumbnails/{name}"


def quarantine_key(tenant_id: str, file_id: str) -> str:
    return f"quarantine/{tenant_id}/{file_id}"


def _segment_problem(label: str, value: str) -> str | None:
    if not value or value in (".", "..") or "/" in value or "\\" in value:
        return f"{REASON_INVALID_KEY}: {label} {value!r} is not one path segment"
    if _CONTROL.search(value):
        return f"{REASON_INVALID_KEY}: {label} {value!r} holds control characters"
    return None


def upload_key_refusal(tenant_id: str, file_id: str, key: str) -> str | None:
    """Why an upload of `file_id` may not take the object at `key`; None if it may.

    The bucket is checked apart (`Places.upload_refusal`): a workflow knows the
    key's rule by itself, the ingest bucket only from its settings.
    """
    if not TENANT_SLUG.fullmatch(tenant_id):
        return f"{REASON_INVALID_KEY}: tenant id {tenant_id!r} is not a tenant slug"
    problem = _segment_problem("file id", file_id)
    if problem:
        return problem
    try:
        validate_key(key)
    except InvalidKey as exc:
        return f"{REASON_INVALID_KEY}: {exc}"
    prefix = upload_prefix(tenant_id, file_id)
    if not key.startswith(prefix) or len(key) == len(prefix):
        return f"{REASON_OUTSIDE_UPLOAD_PREFIX}: {key!r} is not under {prefix!r}"
    return None


@dataclass(frozen=True)
class Places:
    """The buckets every tenant shares a part of; a tenant's own bucket is `tenant_bucket`."""

    ingest_bucket: str = "ferry-ingest"
    quarantine_bucket: str = "ferry-quarantine"

    def upload_refusal(self, tenant_id: str, file_id: str, bucket: str, key: str) -> str | None:
        """Why this upload may not take the object at `bucket`/`key`; None if it may.

        An upload's object lies in the ingest bucket, under
        `tenants/{tenant_id}/uploads/{file_id}/`, at a key that cannot climb out.
        """
        problem = upload_key_refusal(tenant_id, file_id, key)
        if problem:
            return problem
        if bucket != self.ingest_bucket:
            return (
                f"{REASON_OUTSIDE_UPLOAD_PREFIX}: bucket {bucket!r} is not the ingest bucket "
                f"{self.ingest_bucket!r}"
            )
        return None

    def tenant_refusal(self, tenant_id: str, bucket: str, key: str) -> str | None:
        """Why the tenant's work may not read or write `bucket`/`key`; None if it may.

        A tenant's places: its own bucket, its uploads in the ingest bucket, and
        its part of the quarantine bucket.
        """
        if not TENANT_SLUG.fullmatch(tenant_id):
            return f"{REASON_INVALID_KEY}: tenant id {tenant_id!r} is not a tenant slug"
        try:
            validate_key(key)
        except InvalidKey as exc:
            return f"{REASON_INVALID_KEY}: {exc}"
        if bucket == tenant_bucket(tenant_id):
            return None
        if bucket == self.ingest_bucket and key.startswith(f"tenants/{tenant_id}/uploads/"):
            return None
        if bucket == self.quarantine_bucket and key.startswith(f"quarantine/{tenant_id}/"):
            return None
        return f"{REASON_OUTSIDE_TENANT}: {bucket}/{key} does not belong to tenant {tenant_id!r}"


DEFAULT_PLACES = Places()
