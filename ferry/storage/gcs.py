"""Google Cloud Storage through google-cloud-storage, its calls run in threads."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import google.auth
import google_crc32c
from google.api_core.exceptions import Conflict, NotFound
from google.auth.credentials import AnonymousCredentials, Credentials, Signing
from google.auth.transport.requests import Request
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse

from ferry.storage.base import PART_SIZE, ObjectInfo, ObjectPage, StorageProvider, rechunk
from ferry.storage.errors import BucketNotEmpty, BucketNotFound, ObjectNotFound

# At most this many requests go in one JSON-API batch.
_BATCH = 100
_SCOPES = ["https://www.googleapis.com/auth/devstorage.read_write"]
_ENV_MARKERS = ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")


def _checksum(crc32c: str | None) -> str | None:
    return f"crc32c:{crc32c}" if crc32c else None


def _info(bucket: str, blob: Any) -> ObjectInfo:
    return ObjectInfo(bucket, blob.name, int(blob.size or 0), _checksum(blob.crc32c))


def _not_found(exc: BaseException) -> bool:
    if isinstance(exc, NotFound):
        return True
    # Resumable uploads raise the media layer's error, not google.api_core's.
    response = getattr(exc, "response", None)
    return isinstance(exc, InvalidResponse) and getattr(response, "status_code", 0) == 404


class GCSStorage(StorageProvider):
    """GCS buckets; writes are resumable uploads in 8 MiB chunks, reads are ranged downloads.

    With `STORAGE_EMULATOR_HOST` set it talks to that emulator without credentials, and
    `signed_url` points at the emulator's download endpoint (nothing is signed).
    """

    name = "gcs"
    max_expiry = timedelta(days=7)  # V4 signed URLs live at most seven days

    def __init__(
        self,
        client: storage.Client,
        *,
        credentials: Credentials | None = None,
        emulator_host: str | None = None,
    ) -> None:
        self._client = client
        self._credentials = credentials
        self._emulator_host = emulator_host.rstrip("/") if emulator_host else None

    @staticmethod
    def configured(environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return any(env.get(name) for name in _ENV_MARKERS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GCSStorage:
        """From `STORAGE_EMULATOR_HOST`, or Application Default Credentials and the project.

        ADC reads `GOOGLE_APPLICATION_CREDENTIALS` (a service-account key file can also sign
        URLs) or the metadata server; the project comes from `GOOGLE_CLOUD_PROJECT`.
        """
        env = os.environ if environ is None else environ
        project = env.get("GOOGLE_CLOUD_PROJECT") or env.get("GCLOUD_PROJECT")
        host = env.get("STORAGE_EMULATOR_HOST")
        if host:
            host = host if "://" in host else f"http://{host}"
            client = storage.Client(
                project=project or "ferry-local",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": host},
            )
            return cls(client, emulator_host=host)
        key_file = env.get("GOOGLE_APPLICATION_CREDENTIALS")
        if key_file:
            credentials, found = google.auth.load_credentials_from_file(  # type: ignore[no-untyped-call]
                key_file, _SCOPES
            )
        else:
            credentials, found = google.auth.default(_SCOPES)
        client = storage.Client(project=project or found, credentials=credentials)
        return cls(client, credentials=credentials)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    def _blob(self, bucket: str, key: str) -> Any:
        return self._client.bucket(bucket).blob(key, chunk_size=PART_SIZE)

    async def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        blob = await asyncio.to_thread(self._client.bucket(bucket).get_blob, key)
        if blob is None:
            raise ObjectNotFound(f"{bucket}/{key}")
        async for chunk in rechunk(self._ranges(blob), chunk_size):
            yield chunk

    async def _ranges(self, blob: Any) -> AsyncIterator[bytes]:
        """The blob in ranged downloads of one part each, all from the generation first seen."""
        position, size = 0, int(blob.size or 0)
        while position < size:
            end = min(position + PART_SIZE, size) - 1  # inclusive
            try:
                data: bytes = await asyncio.to_thread(
                    blob.download_as_bytes,
                    start=position,
                    end=end,
                    checksum=None,
                    if_generation_match=blob.generation,
                )
            except NotFound as exc:
                raise ObjectNotFound(f"{blob.bucket.name}/{blob.name}") from exc
            if not data:
                raise ObjectNotFound(f"{blob.bucket.name}/{blob.name} ended early")
            position += len(data)
            yield data

    async def _write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        writer = self._blob(bucket, key).open("wb", chunk_size=PART_SIZE, ignore_flush=True)
        crc = google_crc32c.Checksum()  # type: ignore[no-untyped-call]
        size = 0
        try:
            # Each full part makes the writer send one chunk of the resumable upload.
            async for part in rechunk(chunks, PART_SIZE):
                await asyncio.to_thread(writer.write, part)
                crc.update(part)  # type: ignore[no-untyped-call]
                size += len(part)
            await asyncio.to_thread(writer.close)
        except BaseException as exc:
            # Cancel the upload session. Never close() here: that would finalize a partial
            # object (and so would garbage collection of an open writer).
            with contextlib.suppress(Exception):
                await asyncio.to_thread(writer.terminate)
            if _not_found(exc):
                raise BucketNotFound(bucket) from exc
            raise
        digest = crc.digest()  # type: ignore[no-untyped-call]
        checksum = _checksum(base64.b64encode(digest).decode())
        return ObjectInfo(bucket, key, size, checksum)

    async def _head(self, bucket: str, key: str) -> ObjectInfo | None:
        blob = await asyncio.to_thread(self._client.bucket(bucket).get_blob, key)
        return None if blob is None else _info(bucket, blob)

    async def _copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        source, target = self._blob(src_bucket, src_key), self._blob(dst_bucket, dst_key)

        def rewrite() -> None:
            # Rewrite (not copyTo) so large or cross-location copies finish in several calls.
            token, _, _ = target.rewrite(source)
            while token is not None:
                token, _, _ = target.rewrite(source, token=token)

        try:
            await asyncio.to_thread(rewrite)
        except NotFound as exc:
            if await self._head(src_bucket, src_key) is None:
                raise ObjectNotFound(f"{src_bucket}/{src_key}") from exc
            raise BucketNotFound(dst_bucket) from exc
        return _info(dst_bucket, target)

    async def _delete(self, bucket: str, key: str) -> None:
        with contextlib.suppress(NotFound):
            await asyncio.to_thread(self._client.bucket(bucket).blob(key).delete)

    async def _list(
        self, bucket: str, prefix: str, page_size: int, page_token: str | None
    ) -> ObjectPage:
        """Keyset paging: the token is the page's last key, sent back as `startOffset`."""

        def fetch() -> list[Any]:
            blobs = self._client.list_blobs(
                bucket, prefix=prefix or None, start_offset=page_token, page_size=page_size + 1
            )
            found: list[Any] = []
            for page in blobs.pages:
                found.extend(page)
                if len(found) > page_size:
                    break
            return found

        try:
            found = await asyncio.to_thread(fetch)
        except NotFound:
            return ObjectPage([], None)
        # GCS returns names in order from startOffset (inclusive) and at most maxResults of
        # them; gcp-storage-emulator ignores both and returns every name unordered, so sort
        # and filter here (no-ops against GCS).
        found.sort(key=lambda blob: str(blob.name))
        if page_token is not None:
            found = [blob for blob in found if blob.name > page_token]
        items = [_info(bucket, blob) for blob in found[:page_size]]
        return ObjectPage(items, items[-1].key if len(found) > page_size else None)

    async def _signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """A V4 signed GET URL; against the emulator, its unsigned download URL.

        Signing needs a credential with a private key (a service-account key file) or, for
        Compute Engine and workload-identity credentials, the IAM signBlob permission.
        """
        if self._emulator_host:
            # The emulator checks no signatures; its download endpoint serves the bytes.
            return (
                f"{self._emulator_host}/download/storage/v1/b/{bucket}/o/"
                f"{quote(key, safe='')}?alt=media"
            )
        return await asyncio.to_thread(self._sign, bucket, key, expires)

    def _sign(self, bucket: str, key: str, expires: timedelta) -> str:
        blob = self._client.bucket(bucket).blob(key)
        credentials = self._credentials
        if credentials is None:
            raise RuntimeError("signing a GCS URL needs credentials")
        extra: dict[str, Any] = {}
        if not isinstance(credentials, Signing):
            # Compute Engine and workload-identity credentials hold no key: IAM signBlob signs.
            if not credentials.valid:
                credentials.refresh(Request())  # type: ignore[no-untyped-call]
            extra = {
                "service_account_email": getattr(credentials, "service_account_email", None),
                "access_token": credentials.token,
            }
        return str(
            blob.generate_signed_url(version="v4", expiration=expires, method="GET", **extra)
        )

    async def _create_bucket(self, bucket: str) -> None:
        try:
            await asyncio.to_thread(self._client.create_bucket, bucket)
        except Conflict:
            # 409 also means "taken by someone else": only a bucket we can see is ours.
            if await asyncio.to_thread(self._client.lookup_bucket, bucket) is None:
                raise

    async def _delete_bucket(self, bucket: str, force: bool) -> None:
        if force:
            while (page := await self.list(bucket)).items:
                await asyncio.to_thread(self._delete_many, bucket, [i.key for i in page.items])
        try:
            await asyncio.to_thread(self._client.bucket(bucket).delete)
        except NotFound:
            pass
        except Conflict as exc:
            raise BucketNotEmpty(f"bucket {bucket} is not empty") from exc

    def _delete_many(self, bucket: str, keys: Sequence[str]) -> None:
        handle = self._client.bucket(bucket)
        for start in range(0, len(keys), _BATCH):
            # A key deleted meanwhile fails alone; the listing loop sees what is left.
            with self._client.batch(raise_exception=False):
                for key in keys[start : start + _BATCH]:
                    handle.blob(key).delete()
