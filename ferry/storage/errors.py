"""What a storage provider raises, whichever backend is behind it."""

from __future__ import annotations

from ferry.contracts.layout import InvalidKey as InvalidKey


class ObjectNotFound(LookupError):
    """The object does not exist."""


class BucketNotFound(ObjectNotFound):
    """The bucket does not exist (cloud providers never create one implicitly)."""


class BucketNotEmpty(RuntimeError):
    """`delete_bucket` without `force` on a bucket that still holds objects."""
