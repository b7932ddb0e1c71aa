"""The rescan's activities: which files older signatures judged, and each one judged again.

`list_outdated` asks the database (migration 0004's function, across tenants,
identifiers and hashes only) for processed files without a verdict under the
current signature version, newest first. `rescan_file` looks at one of them in
its tenant's scope: a verdict recorded meanwhile under the current signatures
(the same bytes uploaded elsewhere, or scanned by another run) stands without
reading the file; otherwise the object is streamed to clamd once, hashed as it
passes, and the verdict recorded. What to do with an infected file is the
workflow's (`file_quarantine_workflow`).
"""

# No `from __future__ import annotations`: the workflow decodes these dataclasses
# inside the Temporal sandbox (see ferry/activities/database/tenants.py).

import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import Priority, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from ferry.activities.clamd_version import ClamdVersion
from ferry.activities.metrics import count
from ferry.activities.scan import ScanActivities
from ferry.activities.storage import provider_named
from ferry.contracts.enums import FileState
from ferry.contracts.errors import OBJECT_NOT_FOUND, SCAN_LIMIT_EXCEEDED, SCANNER_UNAVAILABLE
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import (
    OPERATIONS_TENANT,
    RESCAN,
    OutdatedFile,
    RescanCursor,
    RescanRequest,
    rescan_id,
    search_attributes,
)
from ferry.db import tenant_scope
from ferry.db.verdicts import outdated_files
from ferry.storage import StorageProvider

log = logging.getLogger(__name__)

# What `rescan_file` found.
CLEAN = "clean"
INFECTED = "infected"
CURRENT = "current"  # judged under the current signatures meanwhile: not read
GONE = "gone"  # deleted, no longer processed, or its object missing
UNSCANNABLE = "unscannable"  # over clamd's limits: never judged clean, left as it is
RESCANS = "ferry_rescans"
RESCANS_HELP = (
    "Files the rescan judged again, by outcome: clean, infected (then quarantined), current"
    " (judged meanwhile, not read), gone, unscannable."
)
# The rescan's tasks wait behind everything else on their queue (priority 1 is the first,
# 3 the default): new uploads go first, the rescan takes what is left.
RESCAN_PRIORITY = Priority(priority_key=5, fairness_key=OPERATIONS_TENANT)


@dataclass
class OutdatedQuery:
    signature_version: int
    limit: int
    after: RescanCursor | None = None
    tenant_ids: list[str] | None = None


@dataclass
class RescanOutcome:
    """What one file's rescan found, and under which signatures."""

    status: str
    signature_version: int | None = None
    signature: str | None = None
    sha256: str | None = None
    storage: StorageRef | None = None
    # When its bytes were judged before this rescan (the file's processing, if no verdict).
    previous_verdict_at: datetime | None = None
    detail: str | None = None


class RescanActivities:
    def __init__(
        self,
        engine: AsyncEngine,
        sessionmaker: async_sessionmaker[AsyncSession],
        scanner: ScanActivities,
        providers: Mapping[str, StorageProvider],
    ) -> None:
        self._engine = engine
        self._sessionmaker = sessionmaker
        self._scanner = scanner  # clamd, and the verdicts it records
        self._providers = dict(providers)

    @activity.defn(name="current_signatures")
    async def current_signatures(self) -> ClamdVersion:
        """clamd's engine and signature version, asked now (clamd down: retried)."""
        version = await self._scanner.signatures(fresh=True)
        if version is None:
            raise SCANNER_UNAVAILABLE("clamd did not say which signatures it scans with")
        return version

    @activity.defn(name="list_outdated")
    async def list_outdated(self, query: OutdatedQuery) -> list[OutdatedFile]:
        """The next page of files without a verdict under `signature_version`, newest first."""
        return await outdated_files(
            self._engine,
            query.signature_version,
            after=query.after,
            limit=query.limit,
            only_tenants=query.tenant_ids,
        )

    @activity.defn(name="rescan_file")
    async def rescan_file(self, target: OutdatedFile) -> RescanOutcome:
        """Judge one file again under clamd's current signatures (safe to repeat)."""
        outcome = await self._rescan(target)
        count(RESCANS, RESCANS_HELP, outcome=outcome.status)
        return outcome

    async def _rescan(self, target: OutdatedFile) -> RescanOutcome:
        async with tenant_scope(self._sessionmaker, target.tenant_id) as db:
            row = await db.files.get(target.file_id)
            if row is None or row.state != FileState.PROCESSED:
                return RescanOutcome(GONE, detail="no longer a processed file")
            storage = StorageRef(row.storage_provider, row.storage_bucket, row.storage_key)
            sha256, processed_at = row.sha256, row.processed_at
        # Asked now: the verdict is recorded under the version that gives it.
        version = await self._scanner.signatures(fresh=True)
        signature_version = version.signature_version if version else None
        before = await self._scanner.recorded(sha256) if sha256 else None
        previous = before.scanned_at if before else (target.verdict_at or processed_at)
        outcome = RescanOutcome(
            GONE, signature_version, sha256=sha256, storage=storage, previous_verdict_at=previous
        )
        if before is not None and signature_version is not None:
            if before.signature_version == signature_version:  # judged meanwhile
                outcome.status = CURRENT
                return outcome
        digest = hashlib.sha256()
        provider = provider_named(self._providers, storage.provider)

        async def hashed() -> AsyncIterator[bytes]:
            async for chunk in provider.read(storage.bucket, storage.key):
                digest.update(chunk)
                yield chunk

        where = f"{storage.provider}:{storage.bucket}/{storage.key}"
        try:
            result = await self._scanner.stream(hashed(), where, version)
        except ApplicationError as exc:
            if OBJECT_NOT_FOUND.caused(exc):  # deleted since it was listed
                outcome.detail = f"no object at {where}"
                return outcome
            if SCAN_LIMIT_EXCEEDED.caused(exc):
                outcome.status, outcome.detail = UNSCANNABLE, exc.message
                return outcome
            raise  # clamd unavailable or failing: Temporal retries
        outcome.sha256 = digest.hexdigest()
        if sha256 is not None and outcome.sha256 != sha256:
            log.warning("%s: the object's SHA-256 is not the recorded one", where)
        await self._scanner.record(outcome.sha256, version, result)
        outcome.status = CLEAN if result.clean else INFECTED
        outcome.signature = result.signature
        return outcome


class RescanStarter:
    """Starts the rescan of a signature version the first time a worker's clamd reports it.

    One run per version (its workflow ID names the version), whichever worker sees it
    first, and never again for that version while Temporal remembers the run.
    """

    def __init__(self, client: Client, task_queue: str, request: RescanRequest) -> None:
        self._client = client
        self._task_queue = task_queue
        self._request = request

    async def __call__(self, version: ClamdVersion) -> None:
        if version.signature_version is None:
            return
        workflow_id = rescan_id(version.signature_version)
        try:
            await self._client.start_workflow(
                RESCAN,
                self._request,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=search_attributes(OPERATIONS_TENANT),
                static_summary=f"rescan: verdicts older than signature version "
                f"{version.signature_version}",
            )
        except WorkflowAlreadyStartedError:
            return  # another worker saw this version first, or it was rescanned already
        log.info("started %s for signature version %s", workflow_id, version.signature_version)
