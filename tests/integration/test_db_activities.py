"""DatabaseActivities on the real database: idempotent writes, permanent errors, permissions."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from ferry.activities.database import (
    ActiveSharesQuery,
    ApplyPlanInput,
    CreateTenantInput,
    DatabaseActivities,
    FileLocationInput,
    FileProcessedInput,
    FileProcessingInput,
    FileRef,
    FileRejectedInput,
    FinishMigrationInput,
    MemberInput,
    MigrationItem,
    MigrationItemsInput,
    MigrationItemsQuery,
    MigrationRef,
    OverQuotaInput,
    PendingKeysInput,
    PermissionQuery,
    ProcessedEventInput,
    RevokeShareInput,
    RollbackMigrationInput,
    ShareInput,
    ShareRef,
    StartMigrationInput,
    TenantRef,
    TenantStatusInput,
    UploadCheckInput,
    UploadRefusal,
    UsageReport,
)
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
from ferry.contracts.plans import PLAN_LIMITS
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.db import PermissionReason

if TYPE_CHECKING:
    from db_fixtures import Snapshot

pytest_plugins = ["db_fixtures"]
pytestmark = pytest.mark.stack


@pytest.fixture
def tenant() -> str:
    """A bare tenant ID (the shared `tenant` fixture provisions one; these tests do it)."""
    return f"t-{uuid.uuid4().hex[:12]}"


In = TypeVar("In")
Out = TypeVar("Out")

GiB = 1024**3


@pytest.fixture(scope="module")
def activities(app_sessionmaker: async_sessionmaker[AsyncSession]) -> DatabaseActivities:
    return DatabaseActivities(app_sessionmaker)


@pytest.fixture
def env() -> ActivityEnvironment:
    return ActivityEnvironment()


def _name(fn: Callable[..., Any]) -> str:
    return str(fn.__temporal_activity_definition.name)  # type: ignore[attr-defined]


class Twice:
    """Runs an activity twice and checks the tenant's rows after the second run are unchanged."""

    def __init__(self, env: ActivityEnvironment, snapshot_of: Snapshot, tenant_id: str) -> None:
        self.env, self.snapshot_of, self.tenant_id = env, snapshot_of, tenant_id
        self.ran: set[str] = set()

    async def __call__(self, fn: Callable[[In], Awaitable[Out]], request: In) -> Out:
        first: Out = await self.env.run(fn, request)
        after_one = await self.snapshot_of(self.tenant_id)
        await self.env.run(fn, request)
        after_two = await self.snapshot_of(self.tenant_id)
        for table in after_one:
            assert after_two[table] == after_one[table], f"{_name(fn)} changed {table} on a repeat"
        self.ran.add(_name(fn))
        return first


def _tenant_input(tenant: str, plan: TenantPlan = TenantPlan.FREE) -> CreateTenantInput:
    return CreateTenantInput(
        tenant_id=tenant,
        name=f"Tenant {tenant}",
        plan=plan,
        region="eu-west-1",
        admin_email=f"admin@{tenant}.example",
        storage_provider=StorageProvider.LOCAL,
        storage_bucket=f"ferry-{tenant}",
    )


def _upload(tenant: str, file_id: str, size: int = 2048) -> FileProcessingInput:
    return FileProcessingInput(
        tenant_id=tenant,
        file_id=file_id,
        filename=f"{file_id}.png",
        declared_content_type="image/png",
        size_bytes=size,
        storage=StorageRef("local", "ferry-ingest", f"tenants/{tenant}/uploads/{file_id}/a.png"),
        uploaded_by=f"admin@{tenant}.example",
        event_id=f"event-{file_id}",
    )


