"""file_upload_workflow's decisions, with its activities replaced by functions of the same name.

These run on Temporal's time-skipping test server, so retry back-offs take no
wall time; the real activities are exercised in tests/integration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import uuid
from collections import Counter
from typing import Any

import pytest
from temporalio import activity
from temporalio.api.enums.v1 import EventType
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from ferry.activities.database import (
    BegunUpload,
    FileProcessedInput,
    FileProcessingInput,
    FileProcessingResult,
    FileRecord,
    FileRejectedInput,
    TenantLookup,
    TenantRecord,
    TenantRef,
    UploadCheck,
    UploadCheckInput,
    UploadRefusal,
)
from ferry.activities.events import OutboundEvent, PublishedEvent
from ferry.activities.inspect import Inspection, InspectRequest, SpooledCopy
from ferry.activities.media_payloads import (
    Analysis,
    AnalysisRequest,
    Metadata,
    MetadataRequest,
    ThumbnailRequest,
    ThumbnailSet,
    Validation,
)
from ferry.activities.scan import ScanResult
from ferry.activities.storage import MoveRequest
from ferry.contracts.enums import (
    FileState,
    RejectionReason,
    StorageProvider,
    TenantPlan,
    TenantStatus,
)
from ferry.contracts.ids import event_id_for
from ferry.contracts.policy import TenantPolicy
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.workflows.file_upload import (
    MEDIA_STEPS_HERE,
    FileUploadInput,
    FileUploadResult,
    FileUploadWorkflow,
)
from ferry.workflows.upload_steps import LOCAL_MEDIA_MAX_BYTES, LOCAL_MOVE_MAX_BYTES

SHA = "ab" * 32


class FakeActivities:
    """Records what the workflow asked for; the scan's behaviour is set per test."""

    def __init__(
        self,
        scan_outcomes: list[ScanResult | Exception],
        validation: Validation | None = None,
        analysis_delay: float = 0.0,
        check: UploadCheck | None = None,
    ) -> None:
        self.scan_outcomes = scan_outcomes
        self.validation = validation or Validation(ok=True, content_type="image/png")
        self.analysis_delay = analysis_delay
        self.check = check or UploadCheck(allowed=True)
        self.calls: Counter[str] = Counter()
        self.moves: list[MoveRequest] = []
        self.events: list[dict[str, Any]] = []
        self.recorded: list[Any] = []
        self.size = 1234  # what the stored object's size is
        self.read: list[Any] = []  # what the inspection was asked to read
        self.read_error: ApplicationError | None = None  # how reading the object fails
        # The queue of the worker holding the inspected copy (set by `run`), and whether
        # that worker is the workflow's own (what `holds_copy` answers).
        self.copy_queue = "nowhere"
        self.copy_here = False
        # (step, the task queue it ran on, the copy it was given) of each media step.
        self.media: list[tuple[str, str, str | None]] = []
        self.metadata_sha256: list[str | None] = []

    def activities(self) -> list[Any]:
        @activity.defn(name="get_tenant")
        async def get_tenant(ref: TenantRef) -> TenantLookup:
            return TenantLookup(found=True, tenant=TENANT)

        @activity.defn(name="record_file_processing")
        async def processing(request: FileProcessingInput) -> FileProcessingResult:
            self.calls["processing"] += 1
            return FileProcessingResult(file=a_file(request.file_id), created=True)

        @activity.defn(name="check_upload")
        async def check_upload(request: UploadCheckInput) -> UploadCheck:
            return self.check

        @activity.defn(name="begin_upload")
        async def begin(request: FileProcessingInput) -> BegunUpload:
            self.calls["processing"] += 1
            file = FileProcessingResult(file=a_file(request.file_id), created=True)
            return BegunUpload(found=True, tenant=TENANT, file=file, check=self.check)

        @activity.defn(name="inspect_upload")
        async def inspect(request: InspectRequest) -> Inspection:
            """As the real one decides: the size, the SHA-256, clamd, then the checks."""
            self.calls["inspect"] += 1
            self.read.append(request)
            if self.read_error is not None:
                raise self.read_error
            if self.size != request.size_bytes or self.size == 0:
                return Inspection(self.size)
            found = Inspection(self.size, SHA)
            if request.sha256 not in (None, SHA):
                return found
            self.calls["scan"] += 1
            outcome = self.scan_outcomes.pop(0)
            if isinstance(outcome, Exception):
                raise outcome
            found.scan = outcome
            if not outcome.clean:
                return found
            self.calls["validate"] += 1
            found.validation = self.validation
            if self.validation.ok:
                found.spool = SpooledCopy(self.copy_queue, f"{request.file_id}.copy")
            return found

        @activity.defn(name="holds_copy")
        async def holds_copy(spool_id: str) -> bool:
            self.calls["holds_copy"] += 1
            return self.copy_here

        @activity.defn(name="move_object")
        async def move(request: MoveRequest) -> StorageRef:
            self.moves.append(request)
            return StorageRef(
                request.provider or request.source.provider, request.bucket, request.key
            )

        def ran(step: str, spool: str | None) -> None:
            self.media.append((step, activity.info().task_queue, spool))

        @activity.defn(name="make_thumbnails")
        async def thumbnails(request: ThumbnailRequest) -> ThumbnailSet:
            ran("thumbnails", request.spool)
            key = f"files/{request.file_id}/thumbnails/thumb-256.webp"
            return ThumbnailSet([Thumbnail("thumb-256.webp", key, 256, 160, "image/webp")])

        @activity.defn(name="extract_metadata")
        async def metadata(request: MetadataRequest) -> Metadata:
            ran("metadata", request.spool)
            self.metadata_sha256.append(request.sha256)
            return Metadata(SHA, 1234, "image/png", width=640, height=400, public={"width": "640"})

        @activity.defn(name="analyse_content")
        async def analyse(request: AnalysisRequest) -> Analysis:
            ran("analysis", request.spool)
            # Heartbeats let the workflow's cancellation reach this slow "model".
            for _ in range(int(self.analysis_delay * 10)):
                activity.heartbeat()
                await asyncio.sleep(0.1)
            return Analysis(nsfw=False, language="en")

        @activity.defn(name="record_file_processed")
        async def processed(request: FileProcessedInput) -> FileRecord:
            self.recorded.append(request)
            return a_file(request.file_id, FileState.PROCESSED)

        @activity.defn(name="record_file_rejected")
        async def rejected(request: FileRejectedInput) -> FileRecord:
            self.recorded.append(request)
            return a_file(request.file_id, FileState.REJECTED)

        @activity.defn(name="publish_event")
        async def publish(event: OutboundEvent) -> PublishedEvent:
            self.events.append(event.fields)
            return PublishedEvent("ferry.file-events.v1", 0, len(self.events))

        return [
            get_tenant, processing, check_upload, begin, inspect, holds_copy, move,
            thumbnails, metadata, analyse, processed, rejected, publish,
        ]  # fmt: skip

    def media_steps(self) -> list[Any]:
        """The steps the worker holding the copy takes on its own queue."""
        steps = {"make_thumbnails", "extract_metadata", "analyse_content"}
        return [a for a in self.activities() if _name(a) in steps]


