"""Virus scanning with clamd over INSTREAM, streamed in chunks, failing closed.

Every verdict on bytes whose SHA-256 is known is recorded with the signature
version clamd reported (`ferry.db.verdicts`), and a verdict already recorded
under the current version is reused instead of scanning the same bytes again.
When a worker first sees a signature version, it starts that version's rescan
(`on_new_signatures`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyclamd
from temporalio import activity

from ferry.activities.clamd_version import ClamdVersion, parse_clamd_version
from ferry.activities.heartbeat import heartbeating
from ferry.activities.metrics import count, gauge
from ferry.activities.storage import provider_named, refuse_outside
from ferry.contracts.errors import (
    OBJECT_NOT_FOUND,
    SCAN_ERROR,
    SCAN_LIMIT_EXCEEDED,
    SCANNER_UNAVAILABLE,
)
from ferry.contracts.layout import DEFAULT_PLACES, Places
from ferry.contracts.storage import ScopedRef
from ferry.db.verdicts import Verdict, VerdictBook
from ferry.storage import CHUNK_SIZE, ObjectNotFound, StorageProvider

# clamd reports a file over one of its limits as a "virus" of this family; such a
# file was not fully scanned, so it is never clean (AlertExceedsMax yes).
LIMIT_SIGNATURE_PREFIX = "Heuristics.Limits.Exceeded"
SCANS = "ferry_scans"
SCANS_HELP = (
    "Scans by verdict: clean, infected, over-limit, error, clamd-unavailable; reused: a"
    " verdict on the same bytes under the current signatures, not scanned again."
)
SIGNATURE_VERSION = "ferry_clamd_signature_version"
SIGNATURE_VERSION_HELP = "The version of clamd's signature database, as of the last scan."
SIGNATURE_AGE = "ferry_clamd_signature_age_seconds"
SIGNATURE_AGE_HELP = "Seconds since clamd's signature database was built, as of the last scan."
# How often a worker asks clamd which database it has: the scans in between use the answer.
VERSION_INTERVAL = 60.0
# VERSION is answered from memory; a clamd slower than this is busy, and the scan goes on.
VERSION_TIMEOUT = 2.0

log = logging.getLogger(__name__)


@dataclass
class ScanResult:
    clean: bool
    signature: str | None = None
    # The signature database version that gave the verdict, when clamd names one.
    signature_version: int | None = None
    reused: bool = False  # a verdict recorded earlier on the same bytes, not a new scan


class _StreamReader:
    """A blocking file-like view of an async chunk stream, for pyclamd's thread."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self.consumed = 0

    def read(self, _size: int = -1) -> bytes:
        future = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
        chunk = future.result()
        self.consumed += len(chunk)
        return chunk

    async def _next(self) -> bytes:
        try:
            return await anext(self._chunks)
        except StopAsyncIteration:
            return b""


