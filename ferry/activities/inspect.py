"""An upload's first look in one pass over its bytes: size and SHA-256, clamd, type and headers.

`inspect_upload` reads the uploaded object from storage once, into a spooled copy
on this worker's disk, hashing and counting as the bytes pass. clamd scans that
copy (INSTREAM) and the checks of `validate_upload` (type sniffed against the
declared type and the extension, pixel count, integrity) run on it. A clean, valid
upload's copy stays for its thumbnails, metadata and analysis, which the workflow
sends to this worker's own task queue (`SpooledCopy.task_queue`, as samples-python's
`worker_specific_task_queues` does). The copy is a cache, never the source of
truth: the steps that find no copy read the stored original instead.

Scanning still fails closed: a file is clean only by clamd's clean verdict on the
copy of all its bytes, and a copy exists only once every byte was read.
"""

# No `from __future__ import annotations`: the workflow decodes these dataclasses
# inside the Temporal sandbox (see ferry/activities/database/tenants.py).

import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from temporalio import activity

from ferry.activities.heartbeat import heartbeating
from ferry.activities.media import MediaActivities
from ferry.activities.media_payloads import Validation, ValidationRequest
from ferry.activities.scan import ScanActivities, ScanResult
from ferry.activities.spool import FOLLOWERS, SpoolStore, not_found
from ferry.activities.storage import provider_named, refuse_outside
from ferry.contracts.convert import build
from ferry.contracts.layout import DEFAULT_PLACES, Places
from ferry.contracts.storage import StorageRef
from ferry.storage import ObjectNotFound, StorageProvider


@dataclass
class InspectRequest:
    """An upload to read once: where it is, what its event says of it, its tenant's limit."""

    source: StorageRef
    tenant_id: str
    file_id: str
    filename: str
    declared_content_type: str
    size_bytes: int
    max_file_bytes: int
    sha256: str | None = None  # as announced, when it was


@dataclass
class SpooledCopy:
    """Where an upload's copy is: the task queue of the worker that holds it, and its name."""

    task_queue: str
    spool_id: str


@dataclass
class Inspection:
    """What one pass found, as far as it went.

    `sha256` is None when the object's size already differs from the announced one
    (it was not read); `scan` is None when the bytes were refused before clamd saw
    them; `validation` is None unless the scan was clean; `spool` is set only for a
    clean, valid upload.
    """

    size_bytes: int
    sha256: str | None = None
    scan: ScanResult | None = None
    validation: Validation | None = None
    spool: SpooledCopy | None = None


class InspectActivities:
    """The one-pass inspection, with this worker's scanner, media checks and spool."""

    def __init__(
        self,
        providers: Mapping[str, StorageProvider],
        spool: SpoolStore,
        scanner: ScanActivities,
        media: MediaActivities,
        places: Places = DEFAULT_PLACES,
    ) -> None:
        self._providers = dict(providers)
        self._spool = spool
        self._places = places
        self._scanner = scanner
        self._media = media

    @activity.defn(name="holds_copy")
    async def holds_copy(self, spool_id: str) -> bool:
        """Whether this worker holds the copy `spool_id` (run as a local activity: whether
        the workflow's own worker does, so that its media steps may run there too)."""
        return self._spool.has(spool_id)

    @activity.defn(name="inspect_upload")
    async def inspect_upload(self, request: InspectRequest) -> Inspection:
        """Size, SHA-256, clamd's verdict and the content checks, reading the object once.

        Stops at the first finding that decides the upload: a size other than the
        announced one (before reading), a SHA-256 other than the announced one, an
        infected file; clamd unavailable or failing raises (Temporal retries the
        whole pass), a file over clamd's limits raises `ScanLimitExceeded`.
        """
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id, request.file_id)
        provider = provider_named(self._providers, ref.provider)
        info = await provider.head(ref.bucket, ref.key)
        if info is None:
            raise not_found(ref)
        if info.size != request.size_bytes or info.size == 0:
            return Inspection(info.size)
        self._spool.evict_stale()
        spool_id = self._spool.new_id(request.file_id)
        digest = hashlib.sha256()
        inspection = Inspection(0)

        async def counted() -> AsyncIterator[bytes]:
            async for chunk in provider.read(ref.bucket, ref.key):
                digest.update(chunk)
                inspection.size_bytes += len(chunk)
                yield chunk

        # One ticker for the whole pass (reading, clamd, the checks): a phase's own
        # ticker begins anew, and two phases' silences could add up to the timeout.
        async with heartbeating(lambda: inspection.size_bytes):
            kept = False
            try:
                try:
                    await self._spool.write(spool_id, counted())
                except ObjectNotFound:
                    raise not_found(ref) from None
                inspection.sha256 = digest.hexdigest()
                announced = request.sha256.lower() if request.sha256 else None
                if inspection.size_bytes != request.size_bytes or announced not in (
                    None,
                    inspection.sha256,
                ):
                    return inspection
                # The copy is read through the spool's own storage: an upload can never name it.
                copy = self._spool.ref(spool_id)
                # By the SHA-256 just computed from the bytes: a verdict on the same bytes
                # under clamd's current signatures stands, and a new one is recorded.
                inspection.scan = await self._scanner.verdict(
                    self._spool.storage, copy.bucket, copy.key, sha256=inspection.sha256
                )
                if not inspection.scan.clean:
                    return inspection
                inspection.validation = await self._media.validate_upload(
                    build(
                        ValidationRequest,
                        request,
                        source=ref,
                        size_bytes=inspection.size_bytes,
                        spool=spool_id,
                    )
                )
                if inspection.validation.ok:
                    self._spool.keep_for(spool_id, FOLLOWERS)
                    inspection.spool = SpooledCopy(self._spool.task_queue, spool_id)
                    kept = True
                return inspection
            finally:
                if not kept:
                    self._spool.discard(spool_id)


def worker_queue(task_queue: str) -> str:
    """A task queue of this worker process alone, beside `task_queue`."""
    return f"{task_queue}/{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
