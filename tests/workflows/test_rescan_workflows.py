"""rescan_workflow's and file_quarantine_workflow's decisions, with fake activities.

The activities are functions of the same names over an in-memory catalogue of
files (newest first, by the rescan's cursor) and verdicts; they run on Temporal's
time-skipping test server, so the rescan's pauses for its rate take no wall time.
The real activities, clamd and the database are exercised in
tests/integration/test_rescan.py.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ferry.activities.clamd_version import ClamdVersion
from ferry.activities.database import (
    ActiveShares,
    ActiveSharesQuery,
    FileRejectedInput,
    RevokeShareInput,
)
from ferry.activities.database.shares import ShareRecord, ShareResult
from ferry.activities.events import OutboundEvent, PublishedEvent
from ferry.activities.rescan import (
    CLEAN,
    CURRENT,
    INFECTED,
    OutdatedQuery,
    RescanOutcome,
)
from ferry.activities.storage import MoveRequest
from ferry.contracts.enums import GranteeType, SharePermission, ShareStatus
from ferry.contracts.errors import OUTSIDE_TENANT
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import (
    SHARE_REVOKE_SIGNAL,
    OutdatedFile,
    RescanProgress,
    RescanRequest,
    ShareRevocation,
    file_quarantine_id,
    file_share_id,
)
from ferry.workflows.file_quarantine import REVOKED_BY, FileQuarantineWorkflow, QuarantineInput
from ferry.workflows.rescan import PAGES_PER_RUN, RescanWorkflow

VERSION = 27_477
EPOCH = datetime(2026, 12, 1, tzinfo=UTC)


class Files:
    """Processed files (index 0 the newest) and what the fakes were asked and did."""

    def __init__(
        self,
        count: int,
        infected: frozenset[int] = frozenset(),
        current: frozenset[int] = frozenset(),
    ) -> None:
        self.targets = [
            OutdatedFile(
                tenant_id="acme",
                file_id=f"f-{index:03d}",
                processed_at=EPOCH - timedelta(minutes=index),
                sha256=f"{index:064x}",
            )
            for index in range(count)
        ]
        self.infected, self.current = infected, current
        self.version = VERSION
        self.later_version: int | None = None  # clamd moves on after this many rescans
        self.moves_on_after: int | None = None
        self.rescanned: list[str] = []
        self.pages: list[OutdatedQuery] = []
        self.moved: list[MoveRequest] = []
        self.rejected: list[FileRejectedInput] = []
        self.events: list[dict[str, Any]] = []
        self.shares: dict[str, list[str]] = {}
        self.revoked: list[RevokeShareInput] = []
        self.move_refused: set[str] = set()  # keys whose move fails for good

    def activities(self) -> list[Any]:
        @activity.defn(name="current_signatures")
        async def current_signatures() -> ClamdVersion:
            return ClamdVersion("1.4.6", self.version)

        @activity.defn(name="list_outdated")
        async def list_outdated(query: OutdatedQuery) -> list[OutdatedFile]:
            self.pages.append(query)
            after = query.after
            left = [
                t
                for t in self.targets
                if after is None
                or (t.processed_at, t.tenant_id, t.file_id)
                < (after.processed_at, after.tenant_id, after.file_id)
            ]
            return left[: query.limit]

        @activity.defn(name="rescan_file")
        async def rescan_file(target: OutdatedFile) -> RescanOutcome:
            index = int(target.file_id.removeprefix("f-"))
            if self.moves_on_after is not None and len(self.rescanned) >= self.moves_on_after:
                self.version = self.later_version or self.version
            self.rescanned.append(target.file_id)
            status = INFECTED if index in self.infected else CLEAN
            if index in self.current:
                status = CURRENT
            return RescanOutcome(
                status,
                self.version,
                signature="Win.Test.Late" if status == INFECTED else None,
                sha256=target.sha256,
                storage=StorageRef("local", "ferry-acme", f"files/{target.file_id}/original"),
                previous_verdict_at=target.processed_at,
            )

        @activity.defn(name="tenant_policy")
        async def tenant_policy() -> TenantPolicy:
            return TenantPolicy()

        @activity.defn(name="move_object")
        async def move_object(request: MoveRequest) -> StorageRef:
            if request.source.key in self.move_refused:
                raise OUTSIDE_TENANT(f"{request.source.key} is not the tenant's")
            self.moved.append(request)
            return StorageRef(request.source.provider, request.bucket, request.key)

        @activity.defn(name="record_file_rejected")
        async def record_file_rejected(request: FileRejectedInput) -> Any:
            self.rejected.append(request)
            return None

        @activity.defn(name="list_active_shares")
        async def list_active_shares(query: ActiveSharesQuery) -> ActiveShares:
            return ActiveShares(self.shares.get(query.file_id, []))

        @activity.defn(name="revoke_share")
        async def revoke_share(request: RevokeShareInput) -> ShareResult:
            self.revoked.append(request)
            record = ShareRecord(
                request.tenant_id, request.share_id, "f", "u-1", GranteeType.USER,
                SharePermission.VIEW, ShareStatus.REVOKED,
            )  # fmt: skip
            return ShareResult(record, True)

        @activity.defn(name="publish_event")
        async def publish_event(event: OutboundEvent) -> PublishedEvent:
            self.events.append(event.fields)
            return PublishedEvent("ferry.file-events.v1", 0, len(self.events))

        return [
            current_signatures, list_outdated, rescan_file, tenant_policy, move_object,
            record_file_rejected, list_active_shares, revoke_share, publish_event,
        ]  # fmt: skip


@workflow.defn(name="file_sharing_workflow", sandboxed=False)  # a test stand-in
class ShareStandIn:
    """A share's workflow that waits for its revocation, and returns who revoked it."""

    def __init__(self) -> None:
        self._revocation: ShareRevocation | None = None

    @workflow.signal(name=SHARE_REVOKE_SIGNAL)
    def revoke(self, revocation: ShareRevocation) -> None:
        self._revocation = revocation

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self._revocation is not None)
        assert self._revocation is not None
        return self._revocation.revoked_by