class ScanActivities:
    """Scans objects with one clamd, and reports which signature database it scans with.

    Each scan sets the gauges `ferry_clamd_signature_version` and
    `ferry_clamd_signature_age_seconds` (when clamd tells them) from clamd's
    `VERSION`, asked at most once every `version_interval` seconds per worker.
    """

    def __init__(
        self, clamd_host: str, clamd_port: int, providers: Mapping[str, StorageProvider],
        timeout: float = 600.0, max_scans: int = 4, places: Places = DEFAULT_PLACES,
        version_interval: float = VERSION_INTERVAL,
        verdicts: VerdictBook | None = None,
        on_new_signatures: Callable[[ClamdVersion], Coroutine[Any, Any, None]] | None = None,
    ) -> None:  # fmt: skip
        self._host, self._port, self._timeout = clamd_host, clamd_port, timeout
        self._places = places
        self._providers = dict(providers)
        # Scans block a thread for their whole length while the object's chunks
        # are read on the event loop (which uses the default pool for file I/O):
        # scans get threads of their own, so they can never starve those reads.
        self._threads = ThreadPoolExecutor(max_workers=max_scans, thread_name_prefix="clamd")
        # VERSION has a thread of its own: behind busy scan threads it would wait a scan long.
        self._version_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clamd-version")
        self._version_interval = version_interval
        self._version: ClamdVersion | None = None
        self._version_asked: float | None = None
        self._verdicts = verdicts
        self._on_new_signatures = on_new_signatures
        self._announced: int | None = None  # the last signature version announced
        self._announcing: set[asyncio.Task[None]] = set()

    def _scan(self, reader: _StreamReader) -> dict[str, tuple[str, str]] | None:
        clamd = pyclamd.ClamdNetworkSocket(self._host, self._port, timeout=self._timeout)
        result: dict[str, tuple[str, str]] | None = clamd.scan_stream(reader, chunk_size=CHUNK_SIZE)
        return result

    def _ask_version(self) -> str:
        clamd = pyclamd.ClamdNetworkSocket(self._host, self._port, timeout=VERSION_TIMEOUT)
        return str(clamd.version())

    async def signatures(self, fresh: bool = False) -> ClamdVersion | None:
        """clamd's signature database, asked anew at most once every `version_interval`
        seconds (`fresh`: now); None until clamd has answered. A failed `VERSION` only
        logs: the last answer stands, and no verdict is reused or recorded without one."""
        now = time.monotonic()
        recent = (
            self._version_asked is not None and now - self._version_asked < self._version_interval
        )
        if recent and not fresh:
            return self._version
        self._version_asked = now  # before the await: the scans running meanwhile do not ask
        loop = asyncio.get_running_loop()
        try:
            # The socket's timeout bounds each step; this bounds them all (a stuck thread
            # answers late into nothing, and the next ask is a minute away).
            answer = await asyncio.wait_for(
                loop.run_in_executor(self._version_thread, self._ask_version), VERSION_TIMEOUT
            )
            self._version = parse_clamd_version(answer)
        except (pyclamd.ConnectionError, OSError, ValueError) as exc:
            log.warning("clamd did not say which signatures it has: %s", exc)
        else:
            self._announce(self._version)
        return self._version

    def _announce(self, version: ClamdVersion) -> None:
        """Tell `on_new_signatures` of a signature version this worker had not seen."""
        if version.signature_version in (None, self._announced) or not self._on_new_signatures:
            return
        self._announced = version.signature_version
        log.info("clamd scans with signature version %s", version.signature_version)
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            self._on_new_signatures(version)
        )
        self._announcing.add(task)  # kept until done: the loop holds tasks weakly
        task.add_done_callback(self._announced_by)

    def _announced_by(self, task: asyncio.Task[None]) -> None:
        self._announcing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("could not start the rescan: %s", task.exception())

    async def _report_signatures(self) -> ClamdVersion | None:
        version = await self.signatures()
        if version is None:
            return None
        if version.signature_version is not None:
            gauge(SIGNATURE_VERSION, SIGNATURE_VERSION_HELP, version.signature_version)
        age = version.age_seconds(datetime.now(UTC))
        if age is not None:
            # A build "in the future" is clock skew (a gauge may not be negative): brand new.
            gauge(SIGNATURE_AGE, SIGNATURE_AGE_HELP, max(0.0, age))
        return version

    @activity.defn(name="scan_object")
    async def scan(self, ref: ScopedRef) -> ScanResult:
        """Stream the object to clamd. Errors raise, so Temporal retries; never 'clean'."""
        refuse_outside(self._places, ref.bucket, ref.key, ref.tenant_id, ref.file_id)
        return await self.verdict(
            provider_named(self._providers, ref.provider), ref.bucket, ref.key
        )

    async def verdict(
        self, provider: StorageProvider, bucket: str, key: str, sha256: str | None = None
    ) -> ScanResult:
        """clamd's verdict on an object of `provider` (an upload's spooled copy, too).

        With the `sha256` of its bytes (known, never announced), a verdict on the same
        bytes under clamd's current signatures is reused, and a new one is recorded.
        """
        version = await self._report_signatures()
        known = await self.known(sha256, version)
        if known is not None:
            return known
        result = await self.stream(provider.read(bucket, key), f"{bucket}/{key}", version)
        await self.record(sha256, version, result)
        return result

    async def recorded(self, sha256: str) -> Verdict | None:
        """The latest verdict recorded on these bytes, under whatever signatures gave it."""
        return await self._verdicts.get(sha256) if self._verdicts is not None else None

    async def known(self, sha256: str | None, version: ClamdVersion | None) -> ScanResult | None:
        """The recorded verdict on these bytes, if it was given under `version`."""
        if self._verdicts is None or sha256 is None or version is None:
            return None
        if version.signature_version is None:
            return None  # without a version, a verdict says nothing of today's signatures
        found = await self._verdicts.current(sha256, version.signature_version)
        if found is None:
            return None
        count(SCANS, SCANS_HELP, verdict="reused")
        return ScanResult(found.clean, found.signature, found.signature_version, reused=True)

    async def record(
        self, sha256: str | None, version: ClamdVersion | None, result: ScanResult
    ) -> None:
        """Record clamd's verdict on these bytes, with the signatures that gave it."""
        if self._verdicts is None or sha256 is None or version is None:
            return
        await self._verdicts.record(
            sha256,
            engine=version.engine,
            signature_version=version.signature_version,
            clean=result.clean,
            signature=result.signature,
        )

    async def stream(
        self, chunks: AsyncIterator[bytes], where: str, version: ClamdVersion | None
    ) -> ScanResult:
        """clamd's verdict on the bytes of `chunks` (the object at `where`), scanned now."""
        reader = _StreamReader(chunks, asyncio.get_running_loop())
        signature_version = version.signature_version if version else None
        # clamd gives its verdict only after the whole stream: keep telling
        # Temporal that this attempt is alive meanwhile, so a short heartbeat
        # timeout still detects a dead worker quickly.
        try:
            async with heartbeating(lambda: reader.consumed):
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._threads, contextvars.copy_context().run, self._scan, reader
                )
        except ObjectNotFound:
            raise OBJECT_NOT_FOUND(f"object {where} not found") from None
        except (pyclamd.ConnectionError, OSError) as exc:
            # clamd down or the connection broke: retryable, the file stays unscanned.
            count(SCANS, SCANS_HELP, verdict="clamd-unavailable")
            raise SCANNER_UNAVAILABLE(f"clamd unavailable: {exc}") from exc
        if result is None:
            count(SCANS, SCANS_HELP, verdict="clean")
            return ScanResult(clean=True, signature_version=signature_version)
        status, detail = result.get("stream", ("ERROR", "no result for the stream"))
        if status == "FOUND":
            if detail.startswith(LIMIT_SIGNATURE_PREFIX):
                count(SCANS, SCANS_HELP, verdict="over-limit")
                raise SCAN_LIMIT_EXCEEDED(f"clamd could not scan the whole file: {detail}")
            count(SCANS, SCANS_HELP, verdict="infected")
            return ScanResult(False, detail, signature_version)
        count(SCANS, SCANS_HELP, verdict="error")
        raise SCAN_ERROR(f"clamd error: {detail}")
