"""Database activities: the tenant-scoped repositories, as Temporal activities.

Each call is one transaction in one tenant's scope (row-level security applies),
and every write is idempotent: a retried activity leaves the rows as one run did.
Errors a retry cannot fix (unknown tenant or file, a forbidden state change, bad
input) are non-retryable `ApplicationError`s whose `type` names them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ferry.contracts.enums import (
    FileAction,
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    MigrationState,
    RejectionReason,
    SharePermission,
    ShareStatus,
    StorageProvider,
    TenantPlan,
    TenantStatus,
)
from ferry.contracts.errors import INTEGRITY_ERROR, INVALID_INPUT
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.db import (
    DatabaseError,
    MigrationItemData,
    MigrationProgress,
    PermissionReason,
    TenantScope,
    tenant_scope,
)
from ferry.db import models as m

# ---------------------------------------------------------------------------
# Tenants
# ---------------------------------------------------------------------------


@dataclass
class TenantRef:
    tenant_id: str


@dataclass
class TenantRecord:
    tenant_id: str
    name: str
    plan: TenantPlan
    status: TenantStatus
    region: str
    admin_email: str
    storage_provider: StorageProvider
    storage_bucket: str
    quota_bytes: int
    quota_files: int
    max_file_bytes: int
    over_quota: bool = False
    status_reason: str | None = None


@dataclass
class CreateTenantInput:
    """The database side of provisioning: the tenant, its plan's quotas, its admin."""

    tenant_id: str
    name: str
    plan: TenantPlan
    region: str
    admin_email: str
    storage_provider: StorageProvider
    storage_bucket: str
    admin_user_id: str | None = None  # defaults to `admin_email`
    admin_display_name: str | None = None


@dataclass
class CreateTenantResult:
    tenant: TenantRecord
    created: bool


@dataclass
class TenantLookup:
    found: bool
    tenant: TenantRecord | None = None


@dataclass
class TenantStatusInput:
    tenant_id: str
    status: TenantStatus
    reason: str | None = None


@dataclass
class ApplyPlanInput:
    """Set the plan and its quotas; also the compensation that restores the old plan."""

    tenant_id: str
    plan: TenantPlan


@dataclass
class OverQuotaInput:
    tenant_id: str
    over_quota: bool


@dataclass
class DeletedTenantRows:
    tenant_id: str
    rows: dict[str, int] = field(default_factory=dict)


@dataclass
class MemberInput:
    tenant_id: str
    user_id: str
    role: MemberRole
    email: str | None = None
    display_name: str | None = None


@dataclass
class MemberRecord:
    tenant_id: str
    user_id: str
    role: MemberRole


# ---------------------------------------------------------------------------
# Usage
# ---------------------------------------------------------------------------


@dataclass
class UsageMeasurement:
    """What the tenant stores now (processed files) against its plan's quota."""

    tenant_id: str
    files: int
    bytes: int
    quota_bytes: int
    quota_files: int
    plan: TenantPlan
    over_quota: bool


@dataclass
class UsageReport:
    tenant_id: str
    window_start: datetime
    window_end: datetime
    files: int
    bytes: int
    quota_bytes: int
    plan: TenantPlan


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


class UploadRefusal(StrEnum):
    """Why `check_upload` refused; the first two are also `file.rejected` reasons."""

    TOO_LARGE = "too_large"
    QUOTA_EXCEEDED = "quota_exceeded"
    TENANT_INACTIVE = "tenant_inactive"


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


@dataclass
class PermissionQuery:
    tenant_id: str
    user_id: str
    file_id: str
    action: FileAction


@dataclass
class PermissionResult:
    allowed: bool
    reason: PermissionReason
    role: MemberRole | None = None


# ---------------------------------------------------------------------------
# Shares
# ---------------------------------------------------------------------------


@dataclass
class ShareInput:
    tenant_id: str
    share_id: str
    file_id: str
    shared_by: str
    grantee_type: GranteeType
    permission: SharePermission
    grantee: str | None = None
    expires_at: datetime | None = None
    notify: bool = False
    message: str | None = None


@dataclass
class ShareRecord:
    tenant_id: str
    share_id: str
    file_id: str
    shared_by: str
    grantee_type: GranteeType
    permission: SharePermission
    status: ShareStatus
    grantee: str | None = None
    expires_at: datetime | None = None
    revoked_by: str | None = None


