"""Local filesystem storage: a bucket is a directory under one root."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from stat import S_ISREG

from ferry.storage.base import (
    CHUNK_SIZE,
    ObjectInfo,
    ObjectNotFound,
    validate_bucket,
    validate_key,
)


class LocalStorage:
    """Objects as files; writes land in a temporary file and are renamed into place."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / validate_bucket(bucket) / validate_key(key)).resolve()
        if not path.is_relative_to(self.root / bucket):
            raise ObjectNotFound(f"{bucket}/{key}")
        return path

    async def read(
        self, bucket: str, key: str, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        path = self._path(bucket, key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except (FileNotFoundError, IsADirectoryError) as exc:
            # A directory is only a prefix of other keys, never an object.
            raise ObjectNotFound(f"{bucket}/{key}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, chunk_size):
                yield chunk
        finally:
            handle.close()

    async def write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
        path = self._path(bucket, key)
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        size = 0
        handle = await asyncio.to_thread(partial.open, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
                size += len(chunk)
            await asyncio.to_thread(handle.flush)
            await asyncio.to_thread(os.fsync, handle.fileno())
        except BaseException:
            handle.close()
            partial.unlink(missing_ok=True)
            raise
        handle.close()
        await asyncio.to_thread(os.replace, partial, path)
        return ObjectInfo(bucket, key, size)

    async def head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return None
        if not S_ISREG(stat.st_mode):
            return None
        return ObjectInfo(bucket, key, stat.st_size)

    async def copy(
        self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str
    ) -> ObjectInfo:
        src, dst = self._path(src_bucket, src_key), self._path(dst_bucket, dst_key)
        if not src.is_file():
            raise ObjectNotFound(f"{src_bucket}/{src_key}")
        await asyncio.to_thread(dst.parent.mkdir, parents=True, exist_ok=True)
        partial = dst.with_name(f".{dst.name}.{uuid.uuid4().hex}.partial")
        await asyncio.to_thread(shutil.copyfile, src, partial)
        await asyncio.to_thread(os.replace, partial, dst)
        return ObjectInfo(dst_bucket, dst_key, dst.stat().st_size)

    async def delete(self, bucket: str, key: str) -> None:
        await asyncio.to_thread(self._path(bucket, key).unlink, missing_ok=True)

    async def create_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(
            (self.root / validate_bucket(bucket)).mkdir, parents=True, exist_ok=True
        )
