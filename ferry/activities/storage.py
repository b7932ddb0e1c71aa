"""Storage activities: stream, fingerprint and move objects between buckets."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
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
    """Move `source` to `bucket`/`key` on `provider` (the source's provider when None)."""

    source: StorageRef
    bucket: str
    key: str
    provider: str | None = None


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
        target_name = request.provider or source.provider
        origin, target = self._provider(source.provider), self._provider(target_name)
        if await origin.head(source.bucket, source.key) is not None:
            await target.create_bucket(request.bucket)
            if target is origin:
                await origin.copy(source.bucket, source.key, request.bucket, request.key)
            else:
                await target.write(request.bucket, request.key, self._heartbeating(origin, source))
            await origin.delete(source.bucket, source.key)
        elif await target.head(request.bucket, request.key) is None:
            raise ApplicationError(
                f"neither {source.bucket}/{source.key} nor {request.bucket}/{request.key} exists",
                type="ObjectNotFound",
                non_retryable=True,
            )
        return StorageRef(target_name, request.bucket, request.key)

    @staticmethod
    async def _heartbeating(provider: StorageProvider, ref: StorageRef) -> AsyncIterator[bytes]:
        """The object's chunks, reporting progress to Temporal as they pass."""
        moved = 0
        async for chunk in provider.read(ref.bucket, ref.key):
            moved += len(chunk)
            activity.heartbeat(moved)
            yield chunk
