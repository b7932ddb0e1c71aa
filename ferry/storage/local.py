"""Local filesystem storage: a bucket is a directory under one root."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import uuid
from collections.abc import AsyncGenerator, AsyncIterable
from datetime import timedelta
from pathlib import Path
from stat import S_ISREG

from ferry.storage.base import ObjectInfo, ObjectPage, StorageProvider
from ferry.storage.errors import ObjectNotFound

_PARTIAL = re.compile(r"^\..+\.[0-9a-f]{32}\.partial$")


class LocalStorage(StorageProvider):
    """Objects as files; writes land in a temporary file and are renamed into place.

    Unlike the cloud providers, a write or copy creates its bucket's directory if it is
    missing, and signed URLs are `file://` URLs that never expire.
    """

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, bucket: str, key: str) -> Path:
        path = (self.root / bucket / key).resolve()
        if not path.is_relative_to(self.root / bucket):
            raise ObjectNotFound(f"{bucket}/{key}")
        return path

    async def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
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

    async def _write(self, bucket: str, key: str, chunks: AsyncIterable[bytes]) -> ObjectInfo:
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

    async def _head(self, bucket: str, key: str) -> ObjectInfo | None:
        path = self._path(bucket, key)
        try:
            stat = await asyncio.to_thread(path.stat)
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not S_ISREG(stat.st_mode):
            return None
        return ObjectInfo(bucket, key, stat.st_size)

    async def _copy(
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

    async def _delete(self, bucket: str, key: str) -> None:
        # A key below something that is not a directory cannot exist: it is deleted already.
        with contextlib.suppress(NotADirectoryError):
            await asyncio.to_thread(self._path(bucket, key).unlink, missing_ok=True)

    async def _list(
        self, bucket: str, prefix: str, page_size: int, page_token: str | None
    ) -> ObjectPage:
        """Keys in code-point order (S3's order); the token is the last key of the page."""
        keys = await asyncio.to_thread(self._keys, bucket, prefix)
        if page_token is not None:
            keys = [entry for entry in keys if entry[0] > page_token]
        page = keys[:page_size]
        items = [ObjectInfo(bucket, key, size) for key, size in page]
        more = len(keys) > page_size
        return ObjectPage(items, page[-1][0] if more else None)

    def _keys(self, bucket: str, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under the prefix, sorted, walking only its directory."""
        base = self.root / bucket
        start = base / prefix.rpartition("/")[0]
        if not start.resolve().is_relative_to(base.resolve()):
            return []  # a symlink out of the bucket is not followed
        found = []
        for directory, dirnames, filenames in os.walk(start):
            dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(directory, d))]
            for filename in filenames:
                path = Path(directory, filename)
                if _PARTIAL.match(filename) or path.is_symlink():
                    continue
                key = path.relative_to(base).as_posix()
                if not key.startswith(prefix):
                    continue
                with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                    found.append((key, path.stat().st_size))
        return sorted(found)

    async def _signed_url(self, bucket: str, key: str, expires: timedelta) -> str:
        """The object's `file://` URL; the local provider has no expiry (nothing is signed)."""
        return self._path(bucket, key).as_uri()

    async def _create_bucket(self, bucket: str) -> None:
        await asyncio.to_thread((self.root / bucket).mkdir, parents=True, exist_ok=True)

    async def _delete_bucket(self, bucket: str, force: bool) -> None:
        # Directories left behind by deleted keys are not objects: they go too.
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(shutil.rmtree, self.root / bucket)

    async def close(self) -> None:
        """Nothing to release."""
