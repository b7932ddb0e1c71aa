"""File activities: the upload check, a file's states, its location and its lookup."""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities
from ferry.activities.database.tenants import TenantRecord, tenant_record
from ferry.activities.metrics import count
from ferry.contracts.convert import build
from ferry.contracts.enums import FileState, RejectionReason, TenantStatus
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.contracts.workflows import FileUploadInput
from ferry.db import TenantScope
from ferry.db import models as m


class UploadRefusal(StrEnum):
    """Why `check_upload` refused; the first two are also `file.rejected` reasons."""

    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    TENANT_INACTIVE = "tenant_inactive"


UPLOADS = "ferry_uploads"
UPLOADS_HELP = "Uploads recorded as processed or rejected, by outcome and reason."


@dataclass
class UploadCheckInput:
    tenant_id: str
    size_bytes: int


@dataclass
class UploadCheck:
    allowed: bool
    refusal: UploadRefusal | None = None
    detail: str | None = None
    max_file_bytes: int = 0
    quota_bytes: int = 0
    used_bytes: int = 0
    used_files: int = 0


@dataclass
class FileRecord:
    tenant_id: str
    file_id: str
    state: FileState
    filename: str
    declared_content_type: str
    size_bytes: int
    uploaded_by: str
    storage: StorageRef
    sha256: str | None = None
    content_type: str | None = None
    reject_reason: RejectionReason | None = None
    reject_detail: str | None = None
    signature: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    analysis: dict[str, str] = field(default_factory=dict)
    thumbnails: list[Thumbnail] = field(default_factory=list)


@dataclass
class FileProcessingInput:
    """A `file.uploaded` event as the file table needs it."""

    tenant_id: str
    file_id: str
    filename: str
    declared_content_type: str
    size_bytes: int
    storage: StorageRef
    uploaded_by: str
    sha256: str | None = None
    event_id: str | None = None

    @classmethod
    def of(cls, upload: FileUploadInput) -> Self:
        """What the file table keeps of an upload's announcement."""
        return build(cls, upload)


@dataclass
class FileProcessingResult:
    file: FileRecord
    created: bool


@dataclass
class FileProcessedInput:
    tenant_id: str
    file_id: str
    sha256: str
    size_bytes: int
    content_type: str
    storage: StorageRef
    thumbnails: list[Thumbnail] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    analysis: dict[str, str] = field(default_factory=dict)


@dataclass
class FileRejectedInput:
    """A rejection; `quarantined` when the object now sits in the quarantine bucket."""

    tenant_id: str
    file_id: str
    reason: RejectionReason
    detail: str
    signature: str | None = None
    storage: StorageRef | None = None
    quarantined: bool = False


@dataclass
class FileLocationInput:
    """Point a file at another copy of its object (failover, migration)."""

    tenant_id: str
    file_id: str
    storage: StorageRef


@dataclass
class FileRef:
    tenant_id: str
    file_id: str


@dataclass
class FileLookup:
    found: bool
    file: FileRecord | None = None


def _file(row: m.File, thumbnails: Sequence[m.Thumbnail | Thumbnail]) -> FileRecord:
    return build(
        FileRecord,
        row,
        file_id=row.id,
        storage=StorageRef(row.storage_provider, row.storage_bucket, row.storage_key),
        metadata=dict(row.file_metadata),
        analysis=dict(row.analysis),
        thumbnails=[build(Thumbnail, t) for t in thumbnails],
    )


@dataclass
class BegunUpload:
    """What `begin_upload` found: the tenant, the file recorded as `processing`, the check."""

    found: bool
    tenant: TenantRecord | None = None
    file: FileProcessingResult | None = None
    check: UploadCheck | None = None


async def _upload_check(db: TenantScope, tenant: m.Tenant, size_bytes: int) -> UploadCheck:
    """May the tenant take a file of `size_bytes`: status, per-file limit, quota."""
    usage = await db.files.usage()
    check = UploadCheck(
        allowed=True,
        max_file_bytes=tenant.max_file_bytes,
        quota_bytes=tenant.quota_bytes,
        used_bytes=usage.bytes,
        used_files=usage.files,
    )
    if tenant.status != TenantStatus.ACTIVE:
        check.refusal, check.detail = UploadRefusal.TENANT_INACTIVE, f"tenant {tenant.status}"
    elif size_bytes > tenant.max_file_bytes:
        check.refusal = UploadRefusal.TOO_LARGE
        check.detail = f"{size_bytes} bytes over the plan's {tenant.max_file_bytes}"
    elif (
        tenant.over_quota
        or usage.bytes + size_bytes > tenant.quota_bytes
        or usage.files + 1 > tenant.quota_files
    ):
        check.refusal = UploadRefusal.QUOTA_EXCEEDED
        check.detail = f"{usage.bytes} of {tenant.quota_bytes} bytes, {usage.files} files used"
    check.allowed = check.refusal is None
    return check