@asynccontextmanager
async def worker(env: WorkflowEnvironment, files: Files) -> AsyncIterator[str]:
    queue = f"rescan-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[RescanWorkflow, FileQuarantineWorkflow, ShareStandIn],
        activities=files.activities(),
    ):
        yield queue


async def rescan(env: WorkflowEnvironment, files: Files, request: RescanRequest) -> RescanProgress:
    async with worker(env, files) as queue:
        return await env.client.execute_workflow(
            RescanWorkflow.run, request, id=f"rescan-{uuid.uuid4().hex[:8]}", task_queue=queue
        )


async def test_files_are_rescanned_newest_first_and_an_infected_one_is_quarantined(
    env: WorkflowEnvironment,
) -> None:
    files = Files(5, infected=frozenset({1}), current=frozenset({3}))
    progress = await rescan(env, files, RescanRequest(page_size=2))

    assert files.rescanned == ["f-000", "f-001", "f-002", "f-003", "f-004"]
    assert [p.limit for p in files.pages] == [2, 2, 2, 2]  # three pages, then an empty one
    assert files.pages[0].after is None
    assert files.pages[1].after == files.targets[1].cursor
    # Four read and judged again (one of them infected), one judged meanwhile: not read.
    counts = (progress.listed, progress.rescanned, progress.current, progress.quarantined)
    assert counts == (5, 4, 1, 1)
    assert progress.signature_version == VERSION and progress.superseded_by is None
    assert progress.quarantined_files == ["acme/f-001"]
    [moved] = files.moved
    assert (moved.bucket, moved.key, moved.tenant_id) == (
        "ferry-quarantine",
        "quarantine/acme/f-001",
        "acme",
    )
    [rejected] = files.rejected
    assert (rejected.file_id, rejected.quarantined, rejected.signature) == (
        "f-001",
        True,
        "Win.Test.Late",
    )
    [event] = files.events
    assert event["event_type"] == "file.quarantined"
    assert (event["file_id"], event["signature_version"], event["shares_revoked"]) == (
        "f-001",
        VERSION,
        0,
    )
    assert event["previous_verdict_at"] == int(files.targets[1].processed_at.timestamp() * 1000)