def a_file(file_id: str, state: FileState = FileState.PROCESSING) -> FileRecord:
    return FileRecord(
        tenant_id="acme",
        file_id=file_id,
        state=state,
        filename="cat.png",
        declared_content_type="image/png",
        size_bytes=1234,
        uploaded_by="u-1",
        storage=StorageRef("local", "ferry-ingest", f"tenants/acme/uploads/{file_id}/cat.png"),
    )


TENANT = TenantRecord(
    tenant_id="acme",
    name="Acme",
    plan=TenantPlan.FREE,
    status=TenantStatus.ACTIVE,
    region="local",
    admin_email="admin@acme.example",
    storage_provider=StorageProvider.LOCAL,
    storage_bucket="ferry-acme",
    quota_bytes=10**9,
    quota_files=1000,
    max_file_bytes=10**8,
)


def upload(sha256: str | None = SHA) -> FileUploadInput:
    file_id = str(uuid.uuid4())
    return FileUploadInput(
        event_id=str(uuid.uuid4()),
        tenant_id="acme",
        file_id=file_id,
        filename="cat.png",
        declared_content_type="image/png",
        size_bytes=1234,
        storage=StorageRef("local", "ferry-ingest", f"tenants/acme/uploads/{file_id}/cat.png"),
        uploaded_by="u-1",
        sha256=sha256,
    )