@dataclass
class ShareResult:
    """The share after the call; `changed` if this call created or ended it."""

    share: ShareRecord
    changed: bool


@dataclass
class RevokeShareInput:
    """End a share: revoked by someone, or `expired` when its timer fired."""

    tenant_id: str
    share_id: str
    revoked_by: str | None = None
    expired: bool = False


@dataclass
class ShareRef:
    tenant_id: str
    share_id: str


@dataclass
class ShareLookup:
    found: bool
    share: ShareRecord | None = None


# ---------------------------------------------------------------------------
# File migrations
# ---------------------------------------------------------------------------


@dataclass
class StartMigrationInput:
    tenant_id: str
    migration_id: str
    source_provider: str
    source_bucket: str
    target_provider: str
    target_bucket: str
    prefix: str | None = None
    batch_size: int = 100
    delete_source: bool = False


@dataclass
class MigrationRecord:
    tenant_id: str
    migration_id: str
    state: MigrationState
    source_provider: str
    source_bucket: str
    target_provider: str
    target_bucket: str
    prefix: str | None = None
    batch_size: int = 100
    delete_source: bool = False
    files_moved: int = 0
    bytes_moved: int = 0
    files_failed: int = 0
    detail: str | None = None


@dataclass
class StartMigrationResult:
    migration: MigrationRecord
    created: bool


@dataclass
class MigrationItem:
    """One object of a migration; `target_key` defaults to `source_key`."""

    source_key: str
    state: MigrationItemState
    target_key: str | None = None
    file_id: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    detail: str | None = None


@dataclass
class MigrationItemsInput:
    """A batch's progress. Verified items with a `file_id` repoint their file to the target."""

    tenant_id: str
    migration_id: str
    items: list[MigrationItem] = field(default_factory=list)


@dataclass
class MigrationProgressRecord:
    tenant_id: str
    migration_id: str
    files_total: int
    bytes_total: int
    files_done: int
    bytes_done: int
    files_failed: int


@dataclass
class PendingKeysInput:
    tenant_id: str
    migration_id: str
    keys: list[str] = field(default_factory=list)


@dataclass
class PendingKeys:
    """The keys not yet verified, in the order given."""

    keys: list[str] = field(default_factory=list)


@dataclass
class MigrationItemsQuery:
    tenant_id: str
    migration_id: str
    states: list[MigrationItemState] = field(default_factory=list)
    after_key: str | None = None
    limit: int = 1000


@dataclass
class MigrationItemsPage:
    items: list[MigrationItem] = field(default_factory=list)
    next_after_key: str | None = None  # None on the last page


@dataclass
class MigrationRef:
    tenant_id: str
    migration_id: str


@dataclass
class FinishMigrationInput:
    tenant_id: str
    migration_id: str
    state: MigrationState  # completed or failed
    detail: str | None = None


@dataclass
class RollbackMigrationInput:
    """Point files back at the source; the `rolled_back` items are the copies to delete."""

    tenant_id: str
    migration_id: str
    detail: str | None = None


# ---------------------------------------------------------------------------
# Processed events
# ---------------------------------------------------------------------------


@dataclass
class ProcessedEventInput:
    tenant_id: str
    consumer: str
    event_id: str
    event_type: str | None = None


@dataclass
class EventMark:
    first_time: bool


# ---------------------------------------------------------------------------
# Conversions
# ---------------------------------------------------------------------------


def _tenant(row: m.Tenant) -> TenantRecord:
    return TenantRecord(
        tenant_id=row.id,
        name=row.name,
        plan=row.plan,
        status=row.status,
        region=row.region,
        admin_email=row.admin_email,
        storage_provider=row.storage_provider,
        storage_bucket=row.storage_bucket,
        quota_bytes=row.quota_bytes,
        quota_files=row.quota_files,
        max_file_bytes=row.max_file_bytes,
        over_quota=row.over_quota,
        status_reason=row.status_reason,
    )


