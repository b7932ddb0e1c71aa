"""file_migration_workflow: move a tenant's objects to another bucket or provider, verified."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        DatabaseActivities,
        FinishMigrationInput,
        MigrationItem,
        MigrationItemsInput,
        MigrationItemsQuery,
        MigrationProgressRecord,
        RollbackMigrationInput,
        StartMigrationInput,
    )
    from ferry.activities.migration import (
        CopyBatch,
        CopyResult,
        DeleteBatch,
        ListedObject,
        Listing,
        ListRequest,
        MigrationActivities,
    )
    from ferry.contracts.convert import build
    from ferry.contracts.enums import MigrationItemState, MigrationState
    from ferry.contracts.errors import PERMANENT
    from ferry.contracts.events import (
        FileMigrationCompleted,
        FileMigrationFailed,
        MigrationOutcome,
    )
    from ferry.contracts.layout import tenant_bucket
    from ferry.contracts.storage import BucketRef
    from ferry.contracts.workflows import FILE_MIGRATION as WORKFLOW
    from ferry.contracts.workflows import MigrationProgress, MigrationRequest
    from ferry.workflows.common import STORAGE_RETRY, answer, call_db, failure_detail

# A patch: a tenant's bucket is exactly `ferry-{tenant}` (on any provider). Runs from
# before also took `ferry-{tenant}-*`, which is another tenant's bucket (tenant
# `acme-archive` owns `ferry-acme-archive`).
OWN_BUCKET_ONLY = "own-bucket-only"
SOURCE = "ferry.file-migration"
# Copy batches running at once; a batch is `batch_size` objects.
MAX_BATCHES_IN_FLIGHT = 4
# An object the target held already (same SHA-256): a rollback leaves it where it was.
PRESENT_BEFORE = "in the target before the migration"
# A batch that keeps failing is given up after these attempts; the migration rolls back.
COPY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
    non_retryable_error_types=PERMANENT,
)


@dataclass
class MigrationResult:
    status: str  # completed | rolled_back | refused
    progress: MigrationProgress
    detail: str | None = None
    events: list[str] = field(default_factory=list)


@workflow.defn(name=WORKFLOW)
class FileMigrationWorkflow:
    """Copies every object under a prefix from one bucket to another, possibly on another
    provider, and points the tenant's files at the copies.

    First it lists the source in pages and records each object as pending (the
    totals of the progress). Then it copies the pending objects in batches of
    `batch_size`, at most four batches at once; each copy is verified by SHA-256
    before the database points at it, and objects already verified are skipped,
    so a resumed or repeated migration writes nothing twice. With `delete_source`,
    the source objects go once the whole migration is verified. The run continues
    as new before its history grows large.

    If a batch fails past its retry policy, the migration rolls back: files point
    at the source again, the copies are deleted, and `file.migration_failed` says
    `rolled_back: true`.

    Queries: `progress`. Current details show files and bytes done of the total.
    """

    def __init__(self) -> None:
        self._progress = MigrationProgress()

    @workflow.query
    def progress(self) -> MigrationProgress:
        return self._progress

    def _show(self, phase: str | None = None) -> None:
        p = self._progress
        if phase is not None:
            p.phase = phase
        workflow.set_current_details(
            f"{p.phase}: {p.files_done} of {p.files_total} files, "
            f"{p.bytes_done} of {p.bytes_total} bytes"
        )

    @workflow.run
    async def run(self, request: MigrationRequest) -> MigrationResult:
        source = BucketRef(request.source.provider, request.source.bucket)
        target = BucketRef(request.target.provider, request.target.bucket)
        refusal = _refusal(request, strict=workflow.patched(OWN_BUCKET_ONLY))
        if refusal is not None:
            self._show(f"refused: {refusal}")
            refused = await self._emit(request, FileMigrationFailed, False, refusal)
            return MigrationResult("refused", self._progress, refusal, [refused])
        if request.progress is None:
            await call_db(
                DatabaseActivities.start_file_migration,
                build(
                    StartMigrationInput,
                    request,
                    source_provider=source.provider,
                    source_bucket=source.bucket,
                    target_provider=target.provider,
                    target_bucket=target.bucket,
                ),
            )
            self._progress.phase = "listing"
        else:
            self._progress = request.progress
        try:
            if self._progress.phase == "listing":
                await self._list(request, source)
            if self._progress.phase == "copying":
                await self._copy(request, source, target)
        except ActivityError as err:
            return await self._roll_back(request, target, failure_detail(err))
        if request.delete_source:
            await self._delete_verified(request, source)
        await call_db(
            DatabaseActivities.finish_file_migration,
            FinishMigrationInput(request.tenant_id, request.migration_id, MigrationState.COMPLETED),
        )
        self._show("completed")
        completed = await self._emit(request, FileMigrationCompleted, False, None)
        return MigrationResult("completed", self._progress, events=[completed])

    async def _list(self, request: MigrationRequest, source: BucketRef) -> None:
        """Record every source object as pending: the totals the progress counts towards."""
        p = self._progress
        while True:
            self._show("listing")
            listing: Listing = await workflow.execute_activity_method(
                MigrationActivities.list_objects,
                ListRequest(source, request.prefix or "", p.page_token, page_size=1000),
                start_to_close_timeout=timedelta(minutes=2),
                retry_policy=STORAGE_RETRY,
            )
            if listing.objects:
                await self._record(request, [_pending(o) for o in listing.objects])
            p.page_token = listing.next_token
            if p.page_token is None:
                p.phase = "copying"
                return
            self._continue_if_long(request)

    async def _copy(self, request: MigrationRequest, source: BucketRef, target: BucketRef) -> None:
        """Copy the pending objects in batches, a bounded number at once."""
        p = self._progress
        while True:
            self._show("copying")
            page = await call_db(
                DatabaseActivities.list_migration_items,
                MigrationItemsQuery(
                    request.tenant_id,
                    request.migration_id,
                    states=[MigrationItemState.PENDING, MigrationItemState.COPIED],
                    after_key=p.after_key,
                    limit=request.batch_size * MAX_BATCHES_IN_FLIGHT,
                ),
            )
            if not page.items:
                return
            objects = [ListedObject(i.source_key, i.size_bytes or 0, i.file_id) for i in page.items]
            batches = [
                objects[at : at + request.batch_size]
                for at in range(0, len(objects), request.batch_size)
            ]
            # Write-ahead: whatever happens next, a rollback knows these may be in the target.
            await self._record(request, [_in_flight(o) for o in objects])
            results = await asyncio.gather(
                *(self._copy_batch(source, target, batch) for batch in batches),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, CopyResult):
                    await self._record(request, [_verified(o) for o in result.objects])
                    p.written += result.written
                    p.skipped += len(result.objects) - result.written
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                raise failed
            p.after_key = page.items[-1].source_key
            if page.next_after_key is None:
                return
            self._continue_if_long(request)

    async def _copy_batch(
        self, source: BucketRef, target: BucketRef, objects: list[ListedObject]
    ) -> CopyResult:
        result: CopyResult = await workflow.execute_activity_method(
            MigrationActivities.copy_objects,
            CopyBatch(source, target, objects),
            start_to_close_timeout=timedelta(hours=2),
            # Heartbeats come with every chunk: a dead worker's batch moves on within 20 s.
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=COPY_RETRY,
        )
        return result

    async def _record(self, request: MigrationRequest, items: list[MigrationItem]) -> None:
        progress: MigrationProgressRecord = await call_db(
            DatabaseActivities.record_migration_items,
            MigrationItemsInput(request.tenant_id, request.migration_id, items),
        )
        p = self._progress
        p.files_total, p.bytes_total = progress.files_total, progress.bytes_total
        p.files_done, p.bytes_done = progress.files_done, progress.bytes_done
        p.files_failed = progress.files_failed

    def _continue_if_long(self, request: MigrationRequest) -> None:
        info = workflow.info()
        if (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= request.history_limit
        ):
            self._progress.runs += 1
            workflow.continue_as_new(dataclasses.replace(request, progress=self._progress))

    async def _delete_verified(self, request: MigrationRequest, source: BucketRef) -> None:
        """The sources of verified copies, once the whole migration is verified."""
        self._show("cleaning up")
        await self._delete_items(
            request, source, MigrationItemState.VERIFIED, lambda item: item.source_key
        )

    async def _roll_back(
        self, request: MigrationRequest, target: BucketRef, detail: str
    ) -> MigrationResult:
        """Files point at the source again; every copy in the target is deleted."""
        self._show("rolling back")
        await call_db(
            DatabaseActivities.rollback_file_migration,
            RollbackMigrationInput(request.tenant_id, request.migration_id, detail),
        )
        # The copies, but never an object the target held before the migration began.
        await self._delete_items(
            request,
            target,
            MigrationItemState.ROLLED_BACK,
            lambda item: (
                None if item.detail == PRESENT_BEFORE else item.target_key or item.source_key
            ),
        )
        self._progress.files_done = self._progress.bytes_done = 0
        self._show("rolled back")
        failed = await self._emit(request, FileMigrationFailed, True, detail)
        return MigrationResult("rolled_back", self._progress, detail, [failed])

    async def _delete_items(
        self,
        request: MigrationRequest,
        bucket: BucketRef,
        state: MigrationItemState,
        key_of: Callable[[MigrationItem], str | None],
    ) -> None:
        """Delete, from `bucket`, the key `key_of` names for each item in `state`."""
        after: str | None = None
        while True:
            page = await call_db(
                DatabaseActivities.list_migration_items,
                MigrationItemsQuery(
                    request.tenant_id, request.migration_id, [state], after, limit=1000
                ),
            )
            keys = [key for key in map(key_of, page.items) if key]
            if keys:
                await workflow.execute_activity_method(
                    MigrationActivities.delete_objects,
                    DeleteBatch(bucket, keys),
                    start_to_close_timeout=timedelta(minutes=30),
                    heartbeat_timeout=timedelta(minutes=1),
                    retry_policy=STORAGE_RETRY,
                )
            after = page.next_after_key
            if after is None:
                return

    async def _emit(
        self,
        request: MigrationRequest,
        outcome: type[MigrationOutcome],
        rolled_back: bool,
        detail: str | None,
    ) -> str:
        p = self._progress
        return await answer(
            request,
            outcome(
                migration_id=request.migration_id,
                files_moved=p.files_done,
                bytes_moved=p.bytes_done,
                files_failed=p.files_failed,
                rolled_back=rolled_back,
                detail=detail,
            ),
            source=SOURCE,
        )


def _refusal(request: MigrationRequest, *, strict: bool = True) -> str | None:
    """Why the request may not run: a tenant migrates only its own bucket, between providers."""
    own = tenant_bucket(request.tenant_id)
    for side, ref in (("source", request.source), ("target", request.target)):
        if strict and ref.bucket != own:
            return f"the {side} bucket {ref.bucket!r} is not the tenant's ({own})"
        if ref.bucket != own and not ref.bucket.startswith(f"{own}-"):
            return f"the {side} bucket {ref.bucket!r} is not the tenant's ({own} or {own}-*)"
    if (request.source.provider, request.source.bucket) == (
        request.target.provider,
        request.target.bucket,
    ):
        return "the source and the target are the same bucket"
    if request.batch_size < 1:
        return "batch_size must be at least 1"
    return None


def _pending(listed: ListedObject) -> MigrationItem:
    return MigrationItem(
        listed.key, MigrationItemState.PENDING, file_id=listed.file_id, size_bytes=listed.size
    )


def _in_flight(listed: ListedObject) -> MigrationItem:
    return MigrationItem(
        listed.key, MigrationItemState.COPIED, file_id=listed.file_id, size_bytes=listed.size
    )


def _verified(copied: Any) -> MigrationItem:
    return MigrationItem(
        copied.key,
        MigrationItemState.VERIFIED,
        file_id=copied.file_id,
        size_bytes=copied.size,
        sha256=copied.sha256,
        detail=None if copied.written else PRESENT_BEFORE,
    )