async def run(
    env: WorkflowEnvironment,
    fakes: FakeActivities,
    request: FileUploadInput,
    activities: list[Any] | None = None,
    copy_worker: bool = True,
    history: list[Any] | None = None,
) -> FileUploadResult:
    """The workflow on a worker with `activities` (the fakes' by default) and, unless
    `copy_worker` is false, the worker that holds the inspected copy on its own queue.
    `history`, when given, receives the run's history events."""
    queue = f"wf-{uuid.uuid4().hex[:8]}"
    fakes.copy_queue = f"{queue}/copy"
    async with contextlib.AsyncExitStack() as workers:
        await workers.enter_async_context(
            Worker(
                env.client,
                task_queue=queue,
                workflows=[FileUploadWorkflow],
                activities=activities or fakes.activities(),
            )
        )
        if copy_worker:
            await workers.enter_async_context(
                Worker(env.client, task_queue=fakes.copy_queue, activities=fakes.media_steps())
            )
        handle = await env.client.start_workflow(
            FileUploadWorkflow.run,
            request,
            id=f"file-upload/{request.tenant_id}/{request.file_id}",
            task_queue=queue,
        )
        result = await handle.result()
        if history is not None:
            history.extend([event async for event in handle.fetch_history_events()])
        return result


def _name(fn: Any) -> str:
    name: str = getattr(fn, "__temporal_activity_definition").name
    return name


def replacing(fakes: FakeActivities, *replacements: Any) -> list[Any]:
    """The fakes' activities with `replacements` instead of those of the same names."""
    names = {_name(a) for a in replacements}
    kept = [a for a in fakes.activities() if _name(a) not in names]
    return [*replacements, *kept]


async def test_a_clean_file_is_read_once_stored_and_announced_once(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])
    request = upload()

    result = await run(time_skipping_env, fakes, request)

    assert result.status == "processed"
    assert result.storage == StorageRef("local", "ferry-acme", f"files/{request.file_id}/original")
    [event] = fakes.events
    assert event["event_type"] == "file.processed"
    assert event["event_id"] == event_id_for(
        f"file-upload/acme/{request.file_id}", "file.processed"
    )
    assert event["correlation_id"] == request.event_id
    assert event["sha256"] == SHA
    # One pass over the bytes; the media steps on the worker holding the copy, reading it.
    assert fakes.calls["inspect"] == 1
    copy = f"{request.file_id}.copy"
    assert sorted(fakes.media) == [
        ("analysis", fakes.copy_queue, copy),
        ("metadata", fakes.copy_queue, copy),
        ("thumbnails", fakes.copy_queue, copy),
    ]
    assert fakes.metadata_sha256 == [SHA], "hashed once, by the inspection"


async def test_a_new_run_records_one_patch_marker_for_all_its_patches(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The SDK adds a search attribute update to each patch marker: seven patches, seven
    markers and seven updates per upload; one stands for them all. The analysis' deadline
    is its activity's timeout: the run starts no timer."""
    events: list[Any] = []

    await run(time_skipping_env, FakeActivities([ScanResult(clean=True)]), upload(), history=events)

    kinds = [event.event_type for event in events]
    assert kinds.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES) == 1
    [patch] = [
        event.marker_recorded_event_attributes
        for event in events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_patch"
    ]
    assert json.loads(patch.details["patch-data"].payloads[0].data)["id"] == MEDIA_STEPS_HERE
    assert EventType.EVENT_TYPE_TIMER_STARTED not in kinds


def _local_activities(events: list[Any]) -> list[str]:
    markers = [
        event.marker_recorded_event_attributes
        for event in events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        and event.marker_recorded_event_attributes.marker_name == "core_local_activity"
    ]
    return [json.loads(m.details["data"].payloads[0].data)["activity_type"] for m in markers]


def _activities(events: list[Any]) -> list[str]:
    return [
        event.activity_task_scheduled_event_attributes.activity_type.name
        for event in events
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]


@pytest.mark.parametrize(
    ("size", "local"),
    [(1234, True), (LOCAL_MOVE_MAX_BYTES, True), (LOCAL_MOVE_MAX_BYTES + 1, False)],
)
async def test_a_small_original_moves_as_a_local_activity_a_large_one_as_an_activity(
    time_skipping_env: WorkflowEnvironment, size: int, local: bool
) -> None:
    """A local move costs no task through the server and no workflow task of its own; a
    large object streams between providers as an ordinary, heartbeating activity."""
    fakes = FakeActivities([ScanResult(clean=True)])
    fakes.size = size
    events: list[Any] = []

    result = await run(
        time_skipping_env, fakes, dataclasses.replace(upload(), size_bytes=size), history=events
    )

    assert result.status == "processed"
    assert result.storage.bucket == "ferry-acme"
    assert ("move_object" in _local_activities(events)) is local
    assert ("move_object" in _activities(events)) is not local
    assert len(fakes.moves) == 1


