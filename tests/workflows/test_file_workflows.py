"""file_sharing_workflow's and file_migration_workflow's decisions, with fake activities.

The activities are replaced by functions of the same names. They run on Temporal's
time-skipping test server, so a month of a share's life and the back-offs of a
failing copy take no wall time. The fakes keep the migration's items and the
buckets in memory with the real semantics (a verified item stays verified, pages
by source key), so a workflow reads back what it wrote, across continue-as-new
too; the real activities are exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from waiting import eventually

from ferry.activities.database import (
    FileLookup,
    FileRecord,
    FileRef,
    FinishMigrationInput,
    MigrationItem,
    MigrationItemsInput,
    MigrationItemsPage,
    MigrationItemsQuery,
    MigrationProgressRecord,
    MigrationRecord,
    PermissionQuery,
    PermissionResult,
    RevokeShareInput,
    RollbackMigrationInput,
    ShareInput,
    ShareRecord,
    ShareResult,
    StartMigrationInput,
    StartMigrationResult,
)
from ferry.activities.events import OutboundEvent, PublishedEvent
from ferry.activities.migration import (
    CopiedObject,
    CopyBatch,
    CopyResult,
    DeleteBatch,
    ListedObject,
    Listing,
    ListRequest,
    file_id_of,
)
from ferry.activities.storage import SignRequest
from ferry.contracts.enums import (
    FileAction,
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    MigrationState,
    SharePermission,
    ShareStatus,
)
from ferry.contracts.ids import event_id_for
from ferry.contracts.storage import BucketRef, StorageRef
from ferry.contracts.workflows import MIGRATION_HISTORY_LIMIT, file_migration_id, file_share_id
from ferry.db.permissions import PermissionReason
from ferry.workflows.file_migration import (
    COPY_RETRY,
    MAX_BATCHES_IN_FLIGHT,
    FileMigrationWorkflow,
    MigrationProgress,
    MigrationRequest,
    MigrationResult,
)
from ferry.workflows.file_sharing import (
    FileSharingWorkflow,
    ShareOutcome,
    ShareRequest,
    ShareRevocation,
)

PENDING, COPIED, VERIFIED, ROLLED_BACK = (
    MigrationItemState.PENDING,
    MigrationItemState.COPIED,
    MigrationItemState.VERIFIED,
    MigrationItemState.ROLLED_BACK,
)
WEEK = timedelta(days=7)


@dataclasses.dataclass
class Call:
    name: str
    request: Any
    # The test server's clock when the call was scheduled (it skips with the workflow's).
    at: datetime


class FakeActivities:
    """One tenant's file, share, migration items and buckets in memory; records every call.

    `fail_copy` picks the copy batches that fail, and with what error, on every attempt.
    With `hold_copies`, a copy waits (a few seconds at most) until that many run at once,
    so the most seen running together is the workflow's bound, not the machine's speed.
    """

    def __init__(
        self,
        tenant_id: str,
        *,
        permission: PermissionResult | None = None,
        objects: int = 0,
        page_size: int = 10,
        hold_copies: int | None = None,
    ) -> None:
        self.tenant_id = tenant_id
        self.file = a_file(tenant_id)
        self.permission = permission or PermissionResult(
            True, PermissionReason.GRANTED_BY_ROLE, MemberRole.OWNER
        )
        self.calls: list[Call] = []
        self.events: list[dict[str, Any]] = []
        # Storage: (provider, bucket) -> key -> (size, sha256).
        self.buckets: dict[tuple[str, str], dict[str, tuple[int, str]]] = defaultdict(dict)
        for index in range(objects):
            key = f"files/f-{index:04d}/original"
            self.buckets[source_bucket(tenant_id)][key] = (100 + index, sha_of(key))
        self.page_size = page_size
        self.hold_copies = hold_copies
        self.copies_together = asyncio.Event()
        self.fail_copy: Callable[[CopyBatch], Exception | None] = lambda _: None
        self.copies: Counter[str] = Counter()
        self.copying = 0
        self.most_copying = 0
        # The migration's row and items, with every state each item went through.
        self.migration: MigrationState | None = None
        self.items: dict[str, MigrationItem] = {}
        self.history: dict[str, list[MigrationItemState]] = defaultdict(list)
        # The items' states when each delete_objects was asked for.
        self.states_at_delete: list[Counter[MigrationItemState]] = []

    def requests(self, name: str) -> list[Any]:
        return [call.request for call in self.calls if call.name == name]

    def names(self) -> list[str]:
        return [call.name for call in self.calls]

    def published(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event_type"] == event_type]

    def _call(self, name: str, request: Any) -> None:
        self.calls.append(Call(name, request, activity.info().current_attempt_scheduled_time))

    def _progress(self, migration_id: str) -> MigrationProgressRecord:
        verified = [i for i in self.items.values() if i.state == VERIFIED]
        return MigrationProgressRecord(
            self.tenant_id,
            migration_id,
            files_total=len(self.items),
            bytes_total=sum(i.size_bytes or 0 for i in self.items.values()),
            files_done=len(verified),
            bytes_done=sum(i.size_bytes or 0 for i in verified),
            files_failed=sum(
                1 for i in self.items.values() if i.state == MigrationItemState.FAILED
            ),
        )

    def _record(self, migration_id: str, state: MigrationState) -> MigrationRecord:
        source, target = source_bucket(self.tenant_id), target_bucket(self.tenant_id)
        return MigrationRecord(
            self.tenant_id, migration_id, state, source[0], source[1], target[0], target[1]
        )

    def _share(self, request: ShareInput | RevokeShareInput, status: ShareStatus) -> ShareRecord:
        return ShareRecord(
            self.tenant_id, request.share_id, self.file.file_id, "u-1", GranteeType.USER,
            SharePermission.VIEW, status,
        )  # fmt: skip

    def activities(self) -> list[Any]:
        @activity.defn(name="check_permission")
        async def check_permission(query: PermissionQuery) -> PermissionResult:
            self._call("check_permission", query)
            return self.permission

        @activity.defn(name="get_file")
        async def get_file(ref: FileRef) -> FileLookup:
            self._call("get_file", ref)
            return FileLookup(found=True, file=self.file)

        @activity.defn(name="record_share")
        async def record_share(request: ShareInput) -> ShareResult:
            self._call("record_share", request)
            return ShareResult(self._share(request, ShareStatus.ACTIVE), True)

        @activity.defn(name="revoke_share")
        async def revoke_share(request: RevokeShareInput) -> ShareResult:
            self._call("revoke_share", request)
            status = ShareStatus.EXPIRED if request.expired else ShareStatus.REVOKED
            return ShareResult(self._share(request, status), True)

        @activity.defn(name="sign_url")
        async def sign_url(request: SignRequest) -> str:
            self._call("sign_url", request)
            return f"https://signed.example/{request.ref.key}?expires={request.expires_seconds}"

        @activity.defn(name="start_file_migration")
        async def start(request: StartMigrationInput) -> StartMigrationResult:
            self._call("start_file_migration", request)
            self.migration = MigrationState.RUNNING
            return StartMigrationResult(self._record(request.migration_id, self.migration), True)

        @activity.defn(name="record_migration_items")
        async def record_items(request: MigrationItemsInput) -> MigrationProgressRecord:
            self._call("record_migration_items", request)
            if self.migration != MigrationState.RUNNING:
                raise ApplicationError(
                    f"migration is {self.migration}", type="InvalidTransition", non_retryable=True
                )
            for item in {i.source_key: i for i in request.items}.values():
                known = self.items.get(item.source_key)
                if known is not None and known.state == VERIFIED:
                    continue  # only a rollback changes a verified item
                target_key = item.target_key or item.source_key
                self.items[item.source_key] = dataclasses.replace(item, target_key=target_key)
                self.history[item.source_key].append(MigrationItemState(item.state))
            return self._progress(request.migration_id)

        @activity.defn(name="list_migration_items")
        async def list_items(query: MigrationItemsQuery) -> MigrationItemsPage:
            self._call("list_migration_items", query)
            rows = sorted(
                (
                    item
                    for item in self.items.values()
                    if (not query.states or item.state in query.states)
                    and (query.after_key is None or item.source_key > query.after_key)
                ),
                key=lambda item: item.source_key,
            )[: query.limit]
            last_page = len(rows) < query.limit or not rows
            return MigrationItemsPage(rows, None if last_page else rows[-1].source_key)

        @activity.defn(name="finish_file_migration")
        async def finish(request: FinishMigrationInput) -> MigrationRecord:
            self._call("finish_file_migration", request)
            self.migration = request.state
            return self._record(request.migration_id, request.state)

        @activity.defn(name="rollback_file_migration")
        async def rollback(request: RollbackMigrationInput) -> MigrationRecord:
            self._call("rollback_file_migration", request)
            if self.migration == MigrationState.COMPLETED:
                raise ApplicationError("completed", type="InvalidTransition", non_retryable=True)
            for key, item in self.items.items():
                if item.state in (COPIED, VERIFIED):
                    item.state = ROLLED_BACK
                    self.history[key].append(ROLLED_BACK)
            self.migration = MigrationState.ROLLED_BACK
            return self._record(request.migration_id, self.migration)

        @activity.defn(name="list_objects")
        async def list_objects(request: ListRequest) -> Listing:
            # Pages smaller than the workflow asks for, so a few objects make several pages.
            self._call("list_objects", request)
            bucket = self.buckets[(request.bucket.provider, request.bucket.bucket)]
            keys = sorted(k for k in bucket if k.startswith(request.prefix))
            start = int(request.page_token or 0)
            page = keys[start : start + self.page_size]
            more = start + self.page_size < len(keys)
            return Listing(
                [ListedObject(k, bucket[k][0], file_id_of(k)) for k in page],
                str(start + self.page_size) if more else None,
            )

        @activity.defn(name="copy_objects")
        async def copy_objects(batch: CopyBatch) -> CopyResult:
            self._call("copy_objects", batch)
            self.copying += 1
            self.most_copying = max(self.most_copying, self.copying)
            try:
                if self.hold_copies is not None:
                    if self.copying >= self.hold_copies:
                        self.copies_together.set()
                    try:
                        await asyncio.wait_for(self.copies_together.wait(), timeout=5)
                    except TimeoutError:
                        pass
                    # Long enough for a copy beyond the bound to start beside these.
                    await asyncio.sleep(0.2)
                error = self.fail_copy(batch)
                if error is not None:
                    raise error
                source = self.buckets[(batch.source.provider, batch.source.bucket)]
                target = self.buckets[(batch.target.provider, batch.target.bucket)]
                copied = []
                for listed in batch.objects:
                    self.copies[listed.key] += 1
                    written = target.get(listed.key) != source[listed.key]
                    target[listed.key] = source[listed.key]
                    copied.append(
                        CopiedObject(
                            listed.key, listed.size, source[listed.key][1], listed.file_id, written
                        )
                    )
                return CopyResult(copied)
            finally:
                self.copying -= 1

        @activity.defn(name="delete_objects")
        async def delete_objects(batch: DeleteBatch) -> int:
            self._call("delete_objects", batch)
            self.states_at_delete.append(Counter(i.state for i in self.items.values()))
            bucket = self.buckets[(batch.bucket.provider, batch.bucket.bucket)]
            for key in batch.keys:
                bucket.pop(key, None)
            return len(batch.keys)

        @activity.defn(name="publish_event")
        async def publish(event: OutboundEvent) -> PublishedEvent:
            self._call("publish_event", event)
            self.events.append(event.fields)
            return PublishedEvent("ferry.file-events.v1", 0, len(self.events))

        return [
            check_permission, get_file, record_share, revoke_share, sign_url, start,
            record_items, list_items, finish, rollback, list_objects, copy_objects,
            delete_objects, publish,
        ]  # fmt: skip


def sha_of(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def source_bucket(tenant_id: str) -> tuple[str, str]:
    return ("local", f"ferry-{tenant_id}")


def target_bucket(tenant_id: str) -> tuple[str, str]:
    return ("s3", f"ferry-{tenant_id}")


def a_tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def a_file(tenant_id: str) -> FileRecord:
    file_id = str(uuid.uuid4())
    return FileRecord(
        tenant_id=tenant_id,
        file_id=file_id,
        state=FileState.PROCESSED,
        filename="report.pdf",
        declared_content_type="application/pdf",
        size_bytes=4321,
        uploaded_by="u-1",
        storage=StorageRef("s3", f"ferry-{tenant_id}", f"files/{file_id}/original"),
    )


@asynccontextmanager
async def file_worker(env: WorkflowEnvironment, fakes: FakeActivities) -> AsyncIterator[str]:
    """A worker for both file workflows on a task queue of its own."""
    queue = f"files-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[FileSharingWorkflow, FileMigrationWorkflow],
        activities=fakes.activities(),
    ):
        yield queue


async def status_starts(handle: WorkflowHandle[Any, Any], prefix: str) -> bool:
    status: str = await handle.query(FileSharingWorkflow.status)
    return status.startswith(prefix)


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# ---------------------------------------------------------------------------
# Sharing
# ---------------------------------------------------------------------------


def a_share(
    fakes: FakeActivities,
    grantee_type: str,
    *,
    grantee: str | None = None,
    expires_at: datetime | None = None,
    notify: bool = False,
    message: str | None = None,
) -> ShareRequest:
    return ShareRequest(
        event_id=str(uuid.uuid4()),
        tenant_id=fakes.tenant_id,
        share_id=str(uuid.uuid4()),
        file_id=fakes.file.file_id,
        shared_by="u-1",
        grantee_type=grantee_type,
        permission="download",
        notify=notify,
        grantee=grantee,
        expires_at=expires_at,
        message=message,
    )


async def share_outcome(
    env: WorkflowEnvironment, fakes: FakeActivities, share: ShareRequest
) -> ShareOutcome:
    async with file_worker(env, fakes) as queue:
        return await env.client.execute_workflow(
            FileSharingWorkflow.run,
            share,
            id=file_share_id(share.tenant_id, share.share_id),
            task_queue=queue,
        )


async def test_a_public_link_lives_at_most_seven_days_then_expires_and_is_announced(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    fakes = FakeActivities(a_tenant_id())
    started = await env.get_current_time()
    share = a_share(fakes, "public_link", expires_at=started + timedelta(days=30))
    workflow_id = file_share_id(share.tenant_id, share.share_id)

    async with file_worker(env, fakes) as queue:
        handle = await env.client.start_workflow(
            FileSharingWorkflow.run, share, id=workflow_id, task_queue=queue
        )
        await eventually(lambda: fakes.published("file.shared"), "file.shared")
        await eventually(
            lambda: status_starts(handle, "active until"), "the share to wait for its expiry"
        )
        assert fakes.requests("revoke_share") == []
        # Waiting for the result lets the test server skip ahead to the share's timer.
        outcome = await handle.result()

    [recorded] = fakes.requests("record_share")
    assert outcome.expires_at is not None
    assert started < outcome.expires_at <= started + WEEK + timedelta(minutes=1)
    assert recorded.expires_at == outcome.expires_at
    assert (recorded.grantee_type, recorded.permission) == (
        GranteeType.PUBLIC_LINK, SharePermission.DOWNLOAD,
    )  # fmt: skip
    [signed] = fakes.requests("sign_url")
    assert signed.ref == fakes.file.storage
    assert WEEK - timedelta(minutes=1) <= timedelta(seconds=signed.expires_seconds) <= WEEK

    shared, expired = fakes.events
    assert shared["event_type"] == "file.shared"
    assert shared["event_id"] == event_id_for(workflow_id, "file.shared")
    link = f"https://signed.example/{fakes.file.storage.key}?expires={signed.expires_seconds}"
    assert shared["url"] == link
    assert (shared["share_id"], shared["file_id"], shared["grantee_type"], shared["grantee"]) == (
        share.share_id, share.file_id, "public_link", None,
    )  # fmt: skip
    assert shared["expires_at"] == millis(outcome.expires_at)
    assert shared["correlation_id"] == share.event_id

    # The grant ends when the link stops working, a week in, not at the asked-for month.
    [revoked] = [call for call in fakes.calls if call.name == "revoke_share"]
    assert revoked.request == RevokeShareInput(share.tenant_id, share.share_id, expired=True)
    assert outcome.expires_at <= revoked.at < outcome.expires_at + timedelta(hours=1)
    assert expired["event_type"] == "file.share_expired"
    assert expired["event_id"] == event_id_for(workflow_id, "file.share_expired")
    assert (expired["share_id"], expired["url"]) == (share.share_id, None)
    assert expired["expires_at"] == millis(outcome.expires_at)
    assert expired["occurred_at"] >= millis(outcome.expires_at)

    assert (outcome.status, outcome.detail, outcome.has_link) == ("expired", None, True)
    assert outcome.events == [shared["event_id"], expired["event_id"]]
    assert fakes.published("notification.requested") == []


async def test_an_email_share_notifies_the_grantee_and_one_revocation_ends_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    fakes = FakeActivities(a_tenant_id())
    share = a_share(
        fakes, "email", grantee="bob@example.com", notify=True, message="The Q3 numbers"
    )
    workflow_id = file_share_id(share.tenant_id, share.share_id)
    revocation = ShareRevocation(str(uuid.uuid4()), share.share_id, revoked_by="u-2")

    async with file_worker(env, fakes) as queue:
        handle = await env.client.start_workflow(
            FileSharingWorkflow.run, share, id=workflow_id, task_queue=queue
        )
        await eventually(lambda: fakes.published("file.shared"), "file.shared")
        await handle.signal(FileSharingWorkflow.revoke, revocation)
        await handle.signal(FileSharingWorkflow.revoke, revocation)
        outcome = await asyncio.wait_for(handle.result(), timeout=30)
        status = await handle.query(FileSharingWorkflow.status)

    [recorded] = fakes.requests("record_share")
    assert (recorded.grantee_type, recorded.grantee, recorded.notify, recorded.expires_at) == (
        GranteeType.EMAIL, "bob@example.com", True, None,
    )  # fmt: skip
    assert fakes.requests("sign_url") == []
    [check] = fakes.requests("check_permission")
    assert check == PermissionQuery(share.tenant_id, "u-1", share.file_id, FileAction.SHARE)

    notification, shared, revoked = fakes.events
    assert notification["event_type"] == "notification.requested"
    assert notification["event_id"] == event_id_for(workflow_id, "notification.requested")
    assert (notification["channel"], notification["recipient"], notification["template"]) == (
        "email", "bob@example.com", "file-shared",
    )  # fmt: skip
    assert notification["params"] == {
        "file_id": share.file_id,
        "filename": "report.pdf",
        "shared_by": "u-1",
        "permission": "download",
        "message": "The Q3 numbers",
    }
    assert notification["correlation_id"] == share.event_id
    assert shared["event_type"] == "file.shared"
    assert (shared["grantee"], shared["url"], shared["expires_at"]) == (
        "bob@example.com", None, None,
    )  # fmt: skip

    assert fakes.requests("revoke_share") == [
        RevokeShareInput(share.tenant_id, share.share_id, revoked_by="u-2")
    ]
    assert revoked["event_type"] == "file.share_revoked"
    assert revoked["event_id"] == event_id_for(workflow_id, "file.share_revoked")
    assert fakes.published("file.share_expired") == []
    assert (outcome.status, outcome.detail, outcome.has_link) == (
        "revoked", "revoked by u-2", False,
    )  # fmt: skip
    assert outcome.events == [e["event_id"] for e in (notification, shared, revoked)]
    assert status == "revoked"


# What a refused sharer reads, for each reason a permission check gives.
REFUSALS = {
    PermissionReason.TENANT_NOT_FOUND: "the tenant does not exist",
    PermissionReason.TENANT_INACTIVE: "the tenant is not active",
    PermissionReason.FILE_NOT_FOUND: "the file does not exist in this tenant",
    PermissionReason.FILE_NOT_READY: "the file is not processed yet",
    PermissionReason.FILE_NOT_CLEAN: "the file was rejected and may not be shared",
    PermissionReason.NOT_MEMBER: "the sharer is not a member of the tenant",
    PermissionReason.INSUFFICIENT_ROLE: "the sharer's role may not share this file",
}


@pytest.mark.parametrize(("reason", "detail"), list(REFUSALS.items()), ids=list(map(str, REFUSALS)))
async def test_a_share_the_sharer_may_not_make_is_refused_and_grants_nothing(
    time_skipping_env: WorkflowEnvironment, reason: PermissionReason, detail: str
) -> None:
    fakes = FakeActivities(
        a_tenant_id(), permission=PermissionResult(False, reason, MemberRole.VIEWER)
    )
    share = a_share(fakes, "user", grantee="u-9", notify=True)

    outcome = await share_outcome(time_skipping_env, fakes, share)

    assert (outcome.status, outcome.detail, outcome.events) == ("refused", detail, [])
    assert fakes.names() == ["check_permission"]
    assert fakes.events == []


@pytest.mark.parametrize(
    ("grantee_type", "grantee", "expires_in", "detail"),
    [
        ("email", "bob@example.com", timedelta(hours=-1), "the share expires before it starts"),
        ("public_link", None, timedelta(0), "the share expires before it starts"),
        ("user", None, None, "a user share names no grantee"),
        ("email", None, timedelta(days=1), "a email share names no grantee"),
    ],
    ids=["expired-email", "expires-now-link", "user-without-grantee", "email-without-grantee"],
)
async def test_a_share_that_cannot_start_is_refused_and_grants_nothing(
    time_skipping_env: WorkflowEnvironment,
    grantee_type: str,
    grantee: str | None,
    expires_in: timedelta | None,
    detail: str,
) -> None:
    env = time_skipping_env
    fakes = FakeActivities(a_tenant_id())
    now = await env.get_current_time()
    expires_at = None if expires_in is None else now + expires_in
    share = a_share(fakes, grantee_type, grantee=grantee, expires_at=expires_at, notify=True)

    outcome = await share_outcome(env, fakes, share)

    assert (outcome.status, outcome.detail, outcome.events) == ("refused", detail, [])
    assert "record_share" not in fakes.names() and "sign_url" not in fakes.names()
    assert fakes.events == []


# ---------------------------------------------------------------------------
# Migration
# ---------------------------------------------------------------------------


def a_migration(
    tenant_id: str,
    *,
    batch_size: int = 5,
    delete_source: bool = False,
    history_limit: int = MIGRATION_HISTORY_LIMIT,
    source: str | None = None,
    target: str | None = None,
) -> MigrationRequest:
    source_ref, target_ref = source_bucket(tenant_id), target_bucket(tenant_id)
    return MigrationRequest(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        migration_id=str(uuid.uuid4()),
        source=BucketRef(source_ref[0], source or source_ref[1]),
        target=BucketRef(target_ref[0], target or target_ref[1]),
        prefix="files/",
        batch_size=batch_size,
        delete_source=delete_source,
        history_limit=history_limit,
    )


async def migrate(
    env: WorkflowEnvironment, fakes: FakeActivities, request: MigrationRequest
) -> tuple[MigrationResult, MigrationProgress]:
    """The migration's result, and what its `progress` query shows once it is over."""
    async with file_worker(env, fakes) as queue:
        handle = await env.client.start_workflow(
            FileMigrationWorkflow.run,
            request,
            id=file_migration_id(request.tenant_id, request.migration_id),
            task_queue=queue,
        )
        result = await handle.result()
        progress = await handle.query(FileMigrationWorkflow.progress)
    return result, progress


