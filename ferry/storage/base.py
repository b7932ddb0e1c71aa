"""The storage interface every provider implements, and key validation."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Protocol

CHUNK_SIZE = 1024 * 1024

_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class InvalidKey(ValueError):
    """A bucket or key that could escape its prefix or is not well formed."""


class ObjectNotFound(LookupError):
    """The object does not exist."""


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int


def validate_bucket(bucket: str) -> str:
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidKey(f"invalid bucket name {bucket!r}")
    return bucket


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


class StorageProvider(Protocol):
    """Streaming object storage. Every operation is idempotent."""

    name: str

    def read(self, bucket: str, key: str, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        """The object's bytes, a chunk at a time."""
        ...

    async def write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo: ...

    async def head(self, bucket: str, key: str) -> ObjectInfo | None: ...

    async def copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo: ...

    async def delete(self, bucket: str, key: str) -> None: ...

    async def create_bucket(self, bucket: str) -> None: ...
