"""Amazon S3 (and S3-compatible servers such as moto or MinIO) through aioboto3."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Mapping
from datetime import timedelta
from typing import Any

import aioboto3
from aiobotocore.config import AioConfig
from botocore.exceptions import ClientError

from ferry.storage.base import PART_SIZE, ObjectInfo, ObjectPage, StorageProvider, rechunk
from ferry.storage.errors import BucketNotEmpty, BucketNotFound, ObjectNotFound

_MISSING_OBJECT = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
# Any of these means the AWS SDK's credential chain or an S3-compatible endpoint is configured.
_ENV_MARKERS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
)


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _etag(value: Any) -> str | None:
    return "etag:" + str(value).strip('"') if value else None


class S3Storage(StorageProvider):
    """S3 buckets; uploads over one part (8 MiB) are streamed as a multipart upload.

    Limits: objects up to 10,000 parts (about 78 GiB); `copy` uses CopyObject, which S3
    limits to 5 GiB (a multipart copy for larger objects is out of scope); versioned buckets
    are not handled by `delete_bucket(force=True)`.
    """

    name = "s3"
    max_expiry = timedelta(days=7)  # SigV4 presigned URLs live at most seven days

    def __init__(
        self,
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
    ) -> None:
        self._session = aioboto3.Session(
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            aws_session_token=session_token,
            region_name=region,
            profile_name=profile,
        )
        self._endpoint_url = endpoint_url
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None
        self._lock = asyncio.Lock()

    @staticmethod
    def configured(environ: Mapping[str, str] | None = None) -> bool:
        env = os.environ if environ is None else environ
        return any(env.get(name) for name in _ENV_MARKERS)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Storage:
        """From the AWS SDK's usual variables (`AWS_ACCESS_KEY_ID`, `AWS_ENDPOINT_URL_S3`, …)."""
        env = os.environ if environ is None else environ
        return cls(
            endpoint_url=env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
            region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"),
            access_key_id=env.get("AWS_ACCESS_KEY_ID"),
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
            session_token=env.get("AWS_SESSION_TOKEN"),
            profile=env.get("AWS_PROFILE"),
        )

    async def _s3(self) -> Any:
        async with self._lock:
            if self._client is None:
                config = AioConfig(
                    signature_version="s3v4",
                    # S3-compatible servers on an IP address cannot serve bucket subdomains.
                    s3={"addressing_style": "path" if self._endpoint_url else "auto"},
                )
                self._client = await self._stack.enter_async_context(
                    self._session.client("s3", endpoint_url=self._endpoint_url, config=config)
                )
            return self._client

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    async def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        s3 = await self._s3()
        try:
            response = await s3.get_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_OBJECT:
                raise ObjectNotFound(f"{bucket}/{key}") from exc
            raise
        body = response["Body"]
        async with body:  # releases the connection, also when the reader stops early
            async for chunk in rechunk(body.iter_chunks(chunk_size), chunk_size):
                yield chunk

    async def _write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        s3 = await self._s3()
        parts = rechunk(chunks, PART_SIZE)
        try:
            first = await anext(parts, b"")
            second = await anext(parts, None)
            if second is None:
                response = await s3.put_object(Bucket=bucket, Key=key, Body=first)
                return ObjectInfo(bucket, key, len(first), _etag(response.get("ETag")))
            return await self._multipart(s3, bucket, key, first, second, parts)
        except ClientError as exc:
            if _code(exc) == "NoSuchBucket":
                raise BucketNotFound(bucket) from exc
            raise

    async def _multipart(
        self,
        s3: Any,
        bucket: str,
        key: str,
        first: bytes,
        second: bytes,
        rest: AsyncIterator[bytes],
    ) -> ObjectInfo:
        upload_id = (await s3.create_multipart_upload(Bucket=bucket, Key=key))["UploadId"]
        done: list[dict[str, Any]] = []
        size = 0

        async def send(part: bytes) -> None:
            nonlocal size
            number = len(done) + 1
            response = await s3.upload_part(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
            )
            done.append({"ETag": response["ETag"], "PartNumber": number})
            size += len(part)

        try:
            await send(first)
            await send(second)
            async for part in rest:
                await send(part)
            response = await s3.complete_multipart_upload(
                Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": done}
            )
        except BaseException:
            # An unfinished multipart upload is invisible but keeps its parts (and their cost).
            with contextlib.suppress(Exception):
                await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise
        return ObjectInfo(bucket, key, size, _etag(response.get("ETag")))

    async def _head(self, bucket: str, key: str) -> ObjectInfo | None:
        s3 = await self._s3()
        try:
            response = await s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) in _MISSING_OBJECT:
                return None
            raise
        return ObjectInfo(bucket, key, int(response["ContentLength"]), _etag(response.get("ETag")))

    async def _copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        s3 = await self._s3()
        try:
            await s3.copy_object(
                Bucket=dst_bucket, Key=dst_key, CopySource={"Bucket": src_bucket, "Key": src_key}
            )
        except ClientError as exc:
            if _code(exc) not in _MISSING_OBJECT:
                raise
            if await self._head(src_bucket, src_key) is None:
                raise ObjectNotFound(f"{src_bucket}/{src_key}") from exc
            raise BucketNotFound(dst_bucket) from exc
        info = await self._head(dst_bucket, dst_key)
        if info is None:  # deleted by someone else in between
            raise ObjectNotFound(f"{dst_bucket}/{dst_key}")
        return info

    async def _delete(self, bucket: str, key: str) -> None:
        s3 = await self._s3()
        try:
            await s3.delete_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if _code(exc) not in _MISSING_OBJECT:
                raise

    async def _list(
        self, bucket: str, prefix: str, page_size: int, page_token: str | None
    ) -> ObjectPage:
        s3 = await self._s3()
        request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": page_size}
        if page_token is not None:
            request["ContinuationToken"] = page_token
        try:
            response = await s3.list_objects_v2(**request)
        except ClientError as exc:
            if _code(exc) in _MISSING_OBJECT:
                return ObjectPage([], None)
            raise
        items = [
            ObjectInfo(bucket, item["Key"], int(item["Size"]), _etag(item.get("ETag")))
            for item in response.get("Contents", [])
        ]
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return ObjectPage(items, token)

    async def _signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """A presigned GET (SigV4, at most seven days)."""
        s3 = await self._s3()
        url = await s3.generate_presigned_url(
            "get_object",
            Params={"Bucket": bucket, "Key": key},
            ExpiresIn=int(expires.total_seconds()),
        )
        return str(url)

    async def _create_bucket(self, bucket: str) -> None:
        s3 = await self._s3()
        request: dict[str, Any] = {"Bucket": bucket}
        region = s3.meta.region_name
        if region and region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await s3.create_bucket(**request)
        except ClientError as exc:
            # BucketAlreadyExists (owned by another account) is a real failure.
            if _code(exc) != "BucketAlreadyOwnedByYou":
                raise

    async def _delete_bucket(self, bucket: str, force: bool) -> None:
        s3 = await self._s3()
        if force:
            await self._empty(s3, bucket)
        try:
            await s3.delete_bucket(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) == "BucketNotEmpty":
                raise BucketNotEmpty(f"bucket {bucket} is not empty") from exc
            if _code(exc) not in _MISSING_OBJECT:
                raise

    async def _empty(self, s3: Any, bucket: str) -> None:
        while (page := await self.list(bucket)).items:
            await s3.delete_objects(
                Bucket=bucket,
                Delete={"Objects": [{"Key": item.key} for item in page.items], "Quiet": True},
            )
        try:
            uploads = await s3.list_multipart_uploads(Bucket=bucket)
        except ClientError as exc:
            if _code(exc) in _MISSING_OBJECT:
                return
            raise
        for upload in uploads.get("Uploads", []):
            await s3.abort_multipart_upload(
                Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"]
            )
