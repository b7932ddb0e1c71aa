"""file_upload_workflow: fingerprint, scan and store an uploaded file."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.events import EventActivities, OutboundEvent
    from ferry.activities.scan import ScanActivities, ScanResult
    from ferry.activities.storage import Fingerprint, MoveRequest, StorageActivities, StorageRef
    from ferry.producers.ids import event_id_for

WORKFLOW = "file_upload_workflow"
SOURCE = "ferry.file-upload"
QUARANTINE_BUCKET = "ferry-quarantine"

STORAGE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    non_retryable_error_types=["ObjectNotFound", "UnknownProvider", "InvalidKey"],
)
SCAN_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=1),
    non_retryable_error_types=["ObjectNotFound", "ScanLimitExceeded"],
)


def workflow_id(tenant_id: str, file_id: str) -> str:
    return f"file-upload/{tenant_id}/{file_id}"


def tenant_bucket(tenant_id: str) -> str:
    return f"ferry-{tenant_id}"


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
    events: list[str] = field(default_factory=list)


class Rejection(Exception):
    """Ends the upload as rejected: not a failure of the workflow."""

    def __init__(self, reason: str, detail: str, signature: str | None = None) -> None:
        super().__init__(detail)
        self.reason, self.detail, self.signature = reason, detail, signature


@workflow.defn(name=WORKFLOW)
class FileUploadWorkflow:
    """Turns one uploaded object into a processed file or a rejected one.

    Steps: fingerprint (SHA-256, size, sniffed type, streamed), scan with clamd
    (failing closed), then move the original into the tenant's bucket and emit
    `file.processed`; or move it to quarantine and emit `file.rejected`.

    Queries: `progress` (the current stage).
    """

    def __init__(self) -> None:
        self._stage = "received"

    @workflow.query
    def progress(self) -> str:
        return self._stage

    def _enter(self, stage: str) -> None:
        self._stage = stage
        workflow.set_current_details(f"stage: {stage}")

    @workflow.run
    async def run(self, upload: FileUploadInput) -> FileUploadResult:
        self._enter("fingerprinting")
        fingerprint: Fingerprint = await workflow.execute_activity_method(
            StorageActivities.fingerprint,
            upload.storage,
            start_to_close_timeout=timedelta(minutes=15),
            heartbeat_timeout=timedelta(minutes=1),
            retry_policy=STORAGE_RETRY,
        )
        try:
            if upload.sha256 and upload.sha256.lower() != fingerprint.sha256:
                raise Rejection("corrupt", "the bytes do not match the declared SHA-256")
            self._enter("scanning")
            scan = await self._scan(upload.storage)
            if not scan.clean:
                raise Rejection("infected", f"clamd found {scan.signature}", scan.signature)
        except Rejection as rejection:
            return await self._reject(upload, fingerprint, rejection)
        return await self._accept(upload, fingerprint)

    async def _scan(self, ref: StorageRef) -> ScanResult:
        try:
            return await workflow.execute_activity_method(
                ScanActivities.scan,
                ref,
                start_to_close_timeout=timedelta(minutes=30),
                heartbeat_timeout=timedelta(minutes=2),
                retry_policy=SCAN_RETRY,
            )
        except ActivityError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "ScanLimitExceeded":
                raise Rejection("scan_failed", cause.message) from err
            raise

    async def _accept(self, upload: FileUploadInput, fingerprint: Fingerprint) -> FileUploadResult:
        self._enter("storing")
        stored = await self._move(
            upload.storage, tenant_bucket(upload.tenant_id), f"files/{upload.file_id}/original"
        )
        self._enter("publishing")
        event_id = await self._emit(
            upload,
            "file.processed",
            file_id=upload.file_id,
            sha256=fingerprint.sha256,
            size_bytes=fingerprint.size_bytes,
            content_type=fingerprint.content_type,
            storage={"provider": stored.provider, "bucket": stored.bucket, "key": stored.key},
            thumbnails=[],
            metadata={"filename": upload.filename, "uploaded_by": upload.uploaded_by},
            analysis={},
        )
        self._enter("processed")
        return FileUploadResult(
            status="processed",
            storage=stored,
            sha256=fingerprint.sha256,
            size_bytes=fingerprint.size_bytes,
            content_type=fingerprint.content_type,
            events=[event_id],
        )

    async def _reject(
        self, upload: FileUploadInput, fingerprint: Fingerprint, rejection: Rejection
    ) -> FileUploadResult:
        self._enter("quarantining")
        stored = await self._move(
            upload.storage, QUARANTINE_BUCKET, f"quarantine/{upload.tenant_id}/{upload.file_id}"
        )
        event_id = await self._emit(
            upload,
            "file.rejected",
            file_id=upload.file_id,
            reason=rejection.reason,
            detail=rejection.detail,
            signature=rejection.signature,
        )
        self._enter(f"rejected: {rejection.reason}")
        return FileUploadResult(
            status="rejected",
            storage=stored,
            sha256=fingerprint.sha256,
            size_bytes=fingerprint.size_bytes,
            content_type=fingerprint.content_type,
            reason=rejection.reason,
            detail=rejection.detail,
            signature=rejection.signature,
            events=[event_id],
        )

    async def _move(self, source: StorageRef, bucket: str, key: str) -> StorageRef:
        return await workflow.execute_activity_method(
            StorageActivities.move,
            MoveRequest(source=source, bucket=bucket, key=key),
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=STORAGE_RETRY,
        )

    async def _emit(self, upload: FileUploadInput, event_type: str, **fields: Any) -> str:
        event_id = event_id_for(workflow.info().workflow_id, event_type)
        envelope = {
            "event_id": event_id,
            "event_type": event_type,
            "occurred_at": int(workflow.now().timestamp() * 1000),
            "tenant_id": upload.tenant_id,
            "correlation_id": upload.correlation_id or upload.event_id,
            "source": SOURCE,
        }
        await workflow.execute_activity_method(
            EventActivities.publish,
            OutboundEvent(fields={**envelope, **fields}),
            start_to_close_timeout=timedelta(minutes=1),
        )
        return event_id
