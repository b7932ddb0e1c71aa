"""References to stored objects and buckets, and thumbnails: one type per concept.

These cross every room (events, workflows, activities, the database) and keep
their field names on the wire: they are what Temporal payloads and Avro records
carry, so a field is only ever added, with a default.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class StorageRef:
    """Where an object is: provider (local/s3/gcs/azure), bucket and key."""

    provider: str
    bucket: str
    key: str


@dataclass
class BucketRef:
    """A bucket (a container on Azure, a directory locally) on one provider."""

    provider: str
    bucket: str


@dataclass
class ScopedRef:
    """An object read on behalf of a tenant: a `StorageRef`, and whose it must be.

    With `file_id`, the object must be that upload's (in the ingest bucket, under
    `tenants/{tenant_id}/uploads/{file_id}/`); with only `tenant_id`, in one of the
    tenant's places (`layout.Places`). A `StorageRef` decodes as one with neither:
    histories from before the check sent those.
    """

    provider: str
    bucket: str
    key: str
    tenant_id: str | None = None
    file_id: str | None = None

    @classmethod
    def of(cls, ref: StorageRef, tenant_id: str, file_id: str | None = None) -> ScopedRef:
        return cls(ref.provider, ref.bucket, ref.key, tenant_id, file_id)


@dataclass
class Thumbnail:
    """A rendition of an image, stored at `key` beside the original."""

    name: str
    key: str
    width: int
    height: int
    content_type: str
    size_bytes: int | None = None