def _processed(tenant: str, file_id: str, size: int = 2048) -> FileProcessedInput:
    return FileProcessedInput(
        tenant_id=tenant,
        file_id=file_id,
        sha256="0f" * 32,
        size_bytes=size,
        content_type="image/png",
        storage=StorageRef("local", f"ferry-{tenant}", f"files/{file_id}/original"),
        thumbnails=[
            Thumbnail("256.webp", f"files/{file_id}/thumbnails/256.webp", 256, 171, "image/webp"),
            Thumbnail("1024.jpg", f"files/{file_id}/thumbnails/1024.jpg", 1024, 683, "image/jpeg"),
        ],
        metadata={"width": "1536", "height": "1024"},
        analysis={"moderation": "safe", "language": "en"},
    )


async def test_every_activity_run_twice_leaves_the_rows_of_one_run(
    activities: DatabaseActivities, env: ActivityEnvironment, snapshot_of: Snapshot, tenant: str
) -> None:
    """A tenant's whole life, every step run twice: the second run changes no row."""
    acts = activities
    twice = Twice(env, snapshot_of, tenant)
    admin = f"admin@{tenant}.example"

    created = await twice(acts.create_tenant, _tenant_input(tenant))
    assert created.created and created.tenant.status == TenantStatus.PROVISIONING
    assert (await twice(acts.get_tenant, TenantRef(tenant))).found
    await twice(acts.set_tenant_status, TenantStatusInput(tenant, TenantStatus.ACTIVE))
    await twice(acts.add_tenant_member, MemberInput(tenant, "ed", MemberRole.EDITOR, "ed@x.io"))
    upgraded = await twice(acts.apply_tenant_plan, ApplyPlanInput(tenant, TenantPlan.PRO))
    assert upgraded.quota_bytes == PLAN_LIMITS[TenantPlan.PRO].quota_bytes
    await twice(acts.set_tenant_over_quota, OverQuotaInput(tenant, True))
    await env.run(acts.set_tenant_over_quota, OverQuotaInput(tenant, False))
    assert (await twice(acts.check_upload, UploadCheckInput(tenant, 2048))).allowed

    started = await twice(acts.record_file_processing, _upload(tenant, "f1"))
    assert started.created and started.file.state == FileState.PROCESSING
    done = await twice(acts.record_file_processed, _processed(tenant, "f1"))
    assert done.state == FileState.PROCESSED and len(done.thumbnails) == 2
    found = await twice(acts.get_file, FileRef(tenant, "f1"))
    assert found.file is not None and found.file.analysis["moderation"] == "safe"
    moved = StorageRef("s3", f"ferry-{tenant}", "files/f1/original")
    assert (
        await twice(acts.record_file_location, FileLocationInput(tenant, "f1", moved))
    ).storage == moved
    may_share = await twice(
        acts.check_permission, PermissionQuery(tenant, admin, "f1", FileAction.SHARE)
    )
    assert may_share.allowed and may_share.role == MemberRole.OWNER

    expiry = datetime(2030, 1, 1, tzinfo=UTC)
    link, download = GranteeType.PUBLIC_LINK, SharePermission.DOWNLOAD
    share = ShareInput(tenant, "s1", "f1", admin, link, download, expires_at=expiry)
    assert (await twice(acts.record_share, share)).changed
    assert (await twice(acts.get_share, ShareRef(tenant, "s1"))).found
    active = await twice(acts.list_active_shares, ActiveSharesQuery(tenant, "f1"))
    assert active.share_ids == ["s1"]
    revoked = await twice(acts.revoke_share, RevokeShareInput(tenant, "s1", revoked_by=admin))
    assert revoked.changed and revoked.share.status == ShareStatus.REVOKED
    assert (await twice(acts.list_active_shares, ActiveSharesQuery(tenant, "f1"))).share_ids == []

    begun = await twice(acts.begin_upload, _upload(tenant, "f2"))
    assert begun.found and begun.tenant is not None and begun.tenant.tenant_id == tenant
    assert begun.file is not None and begun.file.file.state == FileState.PROCESSING
    assert begun.check is not None and begun.check.allowed
    assert (await env.run(acts.begin_upload, _upload("t-nobody", "f9"))).found is False
    quarantine = StorageRef("local", "ferry-quarantine", f"quarantine/{tenant}/f2")
    rejected = FileRejectedInput(
        tenant, "f2", RejectionReason.INFECTED, "clamd found Eicar", "Eicar", quarantine, True
    )
    assert (await twice(acts.record_file_rejected, rejected)).state == FileState.QUARANTINED

    usage = await twice(acts.measure_tenant_usage, TenantRef(tenant))
    assert (usage.files, usage.bytes) == (1, 2048)
    end = datetime(2026, 1, 1, 12, tzinfo=UTC)
    report = UsageReport(
        tenant, end - timedelta(hours=1), end, 1, 2048, usage.quota_bytes, usage.plan
    )
    assert (await twice(acts.record_usage, report)) == report

    migration = StartMigrationInput(
        tenant, "m1", "s3", f"ferry-{tenant}", "azure", f"ferry-{tenant}"
    )
    assert (await twice(acts.start_file_migration, migration)).created
    verified = MigrationItem("files/f1/original", MigrationItemState.VERIFIED, None, "f1", 2048)
    failed = MigrationItem("files/f1/256.webp", MigrationItemState.FAILED, detail="boom")
    batch = MigrationItemsInput(tenant, "m1", [verified, failed])
    progress = await twice(acts.record_migration_items, batch)
    assert (progress.files_total, progress.files_done, progress.files_failed) == (2, 1, 1)
    pending = await twice(
        acts.pending_migration_keys, PendingKeysInput(tenant, "m1", ["files/f1/original", "other"])
    )
    assert pending.keys == ["other"]
    page = await twice(acts.list_migration_items, MigrationItemsQuery(tenant, "m1", limit=1))
    assert page.next_after_key == "files/f1/256.webp"  # ordered by source key
    assert (await twice(acts.get_migration_progress, MigrationRef(tenant, "m1"))).bytes_done == 2048
    file = (await env.run(acts.get_file, FileRef(tenant, "f1"))).file
    assert file is not None and file.storage.provider == "azure"
    rolled_back = await twice(
        acts.rollback_file_migration, RollbackMigrationInput(tenant, "m1", "target failed")
    )
    assert rolled_back.state == MigrationState.ROLLED_BACK
    file = (await env.run(acts.get_file, FileRef(tenant, "f1"))).file
    assert file is not None and file.storage == moved

    await env.run(
        acts.start_file_migration, StartMigrationInput(tenant, "m2", "s3", "a", "gcs", "b")
    )
    finished = await twice(
        acts.finish_file_migration, FinishMigrationInput(tenant, "m2", MigrationState.COMPLETED)
    )
    assert finished.state == MigrationState.COMPLETED

    event = ProcessedEventInput(tenant, "ferry-bridge", "e-1", "file.uploaded")
    assert (await twice(acts.mark_event_processed, event)).first_time

    before = await env.run(acts.count_tenant_rows, TenantRef(tenant))
    deleted = await twice(acts.delete_tenant_rows, TenantRef(tenant))
    assert deleted.rows["tenants"] == 1 and deleted.rows["files"] == 2
    assert deleted.rows == before.rows, "what was counted is what was deleted"
    assert not (await env.run(acts.get_tenant, TenantRef(tenant))).found
    left = await twice(acts.count_tenant_rows, TenantRef(tenant))
    assert set(left.rows) == set(deleted.rows) and not any(left.rows.values())

    defined = {_name(fn) for fn in acts.activities()}
    assert twice.ran == defined, f"not run twice: {sorted(defined - twice.ran)}"