async def test_clamd_unavailable_is_retried_by_temporal_and_the_file_is_never_passed_unscanned(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    down = ApplicationError("clamd unavailable: connection refused", type="ScannerUnavailable")
    fakes = FakeActivities([down, down, ScanResult(clean=True)])

    result = await run(time_skipping_env, fakes, upload())

    assert fakes.calls["scan"] == 3
    assert result.status == "processed"


async def test_an_infected_file_is_quarantined_with_its_signature(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=False, signature="Eicar-Test-Signature")])
    request = upload()

    result = await run(time_skipping_env, fakes, request)

    assert (result.status, result.reason, result.signature) == (
        "rejected",
        "infected",
        "Eicar-Test-Signature",
    )
    [move] = fakes.moves
    assert (move.bucket, move.key) == ("ferry-quarantine", f"quarantine/acme/{request.file_id}")
    [event] = fakes.events
    assert (event["event_type"], event["reason"], event["signature"]) == (
        "file.rejected", "infected", "Eicar-Test-Signature",
    )  # fmt: skip


async def test_a_file_over_clamd_limits_is_rejected_not_passed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    limit = ApplicationError(
        "clamd could not scan the whole file: Heuristics.Limits.Exceeded.MaxFileSize",
        type="ScanLimitExceeded",
        non_retryable=True,
    )
    fakes = FakeActivities([limit])

    result = await run(time_skipping_env, fakes, upload())

    assert (result.status, result.reason) == ("rejected", "scan_failed")
    assert fakes.calls["scan"] == 1
    assert fakes.moves[0].bucket == "ferry-quarantine"


