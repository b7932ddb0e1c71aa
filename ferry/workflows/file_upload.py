"""file_upload_workflow: check, scan, store and process an uploaded file."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import (
        DatabaseActivities,
        FileProcessedInput,
        FileProcessingInput,
        FileRejectedInput,
        TenantRecord,
        TenantRef,
        UploadCheckInput,
        UploadRefusal,
    )
    from ferry.activities.media import (
        Analysis,
        AnalysisRequest,
        MediaActivities,
        Metadata,
        MetadataRequest,
        ThumbnailRequest,
        ThumbnailSet,
        Validation,
        ValidationRequest,
    )
    from ferry.activities.scan import ScanActivities, ScanResult
    from ferry.activities.storage import Fingerprint, MoveRequest, StorageActivities
    from ferry.contracts.enums import RejectionReason
    from ferry.contracts.errors import (
        LOCATION_REFUSED,
        OBJECT_NOT_FOUND,
        PERMANENT,
        SCAN_LIMIT_EXCEEDED,
        TENANT_NOT_FOUND,
        root_cause,
    )
    from ferry.contracts.events import Event, FileProcessed, FileRejected, PublishedThumbnail
    from ferry.contracts.layout import upload_key_refusal
    from ferry.contracts.storage import ScopedRef, StorageRef, Thumbnail
    from ferry.workflows.common import STORAGE_RETRY, call_db, emit, tenant_policy

WORKFLOW = "file_upload_workflow"
SOURCE = "ferry.file-upload"
QUARANTINE_BUCKET = "ferry-quarantine"
LOCAL_SHORT_STEPS = "short-steps-as-local-activities"  # a patch: see `run`
# A patch: the upload's location is checked before its object is read, a refused one
# (and an empty object) ends as `file.rejected` without touching the object.
LOCATION_CHECKED = "upload-location-checked"
# A tenant's provider that still fails after these attempts is failed over.
PROVIDER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=4,
    non_retryable_error_types=PERMANENT,
)
SCAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=PERMANENT,
)


def workflow_id(tenant_id: str, file_id: str) -> str:
    return f"file-upload/{tenant_id}/{file_id}"


@dataclass
class FileUploadInput:
    """A `file.uploaded` event, as the workflow needs it."""

    event_id: str
    tenant_id: str
    file_id: str
    filename: str
    declared_content_type: str
    size_bytes: int
    storage: StorageRef
    uploaded_by: str
    sha256: str | None = None
    correlation_id: str | None = None
    # How long AI analysis may take before the upload goes on without it.
    analysis_deadline_seconds: float = 60.0


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


class Rejection(Exception):
    """Ends the upload as rejected: not a failure of the workflow."""

    def __init__(
        self,
        reason: RejectionReason,
        detail: str,
        signature: str | None = None,
        *,
        quarantine: bool = True,
    ) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.signature = reason, detail, signature
        # False when the object is not the upload's to move (it names another place).
        self.quarantine = quarantine


def _refused_location(detail: str) -> Rejection:
    return Rejection(RejectionReason.CORRUPT, detail, quarantine=False)


_REFUSALS = {
    UploadRefusal.TOO_LARGE: RejectionReason.TOO_LARGE,
    UploadRefusal.QUOTA_EXCEEDED: RejectionReason.QUOTA_EXCEEDED,
    # A suspended tenant may not add files; the contract has no reason of its
    # own for that, and "the tenant may not take more files now" is the closest.
    UploadRefusal.TENANT_INACTIVE: RejectionReason.QUOTA_EXCEEDED,
}


@workflow.defn(name=WORKFLOW)
class FileUploadWorkflow:
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
        self._stage = "received"
        self._local = False
        self._checked = False

    @workflow.query
    def progress(self) -> str:
        return self._stage

    def _enter(self, stage: str) -> None:
        self._stage = stage
        workflow.set_current_details(f"stage: {stage}")

    @workflow.run
    async def run(self, upload: FileUploadInput) -> FileUploadResult:
        # Database steps and the event are short: local activities, which cost
        # no round trip through the server. Histories from before run them as
        # ordinary activities and replay that way.
        self._local = workflow.patched(LOCAL_SHORT_STEPS)
        self._checked = workflow.patched(LOCATION_CHECKED)
        self._enter("recording")
        tenant = await self._tenant(upload.tenant_id)
        await self._db(
            DatabaseActivities.record_file_processing,
            FileProcessingInput(
                tenant_id=upload.tenant_id,
                file_id=upload.file_id,
                filename=upload.filename,
                declared_content_type=upload.declared_content_type,
                size_bytes=upload.size_bytes,
                storage=upload.storage,
                uploaded_by=upload.uploaded_by,
                sha256=upload.sha256,
                event_id=upload.event_id,
            ),
        )
        try:
            if self._checked:
                # The key's rule needs no settings; the activities check the bucket too.
                problem = upload_key_refusal(upload.tenant_id, upload.file_id, upload.storage.key)
                if problem:
                    raise _refused_location(problem)
            await self._check_plan(upload)
            await self._fingerprint(upload)
            # Scan before judging the content: an infected file is reported as
            # infected whatever its type or name.
            self._enter("scanning")
            scan = await self._scan(upload)
            if not scan.clean:
                raise Rejection(
                    RejectionReason.INFECTED, f"clamd found {scan.signature}", scan.signature
                )
            validation = await self._validate(upload, tenant)
        except Rejection as rejection:
            return await self._reject(upload, rejection)
        return await self._accept(upload, tenant, validation)

    def _upload_ref(self, upload: FileUploadInput) -> ScopedRef:
        """The upload's object, and whose it must be (not said in histories from before)."""
        if not self._checked:
            ref = upload.storage
            return ScopedRef(ref.provider, ref.bucket, ref.key)
        return ScopedRef.of(upload.storage, upload.tenant_id, upload.file_id)

    def _reject_refused_location(self, err: ActivityError) -> None:
        """Turn an activity's refusal of the upload's location into a rejection."""
        cause = err.cause
        if self._checked and any(kind.caused(err) for kind in LOCATION_REFUSED):
            assert isinstance(cause, ApplicationError)
            raise _refused_location(cause.message) from err

    async def _tenant(self, tenant_id: str) -> TenantRecord:
        lookup = await self._db(DatabaseActivities.get_tenant, TenantRef(tenant_id))
        if not lookup.found or lookup.tenant is None:
            raise TENANT_NOT_FOUND(f"unknown tenant {tenant_id!r}")
        tenant: TenantRecord = lookup.tenant
        return tenant

    async def _check_plan(self, upload: FileUploadInput) -> None:
        """The tenant's status, per-file limit and quota."""
        self._enter("checking plan")
        check = await self._db(
            DatabaseActivities.check_upload, UploadCheckInput(upload.tenant_id, upload.size_bytes)
        )
        if not check.allowed:
            assert check.refusal is not None
            raise Rejection(_REFUSALS[check.refusal], check.detail or str(check.refusal))

    async def _validate(self, upload: FileUploadInput, tenant: TenantRecord) -> Validation:
        """Type (sniffed vs declared vs extension), size and integrity of the content."""
        self._enter("validating")
        scoped = self._checked
        try:
            validation: Validation = await workflow.execute_activity_method(
                MediaActivities.validate_upload,
                ValidationRequest(
                    source=upload.storage,
                    filename=upload.filename,
                    declared_content_type=upload.declared_content_type,
                    size_bytes=upload.size_bytes,
                    max_file_bytes=tenant.max_file_bytes,
                    tenant_id=upload.tenant_id if scoped else None,
                    file_id=upload.file_id if scoped else None,
                ),
                start_to_close_timeout=timedelta(minutes=10),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=STORAGE_RETRY,
            )
        except ActivityError as err:
            self._reject_refused_location(err)
            raise
        if not validation.ok:
            assert validation.reason is not None
            raise Rejection(RejectionReason(validation.reason), validation.detail)
        return validation

    async def _fingerprint(self, upload: FileUploadInput) -> None:
        """The stored bytes are the ones announced: size and, when given, SHA-256."""
        self._enter("fingerprinting")
        try:
            fingerprint: Fingerprint = await workflow.execute_activity_method(
                StorageActivities.fingerprint,
                self._upload_ref(upload),
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=1),
                retry_policy=STORAGE_RETRY,
            )
        except ActivityError as err:
            self._reject_refused_location(err)
            if OBJECT_NOT_FOUND.caused(err):
                where = f"{upload.storage.provider}:{upload.storage.bucket}/{upload.storage.key}"
                raise Rejection(RejectionReason.CORRUPT, f"no object at {where}") from err
            raise
        if upload.sha256 and upload.sha256.lower() != fingerprint.sha256:
            raise Rejection(RejectionReason.CORRUPT, "the bytes do not match the declared SHA-256")
        if fingerprint.size_bytes != upload.size_bytes:
            detail = f"{fingerprint.size_bytes} bytes stored, {upload.size_bytes} declared"
            raise Rejection(RejectionReason.CORRUPT, detail)
        if self._checked and fingerprint.size_bytes == 0:
            raise Rejection(RejectionReason.CORRUPT, "the object is empty")

    async def _scan(self, upload: FileUploadInput) -> ScanResult:
        try:
            result: ScanResult = await workflow.execute_activity_method(
                ScanActivities.scan,
                self._upload_ref(upload),
                start_to_close_timeout=timedelta(minutes=30),
                # The scan heartbeats at least every 15 s: a dead worker's attempt
                # is retried on another within half a minute.
                heartbeat_timeout=timedelta(seconds=30),
                retry_policy=SCAN_RETRY,
            )
        except ActivityError as err:
            self._reject_refused_location(err)
            cause = err.cause
            if SCAN_LIMIT_EXCEEDED.caused(err):
                assert isinstance(cause, ApplicationError)
                raise Rejection(RejectionReason.SCAN_FAILED, cause.message) from err
            raise
        return result

    async def _accept(
        self, upload: FileUploadInput, tenant: TenantRecord, validation: Validation
    ) -> FileUploadResult:
        self._enter("storing")
        stored = await self._store_original(upload, tenant)
        self._enter("processing")
        owner = upload.tenant_id if self._checked else None
        thumbnails, metadata, analysis = await asyncio.gather(
            self._thumbnails(stored, upload.file_id, owner),
            self._metadata(stored, owner),
            self._analysis(
                stored, validation.content_type, upload.analysis_deadline_seconds, owner
            ),
        )
        public = {"filename": upload.filename, **metadata.public}
        processed = FileProcessedInput(
            tenant_id=upload.tenant_id,
            file_id=upload.file_id,
            sha256=metadata.sha256,
            size_bytes=metadata.size_bytes,
            content_type=validation.content_type,
            storage=stored,
            thumbnails=thumbnails,
            metadata=public,
            analysis=analysis,
        )
        self._enter("recording result")
        await self._db(DatabaseActivities.record_file_processed, processed)
        self._enter("publishing")
        event_id = await self._emit(
            upload,
            FileProcessed(
                file_id=upload.file_id,
                sha256=metadata.sha256,
                size_bytes=metadata.size_bytes,
                content_type=validation.content_type,
                storage=StorageRef(stored.provider, stored.bucket, stored.key),
                thumbnails=[
                    PublishedThumbnail(
                        name=t.name,
                        key=t.key,
                        width=t.width,
                        height=t.height,
                        content_type=t.content_type,
                    )
                    for t in thumbnails
                ],
                metadata=public,
                analysis=analysis,
            ),
        )
        self._enter("processed")
        return FileUploadResult(
            status="processed",
            storage=stored,
            sha256=metadata.sha256,
            size_bytes=metadata.size_bytes,
            content_type=validation.content_type,
            thumbnails=thumbnails,
            metadata=public,
            analysis=analysis,
            events=[event_id],
        )

    async def _store_original(self, upload: FileUploadInput, tenant: TenantRecord) -> StorageRef:
        """Into the tenant's bucket on its provider; if that provider keeps failing, on the
        next configured one (the database records where the file is, and reads follow it)."""
        key, primary = f"files/{upload.file_id}/original", str(tenant.storage_provider)
        try:
            return await self._move(
                upload.storage,
                tenant.storage_bucket,
                key,
                primary,
                PROVIDER_RETRY,
                tenant_id=upload.tenant_id,
            )
        except ActivityError as err:
            if _permanent(err):
                raise
            failure = err
        policy = await tenant_policy()
        for provider in policy.failover_for(primary):
            self._enter(f"storing: {primary} failed, trying {provider}")
            workflow.logger.warning("%s failed for %s; failing over to %s", primary, key, provider)
            try:
                return await self._move(
                    upload.storage,
                    tenant.storage_bucket,
                    key,
                    provider,
                    PROVIDER_RETRY,
                    tenant_id=upload.tenant_id,
                )
            except ActivityError as err:
                if _permanent(err):
                    raise
                failure = err
        raise failure

    async def _thumbnails(
        self, stored: StorageRef, file_id: str, owner: str | None
    ) -> list[Thumbnail]:
        made: ThumbnailSet = await workflow.execute_activity_method(
            MediaActivities.make_thumbnails,
            ThumbnailRequest(source=stored, bucket=stored.bucket, file_id=file_id, tenant_id=owner),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=STORAGE_RETRY,
        )
        return [
            Thumbnail(t.name, t.key, t.width, t.height, t.content_type, t.size_bytes)
            for t in made.thumbnails
        ]

    async def _metadata(self, stored: StorageRef, owner: str | None) -> Metadata:
        metadata: Metadata = await workflow.execute_activity_method(
            MediaActivities.extract_metadata,
            MetadataRequest(source=stored, tenant_id=owner),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=STORAGE_RETRY,
        )
        return metadata

    async def _analysis(
        self, stored: StorageRef, content_type: str, deadline_seconds: float, owner: str | None
    ) -> dict[str, str]:
        """AI analysis raced against a timer: late or failed, the upload goes on without it."""
        handle = workflow.start_activity_method(
            MediaActivities.analyse_content,
            AnalysisRequest(source=stored, content_type=content_type, tenant_id=owner),
            start_to_close_timeout=timedelta(minutes=5),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=PERMANENT),
        )
        try:
            await workflow.wait_condition(handle.done, timeout=deadline_seconds)
        except TimeoutError:
            handle.cancel()
            return {"status": "timed_out", "deadline_seconds": f"{deadline_seconds:g}"}
        try:
            analysis: Analysis = handle.result()
        except ActivityError as err:
            return {"status": "failed", "detail": str(err.cause or err)}
        return analysis.as_map()

    async def _reject(self, upload: FileUploadInput, rejection: Rejection) -> FileUploadResult:
        stored: StorageRef | None = None
        if rejection.quarantine:
            self._enter("quarantining")
            try:
                stored = await self._move(
                    upload.storage,
                    QUARANTINE_BUCKET,
                    f"quarantine/{upload.tenant_id}/{upload.file_id}",
                    tenant_id=upload.tenant_id,
                )
            except ActivityError as err:
                if not OBJECT_NOT_FOUND.caused(err):
                    raise
                # There was never an object to quarantine.
        await self._db(
            DatabaseActivities.record_file_rejected,
            FileRejectedInput(
                tenant_id=upload.tenant_id,
                file_id=upload.file_id,
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

    async def _move(
        self,
        source: StorageRef,
        bucket: str,
        key: str,
        provider: str | None = None,
        retry: RetryPolicy = STORAGE_RETRY,
        *,
        tenant_id: str,
    ) -> StorageRef:
        owner = tenant_id if self._checked else None
        moved: StorageRef = await workflow.execute_activity_method(
            StorageActivities.move,
            MoveRequest(source=source, bucket=bucket, key=key, provider=provider, tenant_id=owner),
            start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=timedelta(minutes=2),
            retry_policy=retry,
        )
        return moved

    async def _db(self, activity: Any, request: Any) -> Any:
        return await call_db(activity, request, local=self._local)

    async def _emit(self, upload: FileUploadInput, event: Event) -> str:
        return await emit(
            event,
            tenant_id=upload.tenant_id,
            source=SOURCE,
            correlation_id=upload.correlation_id or upload.event_id,
            local_activity=self._local,
        )


def _permanent(err: ActivityError) -> bool:
    """A failure no other provider would fix (the source object is gone, a bad key...)."""
    cause = root_cause(err)
    return isinstance(cause, ApplicationError) and cause.type in PERMANENT
