"""The storage interface every provider implements, and key validation."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta

from ferry.contracts.layout import validate_key as validate_key
from ferry.storage.errors import BucketNotEmpty as BucketNotEmpty
from ferry.storage.errors import BucketNotFound as BucketNotFound
from ferry.storage.errors import InvalidKey as InvalidKey
from ferry.storage.errors import ObjectNotFound as ObjectNotFound

CHUNK_SIZE = 1024 * 1024
# Uploads to S3 and Azure go in parts (blocks) of this size; GCS uses it as the resumable chunk.
PART_SIZE = 8 * 1024 * 1024
MAX_PAGE_SIZE = 1000

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class ObjectInfo:
    """An object's address and size, with the provider's native checksum if it has one.

    `checksum` reads `<algorithm>:<value>` in the provider's own encoding: `etag:<hex>` (S3;
    an MD5 only for single-part uploads), `crc32c:<base64>` (GCS), `md5:<base64>` (Azure);
    the local provider has none. Compare checksums only within one provider.
    """

    bucket: str
    key: str
    size: int
    checksum: str | None = None


@dataclass(frozen=True)
class ObjectPage:
    """One page of a listing, in key order; pass `next_token` back for the next page."""

    items: list[ObjectInfo] = field(default_factory=list)
    next_token: str | None = None


def validate_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidKey(f"invalid bucket name {bucket!r}")
    return bucket


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or the start of a valid key (it may end with `/`)."""
    if prefix:
        validate_key(prefix + "x" if prefix.endswith("/") else prefix)
    return prefix


def validate_page_size(page_size: int) -> int:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ValueError(f"page_size must be 1 to {MAX_PAGE_SIZE}, not {page_size}")
    return page_size


def expiry_seconds(expires: timedelta, maximum: timedelta | None = None) -> int:
    """Whole seconds of a signed URL's lifetime, at least one."""
    seconds = int(expires.total_seconds())
    if seconds < 1:
        raise ValueError("a signed URL must live at least one second")
    if maximum is not None and expires > maximum:
        raise ValueError(f"a signed URL may live at most {maximum}")
    return seconds


async def rechunk(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """The same bytes in chunks of exactly `size`, the last one shorter; no empty chunks."""
    buffer = bytearray()
    async for chunk in chunks:
        if len(buffer) + len(chunk) < size:
            buffer += chunk
            continue
        buffer += chunk
        start = 0
        while len(buffer) - start >= size:
            yield bytes(buffer[start : start + size])
            start += size
        del buffer[:start]
    if buffer:
        yield bytes(buffer)


class StorageProvider(ABC):
    """Streaming object storage. Every operation is idempotent.

    Buckets and keys are validated before any I/O (`InvalidKey`). A write replaces the whole
    object or, if it fails, leaves the previous one; writing the same bytes again succeeds.
    Deleting a missing object or bucket succeeds; `head` of a missing object is None; `read`
    of one raises `ObjectNotFound`.

    A provider implements the protected methods (`_read`, `_write`, …), which receive
    arguments already validated here; it may narrow `_valid_bucket` and set `max_expiry`.
    """

    name: str
    # The longest a signed URL may live, if the provider limits it.
    max_expiry: timedelta | None = None

    def _valid_bucket(self, bucket: str) -> str:
        """The bucket name if this provider accepts it, else `InvalidKey`."""
        return validate_bucket(bucket)

    async def read(
        self, bucket: str, key: str, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """The object's bytes, in chunks of `chunk_size` (the last one shorter)."""
        chunks = self._read(self._valid_bucket(bucket), validate_key(key), chunk_size)
        # Closing the inner reader at once releases its connection when the caller stops early.
        async with aclosing(chunks):
            async for chunk in chunks:
                yield chunk

    async def write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        """Stream the chunks into the object, replacing it."""
        return await self._write(self._valid_bucket(bucket), validate_key(key), chunks)

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        return await self._head(self._valid_bucket(bucket), validate_key(key))

    async def copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        return await self._copy(
            self._valid_bucket(src_bucket),
            validate_key(src_key),
            self._valid_bucket(dst_bucket),
            validate_key(dst_key),
        )

    async def delete(self, bucket: str, key: str) -> None:
        await self._delete(self._valid_bucket(bucket), validate_key(key))

    async def list(
        self,
        bucket: str,
        prefix: str = "",
        page_size: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> ObjectPage:
        """One page of the objects under `prefix`; a missing bucket lists as empty."""
        return await self._list(
            self._valid_bucket(bucket),
            validate_prefix(prefix),
            validate_page_size(page_size),
            page_token,
        )

    async def signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """A URL that downloads the object with a plain GET until it expires."""
        bucket, key = self._valid_bucket(bucket), validate_key(key)
        expiry_seconds(expires, self.max_expiry)
        return await self._signed_url(bucket, key, expires)

    async def create_bucket(self, bucket: str) -> None:
        """Create the bucket; an existing one is left as it is."""
        await self._create_bucket(self._valid_bucket(bucket))

    async def delete_bucket(self, bucket: str, force: bool = False) -> None:
        """Delete the bucket; `BucketNotEmpty` if it holds objects, unless `force`."""
        bucket = self._valid_bucket(bucket)
        if not force and (await self._list(bucket, "", 1, None)).items:
            raise BucketNotEmpty(f"bucket {bucket} is not empty")
        await self._delete_bucket(bucket, force)

    @abstractmethod
    async def close(self) -> None:
        """Release the provider's clients."""

    @abstractmethod
    def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]: ...

    @abstractmethod
    async def _write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo: ...

    @abstractmethod
    async def _head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    @abstractmethod
    async def _copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo: ...

    @abstractmethod
    async def _delete(self, bucket: str, key: str) -> None: ...

    @abstractmethod
    async def _list(
        self, bucket: str, prefix: str, page_size: int, page_token: str | None
    ) -> ObjectPage: ...

    @abstractmethod
    async def _signed_url(self, bucket: str, key: str, expires: timedelta) -> str: ...

    @abstractmethod
    async def _create_bucket(self, bucket: str) -> None: ...

    @abstractmethod
    async def _delete_bucket(self, bucket: str, force: bool) -> None:
        """Delete the bucket, emptying it first if `force`; without it, it was empty."""
