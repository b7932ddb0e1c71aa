"""file_upload_workflow: check, scan, store and process an uploaded file."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import Priority
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        BegunUpload,
        DatabaseActivities,
        FileProcessedInput,
        FileProcessingInput,
        FileRejectedInput,
        TenantRecord,
        UploadCheck,
        UploadCheckInput,
    )
    from ferry.activities.inspect import InspectActivities, Inspection, InspectRequest
    from ferry.activities.media_payloads import Validation
    from ferry.contracts.convert import build
    from ferry.contracts.enums import RejectionReason
    from ferry.contracts.errors import OBJECT_NOT_FOUND, TENANT_NOT_FOUND
    from ferry.contracts.events import Event, FileProcessed, FileRejected, PublishedThumbnail
    from ferry.contracts.layout import upload_key_refusal
    from ferry.contracts.plans import FAIRNESS_WEIGHT
    from ferry.contracts.storage import StorageRef, Thumbnail
    from ferry.contracts.workflows import FILE_UPLOAD as WORKFLOW
    from ferry.contracts.workflows import FileUploadInput
    from ferry.workflows.common import answer, tenant_policy
    from ferry.workflows.upload_earlier import UploadSteps
    from ferry.workflows.upload_steps import (
        LOCAL_MEDIA_MAX_BYTES,
        LOCAL_MOVE_MAX_BYTES,
        PROVIDER_RETRY,
        REFUSALS,
        SCAN_RETRY,
        STEP_FAILED,
        CopyWorker,
        Rejection,
        analysis,
        as_announced,
        holds_copy,
        infected,
        metadata,
        move,
        permanent,
        read_upload,
        refused_location,
        thumbnails,
        unreadable,
    )

SOURCE = "ferry.file-upload"
QUARANTINE_BUCKET = "ferry-quarantine"
LOCAL_SHORT_STEPS = "short-steps-as-local-activities"  # a patch: see `run`
# A patch: the upload's location is checked before its object is read, a refused one
# (and an empty object) ends as `file.rejected` without touching the object.
LOCATION_CHECKED = "upload-location-checked"
# A patch: one activity reads the upload once (size, SHA-256, clamd, type and headers)
# into a copy on its worker, and that worker's own task queue takes the media steps.
ONE_PASS = "one-pass-inspection"
# A patch that stands for the three above: a new run records one marker (and one update
# of the `TemporalChangeVersion` search attribute, which the SDK adds to each) for all.
PATCHES_MERGED = "upload-patches-merged"
# A patch that stands for all the above, and moves a small original into the tenant's
# bucket as a local activity (`LOCAL_MOVE_MAX_BYTES`).
SMALL_MOVES_LOCAL = "small-moves-local"
# A patch that stands for all the above, and gives the analysis its deadline as the
# activity's schedule-to-close timeout instead of a timer that races it (a timer started
# and cancelled per upload: about 7 ms of the Temporal server's CPU, `make
# bench-orchestration`).
DEADLINE_ON_ACTIVITY = "analysis-deadline-on-activity"
# A patch that stands for all the above, and runs a small upload's media steps as local
# activities when the workflow's own worker holds its copy (`LOCAL_MEDIA_MAX_BYTES`):
# three activity tasks and about two workflow tasks fewer per upload through the server.
MEDIA_STEPS_HERE = "media-steps-local-on-the-copys-worker"


@dataclass
class FileUploadResult:
    status: str  # "processed" or "rejected"
    storage: StorageRef
    sha256: str | None = None
    size_bytes: int | None = None
    content_type: str | None = None
    reason: str | None = None
    detail: str | None = None
    signature: str | None = None
    thumbnails: list[Thumbnail] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    analysis: dict[str, str] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)


# Outside the sandbox: each run in it re-imports its module and wraps every activation,
# about half of this workflow's CPU on the worker (a recorded upload replays in 53-61 ms
# sandboxed, 25-30 ms without). Uploads are the hot path; the sandbox's checks still
# hold, as the replay tests run every workflow, this one too, inside it.
@workflow.defn(name=WORKFLOW, sandboxed=False)
class FileUploadWorkflow(UploadSteps):
    """Turns one uploaded object into a processed file, or a rejected one in quarantine.

    Steps: record the file as processing; check the tenant's plan and quota;
    fingerprint (size and SHA-256 against the announced ones); scan with clamd,
    failing closed; validate the content (type sniffed against declared type and
    extension, pixel count, integrity); move the original into the tenant's bucket; then in
    parallel thumbnails, metadata and AI analysis (analysis races a deadline and
    is recorded as `timed_out` when late); record the result and emit
    `file.processed`. Any rejection moves the object to the quarantine bucket,
    records it and emits `file.rejected`.

    Queries: `progress` (the current stage). Current details show the stage.
    """

    def __init__(self) -> None:
        self._local = False
        self._checked = False
        self._one_pass = False
        self._local_moves = False
        self._deadline_on_activity = False
        self._media_here = False
        # The tenant's plan's weight on the upload's activities (task queue fairness).
        self._priority = Priority.default

    @workflow.run
    async def run(self, upload: FileUploadInput) -> FileUploadResult:
        # Database steps and the event are short: local activities, which cost
        # no round trip through the server. Histories from before run them as
        # ordinary activities and replay that way.
        if workflow.patched(MEDIA_STEPS_HERE):
            self._local = self._checked = self._one_pass = self._local_moves = True
            self._deadline_on_activity = self._media_here = True
        elif workflow.patched(DEADLINE_ON_ACTIVITY):
            self._local = self._checked = self._one_pass = self._local_moves = True
            self._deadline_on_activity = True
        elif workflow.patched(SMALL_MOVES_LOCAL):
            self._local = self._checked = self._one_pass = self._local_moves = True
        elif workflow.patched(PATCHES_MERGED):
            self._local = self._checked = self._one_pass = True
        else:
            self._local = workflow.patched(LOCAL_SHORT_STEPS)
            self._checked = workflow.patched(LOCATION_CHECKED)
            self._one_pass = self._checked and workflow.patched(ONE_PASS)
        self._enter("recording")
        check: UploadCheck | None = None
        if self._one_pass:
            # The tenant, the file recorded as processing and the plan's check: one step.
            tenant, check = await self._begin(upload)
            self._priority = Priority(fairness_weight=FAIRNESS_WEIGHT[tenant.plan])
        else:
            tenant = await self._tenant(upload.tenant_id)
            await self._db(
                DatabaseActivities.record_file_processing, FileProcessingInput.of(upload)
            )
        try:
            if self._checked:
                # The key's rule needs no settings; the activities check the bucket too.
                problem = upload_key_refusal(upload.tenant_id, upload.file_id, upload.storage.key)
                if problem:
                    raise refused_location(problem)
            await self._check_plan(upload, check)
            if self._one_pass:
                inspection = await self._inspect(upload, tenant)
                assert inspection.validation is not None
                validation = inspection.validation
            else:
                inspection = None
                await self._fingerprint(upload)
                # Scan before judging the content: an infected file is reported as
                # infected whatever its type or name.
                self._enter("scanning")
                scan = await self._scan(upload)
                if not scan.clean:
                    raise infected(scan)
                validation = await self._validate(upload, tenant)
        except Rejection as rejection:
            return await self._reject(upload, rejection)
        return await self._accept(upload, tenant, validation, inspection)

    async def _begin(self, upload: FileUploadInput) -> tuple[TenantRecord, UploadCheck]:
        begun: BegunUpload = await self._db(
            DatabaseActivities.begin_upload, FileProcessingInput.of(upload)
        )
        if not begun.found or begun.tenant is None or begun.check is None:
            raise TENANT_NOT_FOUND(f"unknown tenant {upload.tenant_id!r}")
        return begun.tenant, begun.check

    async def _check_plan(self, upload: FileUploadInput, check: UploadCheck | None) -> None:
        """The tenant's status, per-file limit and quota (asked now, unless `check` says)."""
        self._enter("checking plan")
        if check is None:
            check = await self._db(
                DatabaseActivities.check_upload,
                UploadCheckInput(upload.tenant_id, upload.size_bytes),
            )
        if not check.allowed:
            assert check.refusal is not None
            raise Rejection(REFUSALS[check.refusal], check.detail or str(check.refusal))

    async def _inspect(self, upload: FileUploadInput, tenant: TenantRecord) -> Inspection:
        """One pass over the bytes: the announced size and SHA-256, clamd's verdict, then the
        content checks, judged in that order (an infected file is reported as infected
        whatever its type or name)."""
        self._enter("inspecting")
        try:
            # It heartbeats at least every 15 s while clamd scans: a dead worker's
            # attempt is retried on another within half a minute.
            found: Inspection = await read_upload(
                True,
                InspectActivities.inspect_upload,
                build(
                    InspectRequest,
                    upload,
                    source=upload.storage,
                    max_file_bytes=tenant.max_file_bytes,
                ),
                timeout=timedelta(minutes=30),
                heartbeat=timedelta(seconds=30),
                retry=SCAN_RETRY,
                priority=self._priority,
            )
        except ActivityError as err:
            rejection = unreadable(upload, err)
            if rejection is None:
                raise
            raise rejection from err
        as_announced(upload, found.sha256, found.size_bytes, empty_refused=True)
        if found.scan is not None and not found.scan.clean:
            raise infected(found.scan)
        validation = found.validation
        assert validation is not None
        if not validation.ok:
            assert validation.reason is not None
            raise Rejection(RejectionReason(validation.reason), validation.detail)
        return found

    async def _accept(
        self,
        upload: FileUploadInput,
        tenant: TenantRecord,
        validation: Validation,
        inspection: Inspection | None,
    ) -> FileUploadResult:
        self._enter("storing")
        stored = await self._store_original(upload, tenant)
        self._enter("processing")
        owner = self._owner(upload)
        # The inspecting worker's copy, and the SHA-256 it found (histories from before: none).
        spooled = inspection.spool if inspection else None
        copy = CopyWorker.of(spooled, upload.copy_worker_wait_seconds)
        if copy is not None and self._media_here and upload.size_bytes <= LOCAL_MEDIA_MAX_BYTES:
            copy = await holds_copy(copy)
        sha256 = inspection.sha256 if inspection else None
        deadline = upload.analysis_deadline_seconds
        made, found, analysed = await asyncio.gather(
            thumbnails(stored, upload.file_id, owner, copy, self._priority),
            metadata(stored, owner, copy, sha256, self._priority),
            analysis(
                stored,
                validation.content_type,
                deadline,
                owner,
                copy,
                self._priority,
                deadline_on_activity=self._deadline_on_activity,
            ),
        )
        public = {"filename": upload.filename, **found.public}
        processed = FileProcessedInput(
            tenant_id=upload.tenant_id,
            file_id=upload.file_id,
            sha256=found.sha256,
            size_bytes=found.size_bytes,
            content_type=validation.content_type,
            storage=stored,
            thumbnails=made,
            metadata=public,
            analysis=analysed,
        )
        self._enter("recording result")
        await self._db(DatabaseActivities.record_file_processed, processed)
        self._enter("publishing")
        announced = build(
            FileProcessed,
            processed,
            storage=StorageRef(stored.provider, stored.bucket, stored.key),
            thumbnails=[build(PublishedThumbnail, t) for t in made],
        )
        event_id = await self._emit(upload, announced)
        self._enter("processed")
        return build(FileUploadResult, processed, status="processed", events=[event_id])

    async def _store_original(self, upload: FileUploadInput, tenant: TenantRecord) -> StorageRef:
        """Into the tenant's bucket on its provider; if that provider keeps failing, on the
        next configured one (the database records where the file is, and reads follow it)."""
        key, primary = f"files/{upload.file_id}/original", str(tenant.storage_provider)
        stored = await self._store_on(primary, upload, tenant.storage_bucket, key)
        if isinstance(stored, StorageRef):
            return stored
        policy = await tenant_policy()
        for provider in policy.failover_for(primary):
            self._enter(f"storing: {primary} failed, trying {provider}")
            workflow.logger.warning("%s failed for %s; failing over to %s", primary, key, provider)
            stored = await self._store_on(provider, upload, tenant.storage_bucket, key)
            if isinstance(stored, StorageRef):
                return stored
        raise stored

    async def _store_on(
        self, provider: str, upload: FileUploadInput, bucket: str, key: str
    ) -> StorageRef | Exception:
        """The upload moved to `provider`, or the failure another provider might not have."""
        try:
            return await move(
                upload.storage,
                bucket,
                key,
                provider,
                PROVIDER_RETRY,
                owner=self._owner(upload),
                priority=self._priority,
                local=self._local_moves and upload.size_bytes <= LOCAL_MOVE_MAX_BYTES,
            )
        except STEP_FAILED as err:
            if permanent(err):
                raise
            return err

    async def _reject(self, upload: FileUploadInput, rejection: Rejection) -> FileUploadResult:
        stored: StorageRef | None = None
        if rejection.quarantine:
            self._enter("quarantining")
            try:
                stored = await move(
                    upload.storage,
                    QUARANTINE_BUCKET,
                    f"quarantine/{upload.tenant_id}/{upload.file_id}",
                    owner=self._owner(upload),
                    priority=self._priority,
                )
            except ActivityError as err:
                if not OBJECT_NOT_FOUND.caused(err):
                    raise
                # There was never an object to quarantine.
        await self._db(
            DatabaseActivities.record_file_rejected,
            build(
                FileRejectedInput,
                upload,
                reason=rejection.reason,
                detail=rejection.detail,
                signature=rejection.signature,
                storage=stored,
                quarantined=stored is not None,
            ),
        )
        event_id = await self._emit(
            upload,
            FileRejected(
                file_id=upload.file_id,
                reason=str(rejection.reason),
                detail=rejection.detail,
                signature=rejection.signature,
            ),
        )
        self._enter(f"rejected: {rejection.reason}")
        return FileUploadResult(
            status="rejected",
            storage=stored or upload.storage,
            reason=str(rejection.reason),
            detail=rejection.detail,
            signature=rejection.signature,
            events=[event_id],
        )

    async def _emit(self, upload: FileUploadInput, event: Event) -> str:
        return await answer(upload, event, source=SOURCE, local_activity=self._local)
