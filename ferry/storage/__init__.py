"""Object storage behind one small async interface.

The cloud providers' modules (and their SDKs) load only when a provider is made:
the interface and the local provider are all that importing this package costs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from ferry.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectPage,
    StorageProvider,
    validate_bucket,
    validate_key,
)
from ferry.storage.errors import BucketNotEmpty, BucketNotFound, InvalidKey, ObjectNotFound
from ferry.storage.local import LocalStorage


def providers_from_env(
    local_root: Path, environ: Mapping[str, str] | None = None
) -> dict[str, StorageProvider]:
    """Local storage, and every cloud provider whose usual variables are set.

    Reads `os.environ` by default: call `ferry.config.get_settings()` first so the stack's
    env file is loaded. Close the providers (`await provider.close()`) when done.
    """
    from ferry.storage.azure import AzureStorage
    from ferry.storage.gcs import GCSStorage
    from ferry.storage.s3 import S3Storage

    env = os.environ if environ is None else environ
    providers: dict[str, StorageProvider] = {"local": LocalStorage(local_root)}
    if S3Storage.configured(env):
        providers["s3"] = S3Storage.from_env(env)
    if GCSStorage.configured(env):
        providers["gcs"] = GCSStorage.from_env(env)
    if AzureStorage.configured(env):
        providers["azure"] = AzureStorage.from_env(env)
    return providers


__all__ = [
    "CHUNK_SIZE",
    "BucketNotEmpty",
    "BucketNotFound",
    "InvalidKey",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectPage",
    "StorageProvider",
    "providers_from_env",
    "validate_bucket",
    "validate_key",
]
