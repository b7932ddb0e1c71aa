"""Object storage behind one small async interface."""

from ferry.storage.base import (
    CHUNK_SIZE,
    InvalidKey,
    ObjectInfo,
    ObjectNotFound,
    StorageProvider,
    validate_key,
)
from ferry.storage.local import LocalStorage

__all__ = [
    "CHUNK_SIZE",
    "InvalidKey",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "StorageProvider",
    "validate_key",
]
