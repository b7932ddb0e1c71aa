"""Storage activities: stream, fingerprint and move objects between buckets."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity

from ferry.activities.heartbeat import Pulse
from ferry.contracts.errors import INVALID_KEY, OBJECT_NOT_FOUND, OUTSIDE_TENANT, UNKNOWN_PROVIDER
from ferry.contracts.layout import DEFAULT_PLACES, REASON_INVALID_KEY, Places
from ferry.contracts.storage import BucketRef, ScopedRef, StorageRef
from ferry.media.sniff import sniff_content_type
from ferry.storage import InvalidKey, ObjectNotFound, StorageProvider


def refuse_outside(
    places: Places, bucket: str, key: str, tenant_id: str | None, file_id: str | None = None
) -> None:
    """Raise a non-retryable error unless `bucket`/`key` is the tenant's (or the upload's).

    The error's type is `InvalidKey` for a key that is not well formed and
    `OutsideTenant` for one that belongs elsewhere; the upload workflow turns
    either into `file.rejected`. Without a tenant there is nothing to check against.
    """
    if tenant_id is None:
        return
    problem = (
        places.upload_refusal(tenant_id, file_id, bucket, key)
        if file_id is not None
        else places.tenant_refusal(tenant_id, bucket, key)
    )
    if problem is not None:
        kind = INVALID_KEY if problem.startswith(REASON_INVALID_KEY) else OUTSIDE_TENANT
        raise kind(problem)


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
    # The tenant whose places both ends must be (see `refuse_outside`).
    tenant_id: str | None = None


@dataclass
class SignRequest:
    """A URL that downloads `ref` with a plain GET for `expires_seconds`."""

    ref: StorageRef
    expires_seconds: int


@dataclass
class PrefixRequest:
    """The objects under `prefix` in a bucket on one provider."""

    provider: str
    bucket: str
    prefix: str


@dataclass
class ObjectCount:
    objects: int
    bytes: int


def provider_named(providers: Mapping[str, StorageProvider], name: str) -> StorageProvider:
    """The configured provider of that name; a non-retryable `UnknownProvider` otherwise."""
    try:
        return providers[name]
    except KeyError:
        raise UNKNOWN_PROVIDER(f"storage provider {name!r} is not configured") from None


class StorageActivities:
    """Activities over the configured storage providers, by provider name."""

    def __init__(
        self, providers: Mapping[str, StorageProvider], places: Places = DEFAULT_PLACES
    ) -> None:
        self._providers = dict(providers)
        self._places = places

    def _provider(self, name: str) -> StorageProvider:
        return provider_named(self._providers, name)

    @activity.defn(name="fingerprint_object")
    async def fingerprint(self, ref: ScopedRef) -> Fingerprint:
        """SHA-256, size and sniffed content type, streaming the object once."""
        refuse_outside(self._places, ref.bucket, ref.key, ref.tenant_id, ref.file_id)
        provider = self._provider(ref.provider)
        digest = hashlib.sha256()
        size = 0
        head = b""
        pulse = Pulse()
        try:
            async for chunk in provider.read(ref.bucket, ref.key):
                if len(head) < 4096:
                    head += chunk[: 4096 - len(head)]
                digest.update(chunk)
                size += len(chunk)
                pulse(size)
        except ObjectNotFound:
            raise OBJECT_NOT_FOUND(
                f"object {ref.bucket}/{ref.key} not found on {ref.provider}"
            ) from None
        return Fingerprint(digest.hexdigest(), size, sniff_content_type(head))

    @activity.defn(name="move_object")
    async def move(self, request: MoveRequest) -> StorageRef:
        """Copy an object to its destination, then delete the source.

        Safe to run twice: once the source is gone and the destination exists,
        a repeat only confirms the destination.
        """
        source = request.source
        refuse_outside(self._places, source.bucket, source.key, request.tenant_id)
        refuse_outside(self._places, request.bucket, request.key, request.tenant_id)
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
            raise OBJECT_NOT_FOUND(
                f"neither {source.bucket}/{source.key} nor {request.bucket}/{request.key} exists"
            )
        return StorageRef(target_name, request.bucket, request.key)

    @staticmethod
    async def _heartbeating(provider: StorageProvider, ref: StorageRef) -> AsyncIterator[bytes]:
        """The object's chunks, reporting progress to Temporal as they pass."""
        moved, pulse = 0, Pulse()
        async for chunk in provider.read(ref.bucket, ref.key):
            moved += len(chunk)
            pulse(moved)
            yield chunk

    @activity.defn(name="sign_url")
    async def sign_url(self, request: SignRequest) -> str:
        """A signed download URL from the object's provider (never logged: it is a secret)."""
        ref = request.ref
        provider = self._provider(ref.provider)
        if await provider.head(ref.bucket, ref.key) is None:
            raise OBJECT_NOT_FOUND(f"object {ref.bucket}/{ref.key} not found on {ref.provider}")
        return await provider.signed_url(
            ref.bucket, ref.key, timedelta(seconds=request.expires_seconds)
        )

    # Whole buckets and prefixes: a tenant's life rather than one file's.

    @activity.defn(name="create_bucket")
    async def create_bucket(self, request: BucketRef) -> BucketRef:
        """Create the bucket; one that exists already is left as it is."""
        provider = self._provider(request.provider)
        try:
            await provider.create_bucket(request.bucket)
        except InvalidKey as exc:
            raise INVALID_KEY(str(exc)) from None
        return request

    @activity.defn(name="delete_bucket")
    async def delete_bucket(self, request: BucketRef) -> ObjectCount:
        """Delete the bucket and everything in it; a missing bucket is already deleted."""
        removed = await self._count(request.provider, request.bucket, "")
        provider = self._provider(request.provider)
        try:
            await provider.delete_bucket(request.bucket, force=True)
        except InvalidKey as exc:
            raise INVALID_KEY(str(exc)) from None
        return removed

    @activity.defn(name="measure_prefix")
    async def measure(self, request: PrefixRequest) -> ObjectCount:
        """How many objects, and how many bytes, are under the prefix."""
        return await self._count(request.provider, request.bucket, request.prefix)

    @activity.defn(name="delete_prefix")
    async def delete_prefix(self, request: PrefixRequest) -> ObjectCount:
        """Delete every object under the prefix, page by page; a repeat finds none left."""
        provider = self._provider(request.provider)
        removed = ObjectCount(0, 0)
        while True:
            page = await provider.list(request.bucket, request.prefix)
            if not page.items:
                return removed
            for item in page.items:
                await provider.delete(item.bucket, item.key)
                removed.objects += 1
                removed.bytes += item.size
            activity.heartbeat(removed.objects)

    async def _count(self, provider_name: str, bucket: str, prefix: str) -> ObjectCount:
        provider = self._provider(provider_name)
        counted = ObjectCount(0, 0)
        token: str | None = None
        while True:
            page = await provider.list(bucket, prefix, page_token=token)
            counted.objects += len(page.items)
            counted.bytes += sum(item.size for item in page.items)
            activity.heartbeat(counted.objects)
            if page.next_token is None:
                return counted
            token = page.next_token
