"""Virus scanning with clamd over INSTREAM, streamed in chunks, failing closed."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

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
from ferry.storage import CHUNK_SIZE, ObjectNotFound, StorageProvider

# clamd reports a file over one of its limits as a "virus" of this family; such a
# file was not fully scanned, so it is never clean (AlertExceedsMax yes).
LIMIT_SIGNATURE_PREFIX = "Heuristics.Limits.Exceeded"
SCANS = "ferry_scans"
SCANS_HELP = "Scans by verdict: clean, infected, over-limit, error, clamd-unavailable."
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
        activity.heartbeat(self.consumed)
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

    def _scan(self, reader: _StreamReader) -> dict[str, tuple[str, str]] | None:
        clamd = pyclamd.ClamdNetworkSocket(self._host, self._port, timeout=self._timeout)
        result: dict[str, tuple[str, str]] | None = clamd.scan_stream(reader, chunk_size=CHUNK_SIZE)
        return result

    def _ask_version(self) -> str:
        clamd = pyclamd.ClamdNetworkSocket(self._host, self._port, timeout=VERSION_TIMEOUT)
        return str(clamd.version())

    async def signatures(self) -> ClamdVersion | None:
        """clamd's signature database, asked anew at most once every `version_interval`
        seconds; None until clamd has answered. A failed `VERSION` only logs: the scan's
        verdict never depends on it, and the last answer stands."""
        now = time.monotonic()
        if self._version_asked is not None and now - self._version_asked < self._version_interval:
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
        return self._version

    async def _report_signatures(self) -> None:
        version = await self.signatures()
        if version is None:
            return
        if version.signature_version is not None:
            gauge(SIGNATURE_VERSION, SIGNATURE_VERSION_HELP, version.signature_version)
        age = version.age_seconds(datetime.now(UTC))
        if age is not None:
            # A build "in the future" is clock skew (a gauge may not be negative): brand new.
            gauge(SIGNATURE_AGE, SIGNATURE_AGE_HELP, max(0.0, age))

    @activity.defn(name="scan_object")
    async def scan(self, ref: ScopedRef) -> ScanResult:
        """Stream the object to clamd. Errors raise, so Temporal retries; never 'clean'."""
        refuse_outside(self._places, ref.bucket, ref.key, ref.tenant_id, ref.file_id)
        return await self.verdict(
            provider_named(self._providers, ref.provider), ref.bucket, ref.key
        )

    async def verdict(self, provider: StorageProvider, bucket: str, key: str) -> ScanResult:
        """clamd's verdict on an object of `provider` (an upload's spooled copy, too)."""
        reader = _StreamReader(provider.read(bucket, key), asyncio.get_running_loop())
        await self._report_signatures()
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
            raise OBJECT_NOT_FOUND(f"object {bucket}/{key} not found") from None
        except (pyclamd.ConnectionError, OSError) as exc:
            # clamd down or the connection broke: retryable, the file stays unscanned.
            count(SCANS, SCANS_HELP, verdict="clamd-unavailable")
            raise SCANNER_UNAVAILABLE(f"clamd unavailable: {exc}") from exc
        if result is None:
            count(SCANS, SCANS_HELP, verdict="clean")
            return ScanResult(clean=True)
        status, detail = result.get("stream", ("ERROR", "no result for the stream"))
        if status == "FOUND":
            if detail.startswith(LIMIT_SIGNATURE_PREFIX):
                count(SCANS, SCANS_HELP, verdict="over-limit")
                raise SCAN_LIMIT_EXCEEDED(f"clamd could not scan the whole file: {detail}")
            count(SCANS, SCANS_HELP, verdict="infected")
            return ScanResult(clean=False, signature=detail)
        count(SCANS, SCANS_HELP, verdict="error")
        raise SCAN_ERROR(f"clamd error: {detail}")