def _file(row: m.File, thumbnails: list[m.Thumbnail]) -> FileRecord:
    return FileRecord(
        tenant_id=row.tenant_id,
        file_id=row.id,
        state=row.state,
        filename=row.filename,
        declared_content_type=row.declared_content_type,
        size_bytes=row.size_bytes,
        uploaded_by=row.uploaded_by,
        storage=StorageRef(row.storage_provider, row.storage_bucket, row.storage_key),
        sha256=row.sha256,
        content_type=row.content_type,
        reject_reason=row.reject_reason,
        reject_detail=row.reject_detail,
        signature=row.signature,
        metadata=dict(row.file_metadata),
        analysis=dict(row.analysis),
        thumbnails=[
            Thumbnail(t.name, t.key, t.width, t.height, t.content_type, t.size_bytes)
            for t in thumbnails
        ],
    )


def _share(row: m.Share) -> ShareRecord:
    return ShareRecord(
        tenant_id=row.tenant_id,
        share_id=row.id,
        file_id=row.file_id,
        shared_by=row.shared_by,
        grantee_type=row.grantee_type,
        permission=row.permission,
        status=row.status,
        grantee=row.grantee,
        expires_at=row.expires_at,
        revoked_by=row.revoked_by,
    )


def _migration(row: m.FileMigration) -> MigrationRecord:
    return MigrationRecord(
        tenant_id=row.tenant_id,
        migration_id=row.id,
        state=row.state,
        source_provider=row.source_provider,
        source_bucket=row.source_bucket,
        target_provider=row.target_provider,
        target_bucket=row.target_bucket,
        prefix=row.prefix,
        batch_size=row.batch_size,
        delete_source=row.delete_source,
        files_moved=row.files_moved,
        bytes_moved=row.bytes_moved,
        files_failed=row.files_failed,
        detail=row.detail,
    )


def _progress(tenant_id: str, migration_id: str, p: MigrationProgress) -> MigrationProgressRecord:
    return MigrationProgressRecord(
        tenant_id, migration_id,
        p.files_total, p.bytes_total, p.files_done, p.bytes_done, p.files_failed,
    )  # fmt: skip


def _item(row: m.FileMigrationItem) -> MigrationItem:
    return MigrationItem(
        source_key=row.source_key,
        state=row.state,
        target_key=row.target_key,
        file_id=row.file_id,
        size_bytes=row.size_bytes,
        sha256=row.sha256,
        detail=row.detail,
    )


# ---------------------------------------------------------------------------
# Activities
# ---------------------------------------------------------------------------


