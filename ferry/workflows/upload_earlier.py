"""The upload's steps that runs from before the one-pass inspection take: the
fingerprint, the scan and the validation, each an activity that reads the object, and
what the other steps share with them. Workflow code: `FileUploadWorkflow` is built on
`UploadSteps`; its recorded histories from before replay through these steps."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import DatabaseActivities, TenantRecord, TenantRef
    from ferry.activities.media import MediaActivities
    from ferry.activities.media_payloads import Validation, ValidationRequest
    from ferry.activities.scan import ScanActivities, ScanResult
    from ferry.activities.storage import Fingerprint, StorageActivities
    from ferry.contracts.convert import build
    from ferry.contracts.enums import RejectionReason
    from ferry.contracts.errors import OBJECT_NOT_FOUND, SCAN_LIMIT_EXCEEDED, TENANT_NOT_FOUND
    from ferry.contracts.storage import ScopedRef
    from ferry.contracts.workflows import FileUploadInput
    from ferry.workflows.common import STORAGE_RETRY, Staged, call_db
    from ferry.workflows.upload_steps import (
        SCAN_RETRY,
        Rejection,
        as_announced,
        no_object,
        over_scan_limit,
        read_upload,
    )


class UploadSteps(Staged):
    """What the upload's run has decided by its patches, and the steps from before."""

    # Set by the run from its patches: the database steps and the event as local
    # activities (`short-steps-as-local-activities`); activities told whose the upload's
    # places must be (`upload-location-checked`).
    _local: bool
    _checked: bool

    def _upload_ref(self, upload: FileUploadInput) -> ScopedRef:
        """The upload's object, and whose it must be (not said in histories from before)."""
        if not self._checked:
            ref = upload.storage
            return ScopedRef(ref.provider, ref.bucket, ref.key)
        return ScopedRef.of(upload.storage, upload.tenant_id, upload.file_id)

    async def _read_object(
        self, activity: Any, upload: FileUploadInput, heartbeat: timedelta, retry: RetryPolicy
    ) -> Any:
        """An activity that streams the whole uploaded object, for up to half an hour."""
        return await read_upload(
            self._checked,
            activity,
            self._upload_ref(upload),
            timeout=timedelta(minutes=30),
            heartbeat=heartbeat,
            retry=retry,
        )

    def _owner(self, upload: FileUploadInput) -> str | None:
        """The tenant whose places the upload's activities may touch (None before the check)."""
        return upload.tenant_id if self._checked else None

    async def _tenant(self, tenant_id: str) -> TenantRecord:
        lookup = await self._db(DatabaseActivities.get_tenant, TenantRef(tenant_id))
        if not lookup.found or lookup.tenant is None:
            raise TENANT_NOT_FOUND(f"unknown tenant {tenant_id!r}")
        tenant: TenantRecord = lookup.tenant
        return tenant

    async def _validate(self, upload: FileUploadInput, tenant: TenantRecord) -> Validation:
        """Type (sniffed vs declared vs extension), size and integrity of the content."""
        self._enter("validating")
        scoped = self._checked
        validation: Validation = await read_upload(
            self._checked,
            MediaActivities.validate_upload,
            build(
                ValidationRequest,
                upload,
                source=upload.storage,
                max_file_bytes=tenant.max_file_bytes,
                tenant_id=upload.tenant_id if scoped else None,
                file_id=upload.file_id if scoped else None,
            ),
            timeout=timedelta(minutes=10),
            heartbeat=timedelta(minutes=1),
            retry=STORAGE_RETRY,
        )
        if not validation.ok:
            assert validation.reason is not None
            raise Rejection(RejectionReason(validation.reason), validation.detail)
        return validation

    async def _fingerprint(self, upload: FileUploadInput) -> None:
        """The stored bytes are the ones announced: size and, when given, SHA-256."""
        self._enter("fingerprinting")
        try:
            fingerprint: Fingerprint = await self._read_object(
                StorageActivities.fingerprint, upload, timedelta(minutes=1), STORAGE_RETRY
            )
        except ActivityError as err:
            if OBJECT_NOT_FOUND.caused(err):
                raise no_object(upload) from err
            raise
        as_announced(upload, fingerprint.sha256, fingerprint.size_bytes, self._checked)

    async def _scan(self, upload: FileUploadInput) -> ScanResult:
        try:
            # The scan heartbeats at least every 15 s: a dead worker's attempt
            # is retried on another within half a minute.
            result: ScanResult = await self._read_object(
                ScanActivities.scan, upload, timedelta(seconds=30), SCAN_RETRY
            )
        except ActivityError as err:
            if SCAN_LIMIT_EXCEEDED.caused(err):
                raise over_scan_limit(err) from err
            raise
        return result

    async def _db(self, activity: Any, request: Any) -> Any:
        return await call_db(activity, request, local=self._local)
