"""Storage activities: stream, fingerprint and move objects between buckets."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from temporalio import activity
from temporalio.exceptions import ApplicationError

from ferry.activities.sniff import sniff_content_type
from ferry.storage import ObjectNotFound, StorageProvider


@dataclass
class StorageRef:
    """Where an object is: provider (local/s3/gcs/azure), bucket and key."""

    provider: str
    bucket: str
    key: str


@dataclass
class Fingerprint:
    """What the bytes of an object say about it."""

    sha256: str
    size_bytes: int
    content_type: str


@dataclass
class MoveRequest:
    source: StorageRef
    bucket: str
    key: str


class StorageActivities:
    """Activities over the configured storage providers, by provider name."""

    def __init__(self, providers: Mapping[str, StorageProvider]) -> None:
        self._providers = dict(providers)

    def _provider(self, name: str) -> StorageProvider:
        try:
            return self._providers[name]
        except KeyError:
            raise ApplicationError(
                f"storage provider {name!r} is not configured",
                type="UnknownProvider",
                non_retryable=True,
            ) from None

    @activity.defn(name="fingerprint_object")
    async def fingerprint(self, ref: StorageRef) -> Fingerprint:
        """SHA-256, size and sniffed content type, streaming the object once."""
        provider = self._provider(ref.provider)
        digest = hashlib.sha256()
        size = 0
        head = b""
        try:
            async for chunk in provider.read(ref.bucket, ref.key):
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                digest.update(chunk)
                size += len(chunk)
                activity.heartbeat(size)
        except ObjectNotFound:
            raise ApplicationError(
                f"object {ref.bucket}/{ref.key} not found on {ref.provider}",
                type="ObjectNotFound",
                non_retryable=True,
            ) from None
        return Fingerprint(digest.hexdigest(), size, sniff_content_type(head))

    @activity.defn(name="move_object")
    async def move(self, request: MoveRequest) -> StorageRef:
        """Copy an object to its destination, then delete the source.

        Safe to run twice: once the source is gone and the destination exists,
        a repeat only confirms the destination.
        """
        source = request.source
        provider = self._provider(source.provider)
        if await provider.head(source.bucket, source.key) is not None:
            await provider.create_bucket(request.bucket)
            await provider.copy(source.bucket, source.key, request.bucket, request.key)
            await provider.delete(source.bucket, source.key)
        elif await provider.head(request.bucket, request.key) is None:
            raise ApplicationError(
                f"neither {source.bucket}/{source.key} nor {request.bucket}/{request.key} exists",
                type="ObjectNotFound",
                non_retryable=True,
            )
        return StorageRef(source.provider, request.bucket, request.key)