async def test_bytes_that_do_not_match_the_declared_checksum_are_corrupt_and_never_scanned(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([])

    result = await run(time_skipping_env, fakes, upload(sha256="cd" * 32))

    assert (result.status, result.reason) == ("rejected", "corrupt")
    assert fakes.calls["scan"] == 0
    assert fakes.events[0]["reason"] == "corrupt"


async def test_an_upload_whose_object_is_missing_is_rejected_and_nothing_is_quarantined(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([])

    def not_found(key: str) -> ApplicationError:
        return ApplicationError(
            f"object {key} not found", type="ObjectNotFound", non_retryable=True
        )

    @activity.defn(name="move_object")
    async def nothing_to_move(request: MoveRequest) -> StorageRef:
        fakes.moves.append(request)
        raise not_found(request.source.key)

    request = upload()
    fakes.read_error = not_found(request.storage.key)
    result = await run(
        time_skipping_env, fakes, request, activities=replacing(fakes, nothing_to_move)
    )

    assert (result.status, result.reason) == ("rejected", "corrupt")
    storage = request.storage
    assert result.detail == f"no object at {storage.provider}:{storage.bucket}/{storage.key}"
    [recorded] = fakes.recorded
    assert isinstance(recorded, FileRejectedInput)
    assert (recorded.storage, recorded.quarantined) == (None, False)
    assert [e["event_type"] for e in fakes.events] == ["file.rejected"]
    assert fakes.calls["scan"] == 0


async def test_every_read_of_the_upload_says_whose_object_it_must_be(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])
    request = upload()

    await run(time_skipping_env, fakes, request)

    [inspected] = fakes.read
    assert isinstance(inspected, InspectRequest)
    assert inspected.source == request.storage
    assert (inspected.tenant_id, inspected.file_id) == ("acme", request.file_id)
    assert [move.tenant_id for move in fakes.moves] == ["acme"]


def _pointing_at(key: str, bucket: str = "ferry-ingest") -> FileUploadInput:
    request = upload()
    request.storage = StorageRef("local", bucket, key)
    return request


async def _refused_without_touching_the_object(
    env: WorkflowEnvironment, fakes: FakeActivities, request: FileUploadInput, reason: str
) -> FileUploadResult:
    result = await run(env, fakes, request)

    assert (result.status, result.reason) == ("rejected", "corrupt")
    assert result.detail is not None and result.detail.startswith(reason), result.detail
    assert fakes.moves == [], "a refused object is never moved, not even to quarantine"
    [recorded] = fakes.recorded
    assert isinstance(recorded, FileRejectedInput)
    assert (recorded.storage, recorded.quarantined) == (None, False)
    [event] = fakes.events
    assert (event["event_type"], event["reason"], event["detail"]) == (
        "file.rejected",
        "corrupt",
        result.detail,
    )
    return result


async def test_an_upload_naming_another_tenants_object_is_rejected_and_the_object_left_alone(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([])
    request = _pointing_at("tenants/other/uploads/f-9/private.txt")

    await _refused_without_touching_the_object(
        time_skipping_env, fakes, request, "storage key outside the tenant's upload prefix"
    )
    assert fakes.read == [], "nothing is read"


async def test_an_upload_whose_key_climbs_out_is_rejected_not_failed(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([])
    request = upload()
    request.storage.key = f"tenants/acme/uploads/{request.file_id}/../../../../canary/secret.txt"

    await _refused_without_touching_the_object(time_skipping_env, fakes, request, "invalid key")
    assert fakes.read == []


async def test_an_activity_refusing_the_location_ends_in_file_rejected(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    # The key is under the upload prefix, but the bucket is another tenant's: only the
    # activities know the ingest bucket, and the workflow turns their refusal into an outcome.
    fakes = FakeActivities([])
    request = upload()
    request.storage.bucket = "ferry-other"
    refusal = (
        "storage key outside the tenant's upload prefix: bucket 'ferry-other' is not the "
        "ingest bucket 'ferry-ingest'"
    )

    fakes.read_error = ApplicationError(refusal, type="OutsideTenant", non_retryable=True)
    result = await run(time_skipping_env, fakes, request)

    assert (result.status, result.reason, result.detail) == ("rejected", "corrupt", refusal)
    assert fakes.moves == []
    assert [e["event_type"] for e in fakes.events] == ["file.rejected"]
    assert fakes.calls["scan"] == 0


async def test_an_empty_object_is_rejected_as_corrupt_before_it_is_scanned(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([])
    fakes.size = 0
    request = upload()
    request.size_bytes = 0

    result = await run(time_skipping_env, fakes, request)

    assert (result.status, result.reason, result.detail) == (
        "rejected",
        "corrupt",
        "the object is empty",
    )
    assert fakes.calls["scan"] == 0
    # The empty object was the upload's own: it is quarantined like any rejected upload.
    [move] = fakes.moves
    assert (move.bucket, move.key) == ("ferry-quarantine", f"quarantine/acme/{request.file_id}")


async def test_late_analysis_is_recorded_as_timed_out_and_the_upload_completes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)], analysis_delay=600)
    request = upload()
    # The deadline is the activity's own timeout, which the test server does not skip to
    # while the activity runs: a short one, in real time.
    request.analysis_deadline_seconds = 2

    result = await run(time_skipping_env, fakes, request)

    assert result.status == "processed"
    assert result.analysis == {"status": "timed_out", "deadline_seconds": "2"}
    assert fakes.events[0]["analysis"]["status"] == "timed_out"
    assert fakes.events[0]["thumbnails"][0]["name"] == "thumb-256.webp"


async def test_thumbnails_metadata_and_analysis_reach_the_event_and_the_database(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])

    result = await run(time_skipping_env, fakes, upload())

    [recorded] = fakes.recorded
    assert isinstance(recorded, FileProcessedInput)
    assert recorded.analysis == {"status": "ok", "nsfw": "false", "language": "en"}
    assert recorded.metadata["width"] == "640"
    assert [t.name for t in recorded.thumbnails] == ["thumb-256.webp"]
    assert result.analysis == recorded.analysis


async def test_invalid_content_is_rejected_after_a_clean_scan(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    invalid = Validation(
        ok=False,
        content_type="image/png",
        reason=RejectionReason.INVALID_TYPE,
        detail="declared application/pdf but the content is image/png",
    )
    fakes = FakeActivities([ScanResult(clean=True)], validation=invalid)

    result = await run(time_skipping_env, fakes, upload())

    assert (result.status, result.reason) == ("rejected", "invalid_type")
    assert fakes.calls["scan"] == 1
    assert fakes.moves[0].bucket == "ferry-quarantine"
    [recorded] = fakes.recorded
    assert isinstance(recorded, FileRejectedInput) and recorded.quarantined


async def test_an_upload_over_quota_is_rejected_before_it_is_read(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    refused = UploadCheck(
        allowed=False, refusal=UploadRefusal.QUOTA_EXCEEDED, detail="5 of 5 GiB used"
    )
    fakes = FakeActivities([], check=refused)

    result = await run(time_skipping_env, fakes, upload())

    assert (result.status, result.reason) == ("rejected", "quota_exceeded")
    assert fakes.calls["inspect"] == 0 and fakes.calls["scan"] == 0


async def test_without_the_worker_holding_the_copy_the_media_steps_read_the_stored_original(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])
    request = upload()
    # A step waiting for a worker holds the test server's clock: this wait is real time.
    request.copy_worker_wait_seconds = 1

    result = await run(time_skipping_env, fakes, request, copy_worker=False)

    assert result.status == "processed"
    assert result.analysis["status"] == "ok"
    queues = {queue for _, queue, _ in fakes.media}
    assert fakes.copy_queue not in queues
    assert sorted(step for step, _, spool in fakes.media if spool is None) == [
        "analysis", "metadata", "thumbnails",
    ]  # fmt: skip


async def test_a_provider_that_keeps_refusing_the_original_fails_over_to_the_next(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])
    tried: list[str | None] = []

    @activity.defn(name="move_object")
    async def move(request: MoveRequest) -> StorageRef:
        tried.append(request.provider)
        if request.provider == "local":
            raise ApplicationError("the volume is broken")  # retryable, every time
        fakes.moves.append(request)
        return StorageRef(str(request.provider), request.bucket, request.key)

    @activity.defn(name="tenant_policy")
    async def policy() -> TenantPolicy:
        return TenantPolicy(failover_order=["local", "s3"])

    result = await run(time_skipping_env, fakes, upload(), replacing(fakes, move, policy))

    assert result.status == "processed"
    assert result.storage == StorageRef("s3", "ferry-acme", f"files/{result.storage.key[6:]}")
    assert tried == ["local"] * 4 + ["s3"]  # PROVIDER_RETRY's attempts, then the next one


@pytest.mark.parametrize(
    ("size", "asked"),
    [(1234, True), (LOCAL_MEDIA_MAX_BYTES, True), (LOCAL_MEDIA_MAX_BYTES + 1, False)],
)
async def test_on_the_worker_holding_the_copy_a_small_uploads_media_steps_are_local(
    time_skipping_env: WorkflowEnvironment, size: int, asked: bool
) -> None:
    """When the workflow's own worker holds the copy, the three steps run there as local
    activities, reading it: the inspection is the only task through the server."""
    fakes = FakeActivities([ScanResult(clean=True)])
    fakes.size, fakes.copy_here = size, True
    request = dataclasses.replace(upload(), size_bytes=size)
    events: list[Any] = []

    result = await run(time_skipping_env, fakes, request, history=events)

    assert result.status == "processed" and result.analysis["status"] == "ok"
    copy = f"{request.file_id}.copy"
    steps = ["analyse_content", "extract_metadata", "make_thumbnails"]
    if asked:
        assert _activities(events) == ["inspect_upload"]
        assert set(steps) | {"holds_copy"} <= set(_local_activities(events))
        assert {(spool, queue != fakes.copy_queue) for _, queue, spool in fakes.media} == {
            (copy, True)
        }, "on the workflow's own worker, reading the copy"
    else:
        # Too large for local steps: not even asked, the copy's worker takes them.
        assert fakes.calls["holds_copy"] == 0
        assert sorted(_activities(events)) == sorted(["inspect_upload", *steps])
        assert {(spool, queue) for _, queue, spool in fakes.media} == {(copy, fakes.copy_queue)}


async def test_a_late_local_analysis_is_recorded_as_timed_out_and_the_upload_completes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)], analysis_delay=600)
    fakes.copy_here = True
    request = upload()
    request.analysis_deadline_seconds = 2
    events: list[Any] = []

    result = await run(time_skipping_env, fakes, request, history=events)

    assert "analyse_content" in _local_activities(events)
    assert result.status == "processed"
    assert result.analysis == {"status": "timed_out", "deadline_seconds": "2"}
    assert fakes.events[0]["thumbnails"][0]["name"] == "thumb-256.webp"


async def test_a_failed_local_analysis_is_recorded_as_failed_and_the_upload_completes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fakes = FakeActivities([ScanResult(clean=True)])
    fakes.copy_here = True

    @activity.defn(name="analyse_content")
    async def analyse(request: AnalysisRequest) -> Analysis:
        raise ApplicationError("the model is missing", type="ModelMissing", non_retryable=True)

    result = await run(time_skipping_env, fakes, upload(), activities=replacing(fakes, analyse))

    assert result.status == "processed"
    assert result.analysis == {"status": "failed", "detail": "the model is missing"}