def source_of(fakes: FakeActivities) -> dict[str, tuple[int, str]]:
    return fakes.buckets[source_bucket(fakes.tenant_id)]


def target_of(fakes: FakeActivities) -> dict[str, tuple[int, str]]:
    return fakes.buckets[target_bucket(fakes.tenant_id)]


async def test_a_migration_lists_copies_in_bounded_parallel_batches_verifies_and_completes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(
        a_tenant_id(), objects=23, page_size=10, hold_copies=MAX_BATCHES_IN_FLIGHT
    )
    originals = dict(source_of(fakes))
    request = a_migration(fakes.tenant_id, batch_size=5)
    workflow_id = file_migration_id(request.tenant_id, request.migration_id)

    result, progress = await migrate(time_skipping_env, fakes, request)

    [started] = fakes.requests("start_file_migration")
    assert (started.source_bucket, started.target_provider, started.target_bucket) == (
        f"ferry-{request.tenant_id}", "s3", f"ferry-{request.tenant_id}",
    )  # fmt: skip
    assert (started.prefix, started.batch_size, started.delete_source) == ("files/", 5, False)
    listings = fakes.requests("list_objects")
    assert [listing.page_token for listing in listings] == [None, "10", "20"]
    assert {listing.bucket.bucket for listing in listings} == {f"ferry-{request.tenant_id}"}

    # Every object went pending -> copied (written ahead) -> verified, and once only.
    assert set(fakes.history) == set(originals)
    assert all(states == [PENDING, COPIED, VERIFIED] for states in fakes.history.values())
    assert fakes.copies == Counter(dict.fromkeys(originals, 1))
    assert target_of(fakes) == originals
    assert sorted(len(batch.objects) for batch in fakes.requests("copy_objects")) == [
        3, 5, 5, 5, 5,
    ]  # fmt: skip
    assert fakes.most_copying == MAX_BATCHES_IN_FLIGHT
    verified = [i for i in fakes.items.values() if i.state == VERIFIED]
    assert all(i.sha256 == sha_of(i.source_key) for i in verified)
    assert all(i.file_id == file_id_of(i.source_key) for i in verified)

    assert fakes.requests("finish_file_migration") == [
        FinishMigrationInput(request.tenant_id, request.migration_id, MigrationState.COMPLETED)
    ]
    assert "delete_objects" not in fakes.names() and "rollback_file_migration" not in fakes.names()
    total_bytes = sum(size for size, _ in originals.values())
    [completed] = fakes.events
    assert completed["event_type"] == "file.migration_completed"
    assert completed["event_id"] == event_id_for(workflow_id, "file.migration_completed")
    assert (completed["migration_id"], completed["correlation_id"]) == (
        request.migration_id, request.event_id,
    )  # fmt: skip
    assert (completed["files_moved"], completed["bytes_moved"], completed["files_failed"]) == (
        23, total_bytes, 0,
    )  # fmt: skip
    assert (completed["rolled_back"], completed["detail"]) == (False, None)

    assert (result.status, result.detail, result.events) == (
        "completed", None, [completed["event_id"]],
    )  # fmt: skip
    assert progress.phase == "completed"
    assert progress.files_done == progress.files_total == 23
    assert progress.bytes_done == progress.bytes_total == total_bytes
    assert (progress.written, progress.skipped, progress.files_failed) == (23, 0, 0)


