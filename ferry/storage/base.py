"""The storage interface every provider implements, and key validation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from ferry.contracts.layout import InvalidKey as InvalidKey
from ferry.contracts.layout import validate_key as validate_key

CHUNK_SIZE = 1024 * 1024
# Uploads to S3 and Azure go in parts (blocks) of this size; GCS uses it as the resumable chunk.
PART_SIZE = 8 * 1024 * 1024
MAX_PAGE_SIZE = 1000

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class ObjectNotFound(LookupError):
    """The object does not exist."""


class BucketNotFound(ObjectNotFound):
    """The bucket does not exist (cloud providers never create one implicitly)."""


class BucketNotEmpty(RuntimeError):
    """`delete_bucket` without `force` on a bucket that still holds objects."""


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


class StorageProvider(Protocol):
    """Streaming object storage. Every operation is idempotent.

    Buckets and keys are validated before any I/O (`InvalidKey`). A write replaces the whole
    object or, if it fails, leaves the previous one; writing the same bytes again succeeds.
    Deleting a missing object or bucket succeeds; `head` of a missing object is None; `read`
    of one raises `ObjectNotFound`.
    """

    name: str

    def read(self, bucket: str, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The object's bytes, in chunks of `chunk_size` (the last one shorter)."""
        ...

    async def write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        """Stream the chunks into the object, replacing it."""
        ...

    async def head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    async def copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo: ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def list(
        self,
        bucket: str,
        prefix: str = "",
        page_size: int = MAX_PAGE_SIZE,
        page_token: str | None = None,
    ) -> ObjectPage:
        """One page of the objects under `prefix`; a missing bucket lists as empty."""
        ...

    async def signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """A URL that downloads the object with a plain GET until it expires."""
        ...

    async def create_bucket(self, bucket: str) -> None:
        """Create the bucket; an existing one is left as it is."""
        ...

    async def delete_bucket(self, bucket: str, force: bool = False) -> None:
        """Delete the bucket; `BucketNotEmpty` if it holds objects, unless `force`."""
        ...

    async def close(self) -> None:
        """Release the provider's clients."""
        ...