class FileActivities(TenantScopedActivities):
    """The tenant's files, from the upload check to processed, rejected or moved."""

    async def _file_record(self, scope: TenantScope, row: m.File) -> FileRecord:
        return _file(row, await scope.files.thumbnails(row.id))

    @activity.defn(name="check_upload")
    async def check_upload(self, request: UploadCheckInput) -> UploadCheck:
        """May the tenant take a file of this size: status, per-file limit, quota."""
        async with self._scope(request.tenant_id) as db:
            return await _upload_check(db, await db.tenants.require(), request.size_bytes)

    @activity.defn(name="record_file_processing")
    async def record_file_processing(self, request: FileProcessingInput) -> FileProcessingResult:
        """Record the upload as `processing`; a file already known is returned unchanged."""
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            return await self._record_processing(db, request)

    @activity.defn(name="begin_upload")
    async def begin_upload(self, request: FileProcessingInput) -> BegunUpload:
        """`get_tenant`, `record_file_processing` and `check_upload` in one transaction:
        the tenant (not found: nothing recorded), the file as `processing`, the check."""
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.get()
            if tenant is None:
                return BegunUpload(found=False)
            return BegunUpload(
                found=True,
                tenant=tenant_record(tenant),
                file=await self._record_processing(db, request),
                check=await _upload_check(db, tenant, request.size_bytes),
            )

    async def _record_processing(
        self, db: TenantScope, request: FileProcessingInput
    ) -> FileProcessingResult:
        row, created = await db.files.record_processing(
            request.file_id,
            filename=request.filename,
            declared_content_type=request.declared_content_type,
            size_bytes=request.size_bytes,
            uploaded_by=request.uploaded_by,
            location=request.storage,
            sha256=request.sha256,
            upload_event_id=request.event_id,
        )
        # A file this call created has no thumbnails yet (they need it to exist).
        record = _file(row, []) if created else await self._file_record(db, row)
        return FileProcessingResult(record, created)

    @activity.defn(name="record_file_processed")
    async def record_file_processed(self, request: FileProcessedInput) -> FileRecord:
        async with self._scope(request.tenant_id) as db:
            row = await db.files.record_processed(
                request.file_id,
                sha256=request.sha256,
                size_bytes=request.size_bytes,
                content_type=request.content_type,
                location=request.storage,
                metadata=request.metadata,
                analysis=request.analysis,
                thumbnails=request.thumbnails,
            )
            # Its thumbnails are now exactly these: no need to read them back.
            record = _file(row, sorted(request.thumbnails, key=lambda t: t.name))
        count(UPLOADS, UPLOADS_HELP, outcome="processed", reason="")
        return record

    @activity.defn(name="record_file_rejected")
    async def record_file_rejected(self, request: FileRejectedInput) -> FileRecord:
        async with self._scope(request.tenant_id) as db:
            row = await db.files.record_rejected(
                request.file_id,
                reason=request.reason,
                detail=request.detail,
                signature=request.signature,
                location=request.storage,
                quarantined=request.quarantined,
            )
            record = await self._file_record(db, row)
        count(UPLOADS, UPLOADS_HELP, outcome="rejected", reason=str(request.reason))
        return record

    @activity.defn(name="record_file_location")
    async def record_file_location(self, request: FileLocationInput) -> FileRecord:
        async with self._scope(request.tenant_id) as db:
            row = await db.files.set_location(request.file_id, request.storage)
            return await self._file_record(db, row)

    @activity.defn(name="get_file")
    async def get_file(self, request: FileRef) -> FileLookup:
        """The file if it belongs to the tenant (another tenant's file is not found)."""
        async with self._scope(request.tenant_id) as db:
            row = await db.files.get(request.file_id)
            if row is None:
                return FileLookup(found=False)
            return FileLookup(found=True, file=await self._file_record(db, row))