async def test_the_rate_bounds_how_fast_files_are_rescanned(
    env: WorkflowEnvironment,
) -> None:
    files = Files(6)
    async with worker(env, files) as queue:
        handle = await env.client.start_workflow(
            RescanWorkflow.run,
            RescanRequest(rate_per_second=0.5, page_size=3),
            id=f"rescan-{uuid.uuid4().hex[:8]}",
            task_queue=queue,
        )
        await handle.result()
        timers = [
            e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            async for e in handle.fetch_history_events()
            if e.HasField("timer_started_event_attributes")
        ]
    # Two pages of three files at half a file a second: six seconds each, less the work.
    assert len(timers) == 2
    assert all(timedelta(seconds=5) < t <= timedelta(seconds=6) for t in timers), timers


async def test_a_long_rescan_continues_as_new_carrying_its_progress(
    env: WorkflowEnvironment,
) -> None:
    files = Files(PAGES_PER_RUN + 5, infected=frozenset({PAGES_PER_RUN + 2}))
    progress = await rescan(env, files, RescanRequest(rate_per_second=1000, page_size=1))
    assert files.rescanned == [t.file_id for t in files.targets]  # each once, in order
    assert (progress.listed, progress.rescanned, progress.quarantined) == (
        PAGES_PER_RUN + 5,
        PAGES_PER_RUN + 5,
        1,
    )
    assert progress.quarantined_files == [f"acme/f-{PAGES_PER_RUN + 2:03d}"]


async def test_a_rescan_stops_when_clamd_moves_on_to_newer_signatures(
    env: WorkflowEnvironment,
) -> None:
    files = Files(6, infected=frozenset({4}))
    files.moves_on_after, files.later_version = 2, VERSION + 1
    progress = await rescan(env, files, RescanRequest(page_size=10))
    assert files.rescanned == ["f-000", "f-001", "f-002"]
    assert progress.superseded_by == VERSION + 1
    assert progress.rescanned == 2 and files.moved == []


async def test_without_a_signature_version_nothing_is_rescanned(
    env: WorkflowEnvironment,
) -> None:
    files = Files(3)
    files.version = None  # type: ignore[assignment]  # clamd answers `ClamAV 1.4.6` only
    progress = await rescan(env, files, RescanRequest())
    assert progress.signature_version is None
    assert files.pages == [] and files.rescanned == []


async def test_a_quarantine_signals_each_active_shares_workflow_and_ends_the_gone_ones(
    env: WorkflowEnvironment,
) -> None:
    files = Files(1)
    files.shares["f-000"] = ["live", "gone"]
    async with worker(env, files) as queue:
        live: WorkflowHandle[Any, str] = await env.client.start_workflow(
            ShareStandIn.run, id=file_share_id("acme", "live"), task_queue=queue
        )
        outcome = await env.client.execute_workflow(
            FileQuarantineWorkflow.run,
            QuarantineInput(
                tenant_id="acme",
                file_id="f-000",
                storage=StorageRef("local", "ferry-acme", "files/f-000/original"),
                signature="Win.Test.Late",
                signature_version=VERSION,
            ),
            id=file_quarantine_id("acme", "f-000"),
            task_queue=queue,
        )
        assert await live.result() == REVOKED_BY
    assert outcome.shares_revoked == ["live", "gone"]
    # The share without a workflow ends in the database alone.
    assert [(r.share_id, r.revoked_by) for r in files.revoked] == [("gone", REVOKED_BY)]
    [event] = files.events
    assert (event["shares_revoked"], event["previous_verdict_at"]) == (2, None)


async def test_a_quarantine_that_fails_is_named_and_the_rescan_goes_on(
    env: WorkflowEnvironment,
) -> None:
    files = Files(4, infected=frozenset({0, 2}))
    files.move_refused.add("files/f-000/original")
    progress = await rescan(env, files, RescanRequest(page_size=10))
    assert files.rescanned == ["f-000", "f-001", "f-002", "f-003"]
    assert progress.quarantine_failed == ["acme/f-000"]
    assert (progress.quarantined, progress.quarantined_files) == (1, ["acme/f-002"])
    assert [e["file_id"] for e in files.events] == ["f-002"]
