"""Azure Blob Storage through azure-storage-blob's asyncio client."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Mapping
from datetime import UTC, datetime, timedelta

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobSasPermissions, ContentSettings, generate_blob_sas
from azure.storage.blob.aio import BlobClient, BlobServiceClient

from ferry.storage.base import PART_SIZE, ObjectInfo, ObjectPage, StorageProvider, rechunk
from ferry.storage.errors import BucketNotFound, InvalidKey, ObjectNotFound

# The source of a server-side copy is read through a SAS that lives this long.
_COPY_SAS = timedelta(days=1)
_COPY_POLL = 0.5


def _md5(value: bytes | bytearray | None) -> str | None:
    return f"md5:{base64.b64encode(value).decode()}" if value else None


def _parse_connection_string(connection_string: str) -> dict[str, str]:
    fields = (part.partition("=") for part in connection_string.split(";") if part)
    return {name.strip(): value.strip() for name, _, value in fields}


class AzureStorage(StorageProvider):
    """Blob containers; writes over one block (8 MiB) are staged blocks committed at the end.

    Needs an account key (connection string or `AZURE_STORAGE_ACCOUNT` + `AZURE_STORAGE_KEY`)
    to sign SAS URLs. Writes store the content's MD5, which `head` reports.
    """

    name = "azure"

    def __init__(self, connection_string: str) -> None:
        fields = _parse_connection_string(connection_string)
        self._account_name = fields.get("AccountName")
        self._account_key = fields.get("AccountKey")
        # Downloads go in requests of one part: the first GET would otherwise buffer 32 MiB.
        self._service = BlobServiceClient.from_connection_string(
            connection_string, max_single_get_size=PART_SIZE, max_chunk_get_size=PART_SIZE
        )

    @staticmethod
    def configured(environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return bool(
            env.get("AZURE_STORAGE_CONNECTION_STRING")
            or (env.get("AZURE_STORAGE_ACCOUNT") and env.get("AZURE_STORAGE_KEY"))
        )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AzureStorage:
        """From `AZURE_STORAGE_CONNECTION_STRING`, or `AZURE_STORAGE_ACCOUNT` and `_KEY`."""
        env = os.environ if environ is None else environ
        connection_string = env.get("AZURE_STORAGE_CONNECTION_STRING")
        if not connection_string:
            account, key = env.get("AZURE_STORAGE_ACCOUNT"), env.get("AZURE_STORAGE_KEY")
            if not (account and key):
                raise ValueError("set AZURE_STORAGE_CONNECTION_STRING")
            connection_string = (
                f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey={key};"
                "EndpointSuffix=core.windows.net"
            )
        return cls(connection_string)

    async def close(self) -> None:
        await self._service.close()

    def _valid_bucket(self, bucket: str) -> str:
        """Container names are bucket names without dots or consecutive hyphens."""
        super()._valid_bucket(bucket)
        if "." in bucket or "--" in bucket:
            raise InvalidKey(f"invalid container name {bucket!r}")
        return bucket

    def _blob(self, bucket: str, key: str) -> BlobClient:
        return self._service.get_blob_client(bucket, key)

    async def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        blob = self._blob(bucket, key)
        try:
            # The downloader pins the blob's ETag, so every chunk comes from one version.
            downloader = await blob.download_blob()
        except ResourceNotFoundError as exc:
            raise ObjectNotFound(f"{bucket}/{key}") from exc
        async for chunk in rechunk(downloader.chunks(), chunk_size):
            yield chunk

    async def _write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        blob = self._blob(bucket, key)
        parts = rechunk(chunks, PART_SIZE)
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            first = await anext(parts, b"")
            second = await anext(parts, None)
            if second is None:
                md5.update(first)
                settings = ContentSettings(content_md5=bytearray(md5.digest()))
                await blob.upload_blob(first, overwrite=True, content_settings=settings)
                return ObjectInfo(bucket, key, len(first), _md5(md5.digest()))
            # Uncommitted blocks of a failed write are invisible; Azure discards them within a
            # week, so there is nothing to abort and the previous blob stays as it was.
            upload = uuid.uuid4().hex
            blocks: list[BlobBlock] = []
            size = 0

            async def stage(part: bytes) -> None:
                nonlocal size
                block_id = base64.b64encode(f"{upload}-{len(blocks):06d}".encode()).decode()
                await blob.stage_block(block_id, part)
                blocks.append(BlobBlock(block_id))
                md5.update(part)
                size += len(part)

            await stage(first)
            await stage(second)
            async for part in parts:
                await stage(part)
            settings = ContentSettings(content_md5=bytearray(md5.digest()))
            await blob.commit_block_list(blocks, content_settings=settings)
            return ObjectInfo(bucket, key, size, _md5(md5.digest()))
        except ResourceNotFoundError as exc:
            raise BucketNotFound(bucket) from exc

    async def _head(self, bucket: str, key: str) -> ObjectInfo | None:
        blob = self._blob(bucket, key)
        try:
            props = await blob.get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ObjectInfo(bucket, key, props.size, _md5(props.content_settings.content_md5))

    async def _copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        source, target = self._blob(src_bucket, src_key), self._blob(dst_bucket, dst_key)
        source_url = f"{source.url}?{self._sas(src_bucket, src_key, _COPY_SAS)}"
        try:
            copy = await target.start_copy_from_url(source_url)
            status = copy.get("copy_status")
            # Within one account the copy is usually done at once; a large one is pending.
            while status == "pending":
                await asyncio.sleep(_COPY_POLL)
                status = (await target.get_blob_properties()).copy.status
        except ResourceNotFoundError as exc:
            if await self._head(src_bucket, src_key) is None:
                raise ObjectNotFound(f"{src_bucket}/{src_key}") from exc
            raise BucketNotFound(dst_bucket) from exc
        if status != "success":
            raise RuntimeError(f"copy to {dst_bucket}/{dst_key} ended as {status}")
        info = await self._head(dst_bucket, dst_key)
        if info is None:  # deleted by someone else in between
            raise ObjectNotFound(f"{dst_bucket}/{dst_key}")
        return info

    async def _delete(self, bucket: str, key: str) -> None:
        blob = self._blob(bucket, key)
        try:
            await blob.delete_blob(delete_snapshots="include")
        except ResourceNotFoundError:
            pass

    async def _list(
        self, bucket: str, prefix: str, page_size: int, page_token: str | None
    ) -> ObjectPage:
        container = self._service.get_container_client(bucket)
        pages = container.list_blobs(
            name_starts_with=prefix or None, results_per_page=page_size
        ).by_page(continuation_token=page_token)
        try:
            page = await anext(pages, None)
            blobs = [blob async for blob in page] if page is not None else []
        except ResourceNotFoundError:
            return ObjectPage([], None)
        items = [
            ObjectInfo(bucket, blob.name, blob.size, _md5(blob.content_settings.content_md5))
            for blob in blobs
        ]
        token = getattr(pages, "continuation_token", None)
        return ObjectPage(items, str(token) if token else None)

    async def _signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """The blob's URL with a read-only SAS that ends after `expires`."""
        return f"{self._blob(bucket, key).url}?{self._sas(bucket, key, expires)}"

    def _sas(self, bucket: str, key: str, expires: timedelta) -> str:
        if not (self._account_name and self._account_key):
            raise RuntimeError("a SAS needs the account key (AccountName and AccountKey)")
        return generate_blob_sas(
            self._account_name,
            bucket,
            key,
            account_key=self._account_key,
            permission=BlobSasPermissions(read=True),
            expiry=datetime.now(UTC) + expires,
        )

    async def _create_bucket(self, bucket: str) -> None:
        container = self._service.get_container_client(bucket)
        try:
            await container.create_container()
        except ResourceExistsError as exc:
            # ContainerBeingDeleted maps to the same error: that one is a failure.
            if getattr(exc, "error_code", None) != "ContainerAlreadyExists":
                raise

    async def _delete_bucket(self, bucket: str, force: bool) -> None:
        """Delete the container (Azure deletes its blobs with it).

        Azure removes a container in the background: its name cannot be created again for
        about 30 seconds (`ContainerBeingDeleted`).
        """
        try:
            await self._service.get_container_client(bucket).delete_container()
        except ResourceNotFoundError:
            pass