class DatabaseActivities:
    """Activities over Postgres, one tenant-scoped transaction per call."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @asynccontextmanager
    async def _scope(self, tenant_id: str) -> AsyncIterator[TenantScope]:
        """The tenant's scope; permanent failures become non-retryable errors."""
        try:
            async with tenant_scope(self._sessionmaker, tenant_id) as scope:
                yield scope
        except DatabaseError as exc:
            raise ApplicationError(str(exc), type=exc.kind, non_retryable=True) from exc
        except IntegrityError as exc:
            raise INTEGRITY_ERROR(f"integrity error: {exc.orig}") from exc
        except ValueError as exc:
            raise INVALID_INPUT(str(exc)) from exc

    async def _file_record(self, scope: TenantScope, row: m.File) -> FileRecord:
        return _file(row, await scope.files.thumbnails(row.id))

    # Tenants

    @activity.defn(name="create_tenant")
    async def create_tenant(self, request: CreateTenantInput) -> CreateTenantResult:
        """The tenant row in `provisioning` with its plan's quotas, and its admin as owner."""
        async with self._scope(request.tenant_id) as db:
            tenant, created = await db.tenants.create(
                name=request.name,
                plan=request.plan,
                region=request.region,
                admin_email=request.admin_email,
                storage_provider=request.storage_provider,
                storage_bucket=request.storage_bucket,
            )
            await db.users.add_member(
                request.admin_user_id or request.admin_email,
                MemberRole.OWNER,
                email=request.admin_email,
                display_name=request.admin_display_name,
            )
            return CreateTenantResult(_tenant(tenant), created)

    @activity.defn(name="get_tenant")
    async def get_tenant(self, request: TenantRef) -> TenantLookup:
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.get()
            return TenantLookup(tenant is not None, None if tenant is None else _tenant(tenant))

    @activity.defn(name="set_tenant_status")
    async def set_tenant_status(self, request: TenantStatusInput) -> TenantRecord:
        """Activate, suspend, reactivate, or mark the tenant as being deleted."""
        async with self._scope(request.tenant_id) as db:
            return _tenant(await db.tenants.set_status(request.status, request.reason))

    @activity.defn(name="apply_tenant_plan")
    async def apply_tenant_plan(self, request: ApplyPlanInput) -> TenantRecord:
        async with self._scope(request.tenant_id) as db:
            return _tenant(await db.tenants.apply_plan(request.plan))

    @activity.defn(name="set_tenant_over_quota")
    async def set_tenant_over_quota(self, request: OverQuotaInput) -> TenantRecord:
        async with self._scope(request.tenant_id) as db:
            return _tenant(await db.tenants.set_over_quota(request.over_quota))

    @activity.defn(name="delete_tenant_rows")
    async def delete_tenant_rows(self, request: TenantRef) -> DeletedTenantRows:
        """Remove every row of the tenant (a repeat finds nothing left to delete)."""
        async with self._scope(request.tenant_id) as db:
            return DeletedTenantRows(request.tenant_id, await db.tenants.delete_rows())

    @activity.defn(name="add_tenant_member")
    async def add_tenant_member(self, request: MemberInput) -> MemberRecord:
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            membership = await db.users.add_member(
                request.user_id,
                request.role,
                email=request.email,
                display_name=request.display_name,
            )
            return MemberRecord(request.tenant_id, membership.user_id, membership.role)

    # Usage

    @activity.defn(name="measure_tenant_usage")
    async def measure_tenant_usage(self, request: TenantRef) -> UsageMeasurement:
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.require()
            usage = await db.files.usage()
            return UsageMeasurement(
                tenant_id=tenant.id,
                files=usage.files,
                bytes=usage.bytes,
                quota_bytes=tenant.quota_bytes,
                quota_files=tenant.quota_files,
                plan=tenant.plan,
                over_quota=tenant.over_quota,
            )

    @activity.defn(name="record_usage")
    async def record_usage(self, request: UsageReport) -> UsageReport:
        """Store one window's usage, keyed by the window's start."""
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            row = await db.usage.record(
                window_start=request.window_start,
                window_end=request.window_end,
                files=request.files,
                bytes=request.bytes,
                quota_bytes=request.quota_bytes,
                plan=request.plan,
            )
            return UsageReport(
                row.tenant_id,
                row.window_start,
                row.window_end,
                row.files,
                row.bytes,
                row.quota_bytes,
                row.plan,
            )

    # Files

    @activity.defn(name="check_upload")
    async def check_upload(self, request: UploadCheckInput) -> UploadCheck:
        """May the tenant take a file of this size: status, per-file limit, quota."""
        async with self._scope(request.tenant_id) as db:
            tenant = await db.tenants.require()
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
        elif request.size_bytes > tenant.max_file_bytes:
            check.refusal = UploadRefusal.TOO_LARGE
            check.detail = f"{request.size_bytes} bytes over the plan's {tenant.max_file_bytes}"
        elif (
            tenant.over_quota
            or usage.bytes + request.size_bytes > tenant.quota_bytes
            or usage.files + 1 > tenant.quota_files
        ):
            check.refusal = UploadRefusal.QUOTA_EXCEEDED
            check.detail = f"{usage.bytes} of {tenant.quota_bytes} bytes, {usage.files} files used"
        check.allowed = check.refusal is None
        return check

    @activity.defn(name="record_file_processing")
    async def record_file_processing(self, request: FileProcessingInput) -> FileProcessingResult:
        """Record the upload as `processing`; a file already known is returned unchanged."""
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
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
            return FileProcessingResult(await self._file_record(db, row), created)

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
            return await self._file_record(db, row)

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
            return await self._file_record(db, row)

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

    @activity.defn(name="check_permission")
    async def check_permission(self, request: PermissionQuery) -> PermissionResult:
        """May the user do the action with the file, and why (membership, role, shares)."""
        async with self._scope(request.tenant_id) as db:
            decision = await db.check_permission(request.user_id, request.file_id, request.action)
            return PermissionResult(decision.allowed, decision.reason, decision.role)

    # Shares

    @activity.defn(name="record_share")
    async def record_share(self, request: ShareInput) -> ShareResult:
        """Record the grant as active; a known share keeps its state (never resurrected)."""
        async with self._scope(request.tenant_id) as db:
            row, created = await db.shares.record(
                request.share_id,
                file_id=request.file_id,
                shared_by=request.shared_by,
                grantee_type=request.grantee_type,
                grantee=request.grantee,
                permission=request.permission,
                expires_at=request.expires_at,
                notify=request.notify,
                message=request.message,
            )
            return ShareResult(_share(row), created)

    @activity.defn(name="revoke_share")
    async def revoke_share(self, request: RevokeShareInput) -> ShareResult:
        """End an active share as `revoked` (or `expired`); an ended share stays as it ended."""
        status = ShareStatus.EXPIRED if request.expired else ShareStatus.REVOKED
        async with self._scope(request.tenant_id) as db:
            row, ended = await db.shares.end(request.share_id, status, request.revoked_by)
            return ShareResult(_share(row), ended)

    @activity.defn(name="get_share")
    async def get_share(self, request: ShareRef) -> ShareLookup:
        async with self._scope(request.tenant_id) as db:
            row = await db.shares.get(request.share_id)
            return ShareLookup(row is not None, None if row is None else _share(row))

    # File migrations

    @activity.defn(name="start_file_migration")
    async def start_file_migration(self, request: StartMigrationInput) -> StartMigrationResult:
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            row, created = await db.migrations.start(
                request.migration_id,
                source=(request.source_provider, request.source_bucket),
                target=(request.target_provider, request.target_bucket),
                prefix=request.prefix,
                batch_size=request.batch_size,
                delete_source=request.delete_source,
            )
            return StartMigrationResult(_migration(row), created)

    @activity.defn(name="record_migration_items")
    async def record_migration_items(self, request: MigrationItemsInput) -> MigrationProgressRecord:
        """Store a batch's progress; files of verified copies now point at the target."""
        items = [
            MigrationItemData(
                source_key=i.source_key,
                state=i.state,
                target_key=i.target_key,
                file_id=i.file_id,
                size_bytes=i.size_bytes,
                sha256=i.sha256,
                detail=i.detail,
            )
            for i in request.items
        ]
        async with self._scope(request.tenant_id) as db:
            progress = await db.migrations.record_items(request.migration_id, items)
        return _progress(request.tenant_id, request.migration_id, progress)

    @activity.defn(name="pending_migration_keys")
    async def pending_migration_keys(self, request: PendingKeysInput) -> PendingKeys:
        """Of a listed page of keys, those still to copy (not yet verified)."""
        async with self._scope(request.tenant_id) as db:
            await db.migrations.require(request.migration_id)
            return PendingKeys(await db.migrations.pending_keys(request.migration_id, request.keys))

    @activity.defn(name="list_migration_items")
    async def list_migration_items(self, request: MigrationItemsQuery) -> MigrationItemsPage:
        async with self._scope(request.tenant_id) as db:
            rows = await db.migrations.items(
                request.migration_id,
                states=request.states,
                after_key=request.after_key,
                limit=request.limit,
            )
        last_page = len(rows) < request.limit or not rows
        return MigrationItemsPage(
            [_item(row) for row in rows], None if last_page else rows[-1].source_key
        )

    @activity.defn(name="get_migration_progress")
    async def get_migration_progress(self, request: MigrationRef) -> MigrationProgressRecord:
        async with self._scope(request.tenant_id) as db:
            await db.migrations.require(request.migration_id)
            progress = await db.migrations.progress(request.migration_id)
        return _progress(request.tenant_id, request.migration_id, progress)

    @activity.defn(name="finish_file_migration")
    async def finish_file_migration(self, request: FinishMigrationInput) -> MigrationRecord:
        async with self._scope(request.tenant_id) as db:
            row = await db.migrations.finish(request.migration_id, request.state, request.detail)
            return _migration(row)

    @activity.defn(name="rollback_file_migration")
    async def rollback_file_migration(self, request: RollbackMigrationInput) -> MigrationRecord:
        async with self._scope(request.tenant_id) as db:
            return _migration(await db.migrations.rollback(request.migration_id, request.detail))

    # Processed events

    @activity.defn(name="mark_event_processed")
    async def mark_event_processed(self, request: ProcessedEventInput) -> EventMark:
        """Record an inbound event as handled; `first_time` is False for a duplicate."""
        async with self._scope(request.tenant_id) as db:
            first = await db.events.mark(request.consumer, request.event_id, request.event_type)
            return EventMark(first_time=first)

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of this instance, for `Worker(activities=...)`."""
        return [
            getattr(self, name)
            for name in dir(type(self))
            if hasattr(getattr(type(self), name), "__temporal_activity_definition")
        ]