async def test_sources_are_deleted_only_after_every_copy_is_verified(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(a_tenant_id(), objects=23, page_size=10)
    originals = dict(source_of(fakes))
    request = a_migration(fakes.tenant_id, batch_size=5, delete_source=True)

    result, progress = await migrate(time_skipping_env, fakes, request)

    assert result.status == "completed"
    names = fakes.names()
    first_delete = names.index("delete_objects")
    last_copy = len(names) - 1 - names[::-1].index("copy_objects")
    last_record = len(names) - 1 - names[::-1].index("record_migration_items")
    assert last_copy < last_record < first_delete < names.index("finish_file_migration")
    assert fakes.states_at_delete and all(
        states == Counter({VERIFIED: 23}) for states in fakes.states_at_delete
    )
    deletes = fakes.requests("delete_objects")
    assert {d.bucket.bucket for d in deletes} == {f"ferry-{request.tenant_id}"}
    assert sorted(key for d in deletes for key in d.keys) == sorted(originals)
    assert source_of(fakes) == {}
    assert target_of(fakes) == originals
    assert progress.files_done == progress.files_total == 23


async def test_a_batch_that_keeps_failing_rolls_the_whole_migration_back(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities(a_tenant_id(), objects=23, page_size=10)
    keys = sorted(source_of(fakes))
    broken = keys[5]
    fakes.fail_copy = lambda batch: (
        ApplicationError("the target is unavailable", type="StorageUnavailable")
        if any(o.key == broken for o in batch.objects)
        else None
    )
    request = a_migration(fakes.tenant_id, batch_size=5)
    workflow_id = file_migration_id(request.tenant_id, request.migration_id)

    result, progress = await migrate(time_skipping_env, fakes, request)

    attempts = [b for b in fakes.requests("copy_objects") if b.objects[0].key == broken]
    assert len(attempts) == COPY_RETRY.maximum_attempts
    detail = "StorageUnavailable: the target is unavailable"
    assert fakes.requests("rollback_file_migration") == [
        RollbackMigrationInput(request.tenant_id, request.migration_id, detail)
    ]
    # Every object handed to a batch of that round may be in the target: all of it goes.
    handed_out = keys[: 5 * MAX_BATCHES_IN_FLIGHT]
    deletes = fakes.requests("delete_objects")
    assert {(d.bucket.provider, d.bucket.bucket) for d in deletes} == {
        target_bucket(request.tenant_id)
    }
    assert sorted(key for d in deletes for key in d.keys) == handed_out
    assert target_of(fakes) == {}
    assert {k: i.state for k, i in fakes.items.items()} == {
        **dict.fromkeys(handed_out, ROLLED_BACK),
        **dict.fromkeys(keys[len(handed_out) :], PENDING),
    }
    assert "finish_file_migration" not in fakes.names()

    [failed] = fakes.events
    assert failed["event_type"] == "file.migration_failed"
    assert failed["event_id"] == event_id_for(workflow_id, "file.migration_failed")
    assert (failed["rolled_back"], failed["detail"]) == (True, detail)
    assert (failed["files_moved"], failed["bytes_moved"]) == (0, 0)
    assert (result.status, result.detail, result.events) == (
        "rolled_back", detail, [failed["event_id"]],
    )  # fmt: skip
    assert (progress.phase, progress.files_done, progress.files_total) == ("rolled back", 0, 23)


async def test_a_long_migration_continues_as_new_and_copies_each_object_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    fakes = FakeActivities(a_tenant_id(), objects=60, page_size=5)
    originals = dict(source_of(fakes))
    request = a_migration(fakes.tenant_id, batch_size=2, history_limit=40)
    workflow_id = file_migration_id(request.tenant_id, request.migration_id)

    async with file_worker(env, fakes) as queue:
        handle = await env.client.start_workflow(
            FileMigrationWorkflow.run, request, id=workflow_id, task_queue=queue
        )
        result = await handle.result()
        first_run = await env.client.get_workflow_handle(
            workflow_id, run_id=handle.first_execution_run_id
        ).describe()

    assert first_run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert result.progress.runs > 2
    assert result.status == "completed"
    assert len(fakes.requests("start_file_migration")) == 1
    tokens = [listing.page_token for listing in fakes.requests("list_objects")]
    assert tokens == [None, *(str(at) for at in range(5, 60, 5))]
    assert fakes.copies == Counter(dict.fromkeys(originals, 1))
    assert all(states == [PENDING, COPIED, VERIFIED] for states in fakes.history.values())
    assert target_of(fakes) == originals

    total_bytes = sum(size for size, _ in originals.values())
    [completed] = fakes.events
    assert completed["event_id"] == event_id_for(workflow_id, "file.migration_completed")
    assert (completed["files_moved"], completed["bytes_moved"]) == (60, total_bytes)
    p = result.progress
    assert (p.files_done, p.files_total, p.bytes_done, p.written, p.skipped) == (
        60, 60, total_bytes, 60, 0,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("source", "target", "side", "bucket"),
    [
        ("ferry-other", None, "source", "ferry-other"),
        (None, "ferry-other-archive", "target", "ferry-other-archive"),
        (None, "{own}corp", "target", "{own}corp"),
        # Tenant `<own>-archive` owns this bucket: a hyphen does not make it the tenant's.
        (None, "{own}-archive", "target", "{own}-archive"),
        ("archive-{own}", None, "source", "archive-{own}"),
    ],
    ids=[
        "source-of-another",
        "target-of-another",
        "target-sharing-a-prefix",
        "target-of-a-tenant-named-like-it",
        "not-ferry",
    ],
)
async def test_a_migration_naming_another_tenants_bucket_is_refused_before_it_starts(
    time_skipping_env: WorkflowEnvironment,
    source: str | None,
    target: str | None,
    side: str,
    bucket: str,
) -> None:
    fakes = FakeActivities(a_tenant_id(), objects=3)
    own = f"ferry-{fakes.tenant_id}"
    request = a_migration(
        fakes.tenant_id,
        source=None if source is None else source.format(own=own),
        target=None if target is None else target.format(own=own),
    )
    workflow_id = file_migration_id(request.tenant_id, request.migration_id)

    result, _ = await migrate(time_skipping_env, fakes, request)

    detail = f"the {side} bucket {bucket.format(own=own)!r} is not the tenant's ({own})"
    assert (result.status, result.detail) == ("refused", detail)
    assert fakes.names() == ["publish_event"]
    [failed] = fakes.events
    assert failed["event_type"] == "file.migration_failed"
    assert failed["event_id"] == event_id_for(workflow_id, "file.migration_failed")
    assert (failed["rolled_back"], failed["detail"], failed["files_moved"]) == (False, detail, 0)
    assert result.events == [failed["event_id"]]