async def test_a_duplicate_event_is_reported_per_tenant(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str, other_tenant: str
) -> None:
    event = ProcessedEventInput(tenant, "ferry-bridge", "same-id", "file.uploaded")
    assert (await env.run(activities.mark_event_processed, event)).first_time
    assert not (await env.run(activities.mark_event_processed, event)).first_time
    elsewhere = ProcessedEventInput(other_tenant, "ferry-bridge", "same-id", "file.uploaded")
    assert (await env.run(activities.mark_event_processed, elsewhere)).first_time


async def test_deleting_a_tenant_keeps_its_processed_events(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    """A redelivered creation event after deletion is still a duplicate (no resurrection)."""
    await env.run(activities.create_tenant, _tenant_input(tenant))
    event = ProcessedEventInput(tenant, "ferry-bridge", "create-1", "tenant.creation_requested")
    await env.run(activities.mark_event_processed, event)
    await env.run(activities.delete_tenant_rows, TenantRef(tenant))
    assert not (await env.run(activities.mark_event_processed, event)).first_time


@pytest.mark.parametrize(
    ("make", "error_type"),
    [
        (lambda t: _upload(t, "f"), "TenantNotFound"),
        (lambda t: _processed(t, "missing"), "FileNotFound"),
        (lambda t: RevokeShareInput(t, "missing"), "ShareNotFound"),
        (lambda t: UploadCheckInput(t, 1), "TenantNotFound"),
        (lambda t: TenantRef("Not A Slug"), "InvalidTenantId"),
    ],
)
async def test_permanent_failures_are_not_retryable(
    activities: DatabaseActivities,
    env: ActivityEnvironment,
    tenant: str,
    make: Callable[[str], Any],
    error_type: str,
) -> None:
    fn: dict[type, Callable[[Any], Awaitable[Any]]] = {
        FileProcessingInput: activities.record_file_processing,
        FileProcessedInput: activities.record_file_processed,
        RevokeShareInput: activities.revoke_share,
        UploadCheckInput: activities.check_upload,
        TenantRef: activities.get_tenant,
    }
    if error_type in ("FileNotFound", "ShareNotFound"):
        await env.run(activities.create_tenant, _tenant_input(tenant))
    request = make(tenant)
    with pytest.raises(ApplicationError) as failure:
        await env.run(fn[type(request)], request)
    assert (failure.value.type, failure.value.non_retryable) == (error_type, True)


async def test_a_rejected_file_cannot_become_processed(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    await env.run(activities.create_tenant, _tenant_input(tenant))
    await env.run(activities.record_file_processing, _upload(tenant, "f"))
    rejected = FileRejectedInput(tenant, "f", RejectionReason.INVALID_TYPE, "a PNG named .pdf")
    assert (await env.run(activities.record_file_rejected, rejected)).state == FileState.REJECTED
    with pytest.raises(ApplicationError) as failure:
        await env.run(activities.record_file_processed, _processed(tenant, "f"))
    assert failure.value.type == "InvalidTransition" and failure.value.non_retryable
    again = await env.run(activities.record_file_processing, _upload(tenant, "f"))
    assert not again.created and again.file.state == FileState.REJECTED


async def test_processing_again_replaces_the_thumbnails(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    """A file processed again (say, by a newer thumbnailer) ends with exactly the new set."""
    await env.run(activities.create_tenant, _tenant_input(tenant))
    started = await env.run(activities.record_file_processing, _upload(tenant, "f"))
    assert started.created and started.file.thumbnails == []
    first = await env.run(activities.record_file_processed, _processed(tenant, "f"))
    assert [t.name for t in first.thumbnails] == ["1024.jpg", "256.webp"]
    small = Thumbnail("256.webp", "files/f/thumbnails/256-v2.webp", 256, 171, "image/webp", 99)
    again = dataclasses.replace(_processed(tenant, "f"), thumbnails=[small], sha256="ab" * 32)
    second = await env.run(activities.record_file_processed, again)
    assert second.thumbnails == [small] and second.sha256 == "ab" * 32
    found = await env.run(activities.get_file, FileRef(tenant, "f"))
    assert found.file is not None and found.file.thumbnails == [small]
    again_begun = await env.run(activities.record_file_processing, _upload(tenant, "f"))
    assert again_begun.file == found.file
    # And processed once more with none (an image no longer thumbnailed): none are left.
    bare = dataclasses.replace(again, thumbnails=[])
    assert (await env.run(activities.record_file_processed, bare)).thumbnails == []
    found = await env.run(activities.get_file, FileRef(tenant, "f"))
    assert found.file is not None and found.file.thumbnails == []


async def test_an_ended_share_is_not_recorded_again(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    await env.run(activities.create_tenant, _tenant_input(tenant))
    await env.run(activities.record_file_processing, _upload(tenant, "f"))
    await env.run(activities.record_file_processed, _processed(tenant, "f"))
    share = ShareInput(tenant, "s", "f", "u", GranteeType.EMAIL, SharePermission.VIEW, "a@b.c")
    await env.run(activities.record_share, share)
    expired = await env.run(activities.revoke_share, RevokeShareInput(tenant, "s", expired=True))
    assert expired.share.status == ShareStatus.EXPIRED
    again = await env.run(activities.record_share, share)
    assert not again.changed and again.share.status == ShareStatus.EXPIRED
    revoked = await env.run(activities.revoke_share, RevokeShareInput(tenant, "s", "u"))
    assert not revoked.changed and revoked.share.status == ShareStatus.EXPIRED


async def test_check_upload_refuses_by_status_size_and_quota(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    await env.run(activities.create_tenant, _tenant_input(tenant))

    async def check(size: int) -> UploadRefusal | None:
        return (await env.run(activities.check_upload, UploadCheckInput(tenant, size))).refusal

    assert await check(10) == UploadRefusal.TENANT_INACTIVE  # still provisioning
    await env.run(activities.set_tenant_status, TenantStatusInput(tenant, TenantStatus.ACTIVE))
    assert await check(10) is None
    assert await check(PLAN_LIMITS[TenantPlan.FREE].max_file_bytes + 1) == UploadRefusal.TOO_LARGE
    await env.run(activities.set_tenant_over_quota, OverQuotaInput(tenant, True))
    assert await check(10) == UploadRefusal.QUOTA_EXCEEDED
    await env.run(activities.set_tenant_over_quota, OverQuotaInput(tenant, False))
    await env.run(activities.record_file_processing, _upload(tenant, "big", 9 * GiB // 2))
    await env.run(activities.record_file_processed, _processed(tenant, "big", 9 * GiB // 2))
    assert await check(1 * GiB) == UploadRefusal.QUOTA_EXCEEDED  # 4.5 + 1 GiB > 5 GiB
    await env.run(activities.apply_tenant_plan, ApplyPlanInput(tenant, TenantPlan.PRO))
    assert await check(1 * GiB) is None
    await env.run(activities.set_tenant_status, TenantStatusInput(tenant, TenantStatus.SUSPENDED))
    assert await check(10) == UploadRefusal.TENANT_INACTIVE


async def test_permission_checks(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str, other_tenant: str
) -> None:
    """Membership and role, the file's tenant and state, and shares decide."""
    for t in (tenant, other_tenant):
        await env.run(activities.create_tenant, _tenant_input(t))
        await env.run(activities.set_tenant_status, TenantStatusInput(t, TenantStatus.ACTIVE))
    admin = f"admin@{tenant}.example"
    for user, role in (("ed", MemberRole.EDITOR), ("vi", MemberRole.VIEWER)):
        await env.run(activities.add_tenant_member, MemberInput(tenant, user, role))
    for file_id, uploader in (("by-admin", admin), ("by-ed", "ed")):
        upload = _upload(tenant, file_id)
        upload.uploaded_by = uploader
        await env.run(activities.record_file_processing, upload)
        await env.run(activities.record_file_processed, _processed(tenant, file_id))
    await env.run(activities.record_file_processing, _upload(tenant, "pending"))
    await env.run(activities.record_file_processing, _upload(other_tenant, "theirs"))
    await env.run(activities.record_file_processed, _processed(other_tenant, "theirs"))
    share = ShareInput(
        tenant, "s", "by-admin", admin, GranteeType.USER, SharePermission.EDIT, "guest"
    )
    await env.run(activities.record_share, share)

    async def check(user: str, file_id: str, action: FileAction) -> tuple[bool, PermissionReason]:
        query = PermissionQuery(tenant, user, file_id, action)
        result = await env.run(activities.check_permission, query)
        return result.allowed, result.reason

    R = PermissionReason
    assert await check(admin, "by-ed", FileAction.SHARE) == (True, R.GRANTED_BY_ROLE)
    assert await check("ed", "by-ed", FileAction.SHARE) == (True, R.GRANTED_BY_ROLE)
    assert await check("ed", "by-admin", FileAction.SHARE) == (False, R.INSUFFICIENT_ROLE)
    assert await check("ed", "by-admin", FileAction.EDIT) == (True, R.GRANTED_BY_ROLE)
    assert await check("vi", "by-admin", FileAction.DOWNLOAD) == (True, R.GRANTED_BY_ROLE)
    assert await check("vi", "by-admin", FileAction.EDIT) == (False, R.INSUFFICIENT_ROLE)
    assert await check("guest", "by-admin", FileAction.EDIT) == (True, R.GRANTED_BY_SHARE)
    assert await check("guest", "by-admin", FileAction.SHARE) == (False, R.NOT_MEMBER)
    assert await check("guest", "by-ed", FileAction.VIEW) == (False, R.NOT_MEMBER)
    assert await check(admin, "theirs", FileAction.VIEW) == (False, R.FILE_NOT_FOUND)
    assert await check(admin, "pending", FileAction.SHARE) == (False, R.FILE_NOT_READY)
    await env.run(activities.revoke_share, RevokeShareInput(tenant, "s", admin))
    assert await check("guest", "by-admin", FileAction.VIEW) == (False, R.NOT_MEMBER)
    await env.run(activities.set_tenant_status, TenantStatusInput(tenant, TenantStatus.SUSPENDED))
    assert await check(admin, "by-admin", FileAction.SHARE) == (False, R.TENANT_INACTIVE)
    assert await check(admin, "by-admin", FileAction.VIEW) == (True, R.GRANTED_BY_ROLE)


async def test_create_tenant_twice_is_one_tenant(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    first = await env.run(activities.create_tenant, _tenant_input(tenant))
    second = await env.run(activities.create_tenant, _tenant_input(tenant, TenantPlan.PRO))
    assert first.created and not second.created
    assert second.tenant.plan == TenantPlan.FREE  # the duplicate request changed nothing


async def test_the_upload_check_counts_from_running_totals_that_follow_every_change(
    activities: DatabaseActivities, env: ActivityEnvironment, tenant: str
) -> None:
    """The check reads the totals the database keeps (no count of the tenant's rows): they
    follow files into and out of `processed`, a retry that changes nothing, a processed
    file's new size, a quarantine, and the tenant's rows deleted."""

    async def used() -> tuple[int, int]:
        check = await env.run(activities.check_upload, UploadCheckInput(tenant, 1))
        return check.used_files, check.used_bytes

    await env.run(activities.create_tenant, _tenant_input(tenant))
    assert await used() == (0, 0)
    for file_id, size in (("a", 1000), ("b", 3000), ("c", 500)):
        await env.run(activities.record_file_processing, _upload(tenant, file_id, size))
    assert await used() == (0, 0)  # processing counts for nothing yet
    await env.run(activities.record_file_processed, _processed(tenant, "a", 1000))
    await env.run(activities.record_file_processed, _processed(tenant, "b", 3000))
    await env.run(activities.record_file_processed, _processed(tenant, "b", 3000))  # a retry
    assert await used() == (2, 4000)
    await env.run(activities.record_file_processed, _processed(tenant, "b", 5000))
    assert await used() == (2, 6000)
    rejected = FileRejectedInput(tenant, "a", RejectionReason.INFECTED, "newer signatures")
    await env.run(activities.record_file_rejected, rejected)
    assert await used() == (1, 5000)
    await env.run(activities.record_file_rejected, dataclasses.replace(rejected, file_id="c"))
    assert await used() == (1, 5000)  # it was never processed
    await env.run(activities.delete_tenant_rows, TenantRef(tenant))
    await env.run(activities.create_tenant, _tenant_input(tenant))
    assert await used() == (0, 0)
