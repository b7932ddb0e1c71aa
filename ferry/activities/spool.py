"""Read an object once: sniff its type, then stop, stream it through or spool it to disk.

Pillow, pypdf and tesseract need a file; the object is then written to a
temporary file that is deleted when the context ends. Nothing is held in
memory beyond the first bytes.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image
from temporalio.exceptions import ApplicationError

from ferry.activities.heartbeat import Pulse
from ferry.contracts.errors import OBJECT_NOT_FOUND
from ferry.contracts.storage import StorageRef
from ferry.media.errors import TooLarge
from ferry.media.limits import MediaLimits
from ferry.media.sniff import SNIFF_BYTES, TextCheck, sniff_media_type
from ferry.media.types import IMAGE_TYPES, PDF, TEXT
from ferry.storage import LocalStorage, ObjectNotFound, StorageProvider

T = TypeVar("T")

# The steps that read an upload's spooled copy after its inspection; the copy is
# deleted once each of them is done with it (or when it is older than `max_age`).
FOLLOWERS = ("thumbnails", "metadata", "analysis")


class Plan(Enum):
    STOP = "stop"  # the first bytes are enough
    STREAM = "stream"  # read everything, keep nothing
    SPOOL = "spool"  # read everything into a temporary file


@dataclass
class Fetched:
    content_type: str
    head: bytes
    size: int
    sha256: str | None = None
    path: Path | None = None
    text_error: str | None = None


def spool_images_and_pdfs(content_type: str) -> Plan:
    """Images and PDFs go to disk for Pillow and pypdf; anything else is streamed."""
    return Plan.SPOOL if content_type in IMAGE_TYPES or content_type == PDF else Plan.STREAM


def not_found(ref: StorageRef) -> ApplicationError:
    return OBJECT_NOT_FOUND(f"object {ref.bucket}/{ref.key} not found on {ref.provider}")


def _temp_file(temp_dir: str | None) -> tuple[io.BufferedWriter, Path]:
    fd, name = tempfile.mkstemp(prefix="ferry-media-", dir=temp_dir)
    return os.fdopen(fd, "wb"), Path(name)


@asynccontextmanager
async def fetch(
    provider: StorageProvider,
    ref: StorageRef,
    plan: Callable[[str], Plan],
    limits: MediaLimits,
    *,
    hash_all: bool = False,
    max_bytes: int | None = None,
) -> AsyncIterator[Fetched]:
    """Stream an object once: sniff it, then per `plan` stop, stream or spool it.

    The first bytes are kept in `head` (enough for a text excerpt); `hash_all`
    reads to the end for the SHA-256; text is checked for UTF-8 as it passes;
    over `max_bytes` is `TooLarge`. A long read heartbeats with the bytes read (`Pulse`).
    The temporary file, if any, is deleted when the context ends.
    """
    head_bytes = max(SNIFF_BYTES, limits.text_excerpt_chars * 4)
    temp_dir = limits.temp_dir
    digest = hashlib.sha256() if hash_all else None
    text = TextCheck()
    fetched = Fetched(content_type="", head=b"", size=0)
    handle: io.BufferedWriter | None = None
    decided: Plan | None = None
    pending: list[bytes] = []
    stream = provider.read(ref.bucket, ref.key)
    pulse = Pulse()

    async def take(chunk: bytes) -> None:
        if handle is not None:
            await asyncio.to_thread(handle.write, chunk)
        if fetched.content_type == TEXT:
            text.feed(chunk, fetched.size)

    try:
        async for chunk in stream:
            fetched.size += len(chunk)
            if max_bytes is not None and fetched.size > max_bytes:
                raise TooLarge(f"object is over {max_bytes} bytes")
            if digest is not None:
                digest.update(chunk)
            if len(fetched.head) < head_bytes:
                fetched.head += chunk[: head_bytes - len(fetched.head)]
            pulse(fetched.size)
            if decided is None:
                pending.append(chunk)
                if len(fetched.head) < SNIFF_BYTES:
                    continue
                fetched.content_type = sniff_media_type(fetched.head[:SNIFF_BYTES])
                decided = plan(fetched.content_type)
                if decided is Plan.SPOOL:
                    handle, fetched.path = await asyncio.to_thread(_temp_file, temp_dir)
                for early in pending:
                    await take(early)
                pending.clear()
            elif decided is not Plan.STOP or digest is not None:
                await take(chunk)
            if decided is Plan.STOP and digest is None and len(fetched.head) >= head_bytes:
                break
        else:
            if decided is None:  # smaller than the sniffing sample
                fetched.content_type = sniff_media_type(fetched.head)
                decided = plan(fetched.content_type)
                if decided is Plan.SPOOL:
                    handle, fetched.path = await asyncio.to_thread(_temp_file, temp_dir)
                for early in pending:
                    await take(early)
            if fetched.content_type == TEXT:
                text.finish()
        fetched.text_error = text.error
        if handle is not None:
            await asyncio.to_thread(handle.close)
        if digest is not None:
            fetched.sha256 = digest.hexdigest()
        yield fetched
    except ObjectNotFound:
        raise not_found(ref) from None
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with suppress(Exception):
                await aclose()
        if handle is not None:
            handle.close()
        if fetched.path is not None:
            fetched.path.unlink(missing_ok=True)


@asynccontextmanager
async def fetch_copy(
    path: Path,
    plan: Callable[[str], Plan],
    limits: MediaLimits,
    *,
    hash_all: bool = False,
    max_bytes: int | None = None,
) -> AsyncIterator[Fetched]:
    """`fetch` of a file already on this worker's disk (a spooled copy): the same
    `Fetched`, with `path` the copy itself when the plan spools (nothing is copied
    again, nor deleted)."""
    size = (await asyncio.to_thread(path.stat)).st_size
    if max_bytes is not None and size > max_bytes:
        raise TooLarge(f"object is over {max_bytes} bytes")
    head_bytes = max(SNIFF_BYTES, limits.text_excerpt_chars * 4)
    with await asyncio.to_thread(path.open, "rb") as handle:
        head = await asyncio.to_thread(handle.read, head_bytes)
        content_type = sniff_media_type(head[:SNIFF_BYTES])
        fetched = Fetched(content_type, head, size)
        decided = plan(content_type)
        if decided is Plan.SPOOL:
            fetched.path = path
        text = TextCheck() if content_type == TEXT and decided is not Plan.STOP else None
        digest = hashlib.sha256() if hash_all else None
        if text is not None or digest is not None:
            await asyncio.to_thread(handle.seek, 0)
            offset, pulse = 0, Pulse()
            while chunk := await asyncio.to_thread(handle.read, 1024 * 1024):
                offset += len(chunk)  # as `fetch` says it: the bytes read so far
                if text is not None:
                    text.feed(chunk, offset)
                if digest is not None:
                    digest.update(chunk)
                pulse(offset)
            if text is not None:
                text.finish()
                fetched.text_error = text.error
            if digest is not None:
                fetched.sha256 = digest.hexdigest()
    yield fetched


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a worker thread, e.g. Pillow or pypdf on a spooled file."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        await asyncio.wait({task})
    except asyncio.CancelledError:
        # The thread cannot be stopped; let it finish before its files are deleted.
        with suppress(BaseException):
            await task
        raise
    return task.result()


def _footprint(image: Image.Image) -> int:
    """The bytes Pillow holds for a decoded image: four per pixel (RGB as RGBX), one in L."""
    return image.width * image.height * (1 if image.mode == "L" else 4)


class SpoolStore:
    """Copies of uploads on this worker's disk, for the steps that follow their inspection.

    Copies live under `root/spool/`, named `{file_id}.{random}`; a worker starts with
    an empty store (a copy of another run's worker is of no use to anyone). Beside a
    copy of an image, the image the validation decoded may be kept in memory
    (`keep_decoded`), within `decoded_budget` bytes for all copies (four 1600x1200 photos
    by default: with the steps of three uploads at once per core, `make bench-upload`'s
    burst kept every one, and the worker's peak RSS stayed under 260 MB): the
    thumbnails and the analysis start from it instead of decoding the copy again.
    """

    BUCKET = "spool"

    def __init__(
        self,
        root: Path,
        task_queue: str,
        max_age: float = 1800.0,
        decoded_budget: int = 32 * 2**20,
    ) -> None:
        self.root = root
        self.task_queue = task_queue
        self.max_age = max_age
        self.storage = LocalStorage(root)
        self._waiting: dict[str, set[str]] = {}
        self._evicted_at = 0.0
        self.decoded_budget = decoded_budget
        self._decoded: dict[str, Image.Image] = {}
        self._decoded_lock = threading.Lock()
        self._dir = root / self.BUCKET
        if self._dir.exists():
            for stale in self._dir.iterdir():
                stale.unlink(missing_ok=True)
        self._dir.mkdir(parents=True, exist_ok=True)

    def new_id(self, file_id: str) -> str:
        return f"{file_id}.{uuid.uuid4().hex}"

    def ref(self, spool_id: str) -> StorageRef:
        return StorageRef("spool", self.BUCKET, spool_id)

    def path(self, spool_id: str) -> Path:
        return self._dir / spool_id

    def has(self, spool_id: str) -> bool:
        return (self._dir / spool_id).is_file()

    def keep_decoded(self, spool_id: str, image: Image.Image) -> None:
        """Keep `image`, the copy `spool_id` decoded, for the steps after it, if it fits in
        what is left of the budget (else they decode it themselves). Nothing may change
        it afterwards: several steps may read it at once."""
        with self._decoded_lock:
            held = sum(map(_footprint, self._decoded.values()))
            if held + _footprint(image) <= self.decoded_budget:
                self._decoded.setdefault(spool_id, image)

    def decoded(self, spool_id: str | None) -> Image.Image | None:
        """The image `keep_decoded` holds for the copy `spool_id`, if it still does."""
        if spool_id is None:
            return None
        with self._decoded_lock:
            return self._decoded.get(spool_id)

    async def write(self, spool_id: str, chunks: AsyncIterator[bytes]) -> None:
        """The copy, written through (no fsync: it is a cache, lost with the worker)."""
        path = self._dir / spool_id
        handle = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in chunks:
                await asyncio.to_thread(handle.write, chunk)
        except BaseException:
            handle.close()
            path.unlink(missing_ok=True)
            raise
        await asyncio.to_thread(handle.close)

    def keep_for(self, spool_id: str, followers: Iterable[str]) -> None:
        self._waiting[spool_id] = set(followers)

    def done(self, spool_id: str, follower: str) -> None:
        """`follower` needs the copy no more; the last one deletes it."""
        waiting = self._waiting.get(spool_id)
        if waiting is None:
            return
        waiting.discard(follower)
        if not waiting:
            self.discard(spool_id)

    def discard(self, spool_id: str) -> None:
        self._waiting.pop(spool_id, None)
        with self._decoded_lock:
            self._decoded.pop(spool_id, None)
        (self._dir / spool_id).unlink(missing_ok=True)

    def evict_stale(self) -> None:
        """Copies older than `max_age` (their followers failed, or ran elsewhere) go; the
        directory is looked through at most once a minute."""
        now = time.time()
        if now - self._evicted_at < 60:
            return
        self._evicted_at = now
        oldest = now - self.max_age
        for path in self._dir.iterdir():
            try:
                if path.stat().st_mtime < oldest:
                    self.discard(path.name)
            except FileNotFoundError:
                continue
