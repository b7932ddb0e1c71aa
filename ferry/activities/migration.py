"""Migration activities: list a bucket in pages, copy and verify batches, delete batches.

A copy is verified by SHA-256 on both sides: the source's digest is taken
while it streams to the target, then the target is read back and hashed. An
object already in the target with the same digest is not copied again, so a
retried batch, a resumed migration or a repeated one writes nothing twice.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from temporalio import activity

from ferry.activities.storage import provider_named
from ferry.contracts.errors import CHECKSUM_MISMATCH, OBJECT_NOT_FOUND
from ferry.contracts.storage import BucketRef
from ferry.storage import ObjectNotFound, StorageProvider

# `files/{file_id}/original`: the objects that a file row points at (CONTRACT §6).
_ORIGINAL = re.compile(r"files/(?P<file_id>[^/]+)/original")


@dataclass
class ListRequest:
    bucket: BucketRef
    prefix: str = ""
    page_token: str | None = None
    page_size: int = 1000


@dataclass
class ListedObject:
    key: str
    size: int
    file_id: str | None = None  # for a file's original


@dataclass
class Listing:
    objects: list[ListedObject] = field(default_factory=list)
    next_token: str | None = None


@dataclass
class CopyBatch:
    source: BucketRef
    target: BucketRef
    objects: list[ListedObject] = field(default_factory=list)


@dataclass
class CopiedObject:
    key: str
    size: int
    sha256: str
    file_id: str | None = None
    # False when the target held a verified copy already and nothing was written.
    written: bool = True


@dataclass
class CopyResult:
    objects: list[CopiedObject] = field(default_factory=list)

    @property
    def written(self) -> int:
        return sum(1 for o in self.objects if o.written)


@dataclass
class DeleteBatch:
    bucket: BucketRef
    keys: list[str] = field(default_factory=list)


def file_id_of(key: str) -> str | None:
    match = _ORIGINAL.fullmatch(key)
    return match["file_id"] if match else None


class MigrationActivities:
    def __init__(self, providers: Mapping[str, StorageProvider]) -> None:
        self._providers = dict(providers)

    def _provider(self, name: str) -> StorageProvider:
        return provider_named(self._providers, name)

    @activity.defn(name="list_objects")
    async def list_objects(self, request: ListRequest) -> Listing:
        """One page of the bucket's objects under the prefix, in key order."""
        provider = self._provider(request.bucket.provider)
        page = await provider.list(
            request.bucket.bucket, request.prefix, request.page_size, request.page_token
        )
        return Listing(
            [ListedObject(o.key, o.size, file_id_of(o.key)) for o in page.items], page.next_token
        )

    @activity.defn(name="copy_objects")
    async def copy_objects(self, batch: CopyBatch) -> CopyResult:
        """Copy each object to the target and verify it; heartbeats after each one.

        A retried attempt starts after the objects its predecessor reported done.
        """
        source = self._provider(batch.source.provider)
        target = self._provider(batch.target.provider)
        await target.create_bucket(batch.target.bucket)
        done = _previous_progress()
        result = CopyResult(list(done))
        finished = {o.key for o in done}
        for listed in batch.objects:
            if listed.key in finished:
                continue
            result.objects.append(await self._copy_one(source, target, batch, listed, result))
            activity.heartbeat(result.objects)
        return result

    async def _copy_one(
        self,
        source: StorageProvider,
        target: StorageProvider,
        batch: CopyBatch,
        listed: ListedObject,
        done: CopyResult,
    ) -> CopiedObject:
        src, dst = batch.source.bucket, batch.target.bucket
        existing = await target.head(dst, listed.key)
        if existing is not None and existing.size == listed.size:
            source_digest = await _digest(source, src, listed.key)
            if await _digest(target, dst, listed.key) == source_digest:
                return CopiedObject(listed.key, listed.size, source_digest, listed.file_id, False)
        digest = hashlib.sha256()

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in source.read(src, listed.key):
                digest.update(chunk)
                activity.heartbeat(done.objects)  # alive while a large object streams
                yield chunk

        try:
            await target.write(dst, listed.key, hashed())
        except ObjectNotFound:
            raise OBJECT_NOT_FOUND(f"{src}/{listed.key} vanished from the source") from None
        copied = await _digest(target, dst, listed.key)
        if copied != digest.hexdigest():
            raise CHECKSUM_MISMATCH(f"the copy of {listed.key} does not match its source (SHA-256)")
        return CopiedObject(listed.key, listed.size, copied, listed.file_id)

    @activity.defn(name="delete_objects")
    async def delete_objects(self, batch: DeleteBatch) -> int:
        """Delete the keys (a missing one is already deleted); how many were asked for."""
        provider = self._provider(batch.bucket.provider)
        for index, key in enumerate(batch.keys):
            await provider.delete(batch.bucket.bucket, key)
            activity.heartbeat(index)
        return len(batch.keys)


def _previous_progress() -> list[CopiedObject]:
    details = activity.info().heartbeat_details
    if not details:
        return []
    return [CopiedObject(**o) if isinstance(o, dict) else o for o in details[0]]


async def _digest(provider: StorageProvider, bucket: str, key: str) -> str:
    digest = hashlib.sha256()
    async for chunk in provider.read(bucket, key):
        digest.update(chunk)
    return digest.hexdigest()
