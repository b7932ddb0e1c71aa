"""The steps of `file_upload_workflow` that stand alone: the media activities, the move,
and what ends an upload as rejected. Workflow code: called from the workflow only."""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import Priority, RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from ferry.activities.database import UploadRefusal
    from ferry.activities.inspect import InspectActivities, SpooledCopy
    from ferry.activities.media import MediaActivities
    from ferry.activities.media_payloads import (
        Analysis,
        AnalysisRequest,
        Metadata,
        MetadataRequest,
        ThumbnailRequest,
        ThumbnailSet,
    )
    from ferry.activities.scan import ScanResult
    from ferry.activities.storage import MoveRequest, StorageActivities
    from ferry.contracts.enums import RejectionReason
    from ferry.contracts.errors import (
        LOCATION_REFUSED,
        OBJECT_NOT_FOUND,
        PERMANENT,
        SCAN_LIMIT_EXCEEDED,
        root_cause,
    )
    from ferry.contracts.storage import StorageRef, Thumbnail
    from ferry.contracts.workflows import FileUploadInput
    from ferry.workflows.common import STORAGE_RETRY

# Objects up to this size move as a local activity: no task through the server, and no
# workflow task of its own (a round trip of each is about a tenth of an upload's CPU on
# Temporal's side). A larger object moves as an ordinary activity, which heartbeats while
# it streams from one provider to another.
LOCAL_MOVE_MAX_BYTES = 64 * 2**20
# The media steps of an upload up to this size run as local activities when the
# workflow's own worker holds its copy (`holds_copy`): three tasks fewer through the
# server, and no workflow task of their own. A larger one's steps (a long text's UTF-8
# check, a large image) run as ordinary activities on the copy's worker, heartbeating.
LOCAL_MEDIA_MAX_BYTES = 16 * 2**20
# How a step fails: an activity's failure arrives wrapped in `ActivityError`, a local
# activity's as its own error (the application's, or its timeout).
STEP_FAILED = (ActivityError, ApplicationError, ActivityTimeout)
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
ANALYSIS_RETRY = RetryPolicy(maximum_attempts=3, non_retryable_error_types=PERMANENT)


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


def refused_location(detail: str) -> Rejection:
    """The upload names a place that is not its own: rejected, and its object left alone."""
    return Rejection(RejectionReason.CORRUPT, detail, quarantine=False)


REFUSALS = {
    UploadRefusal.TOO_LARGE: RejectionReason.TOO_LARGE,
    UploadRefusal.QUOTA_EXCEEDED: RejectionReason.QUOTA_EXCEEDED,
    # A suspended tenant may not add files; the contract has no reason of its
    # own for that, and "the tenant may not take more files now" is the closest.
    UploadRefusal.TENANT_INACTIVE: RejectionReason.QUOTA_EXCEEDED,
}


def permanent(err: BaseException) -> bool:
    """A failure no other provider would fix (the source object is gone, a bad key...)."""
    cause = root_cause(err)
    return isinstance(cause, ApplicationError) and cause.type in PERMANENT


async def read_upload(
    checked: bool,
    activity: Any,
    request: Any,
    *,
    timeout: timedelta,
    heartbeat: timedelta,
    retry: RetryPolicy,
    priority: Priority = Priority.default,
) -> Any:
    """An activity that reads the upload's object: its refusal of the object's location
    (another tenant's, another bucket) ends the upload as rejected. `checked`: the run
    checks locations (histories from before do not)."""
    try:
        return await workflow.execute_activity_method(
            activity,
            request,
            start_to_close_timeout=timeout,
            heartbeat_timeout=heartbeat,
            retry_policy=retry,
            priority=priority,
        )
    except ActivityError as err:
        cause = err.cause
        if checked and any(kind.caused(err) for kind in LOCATION_REFUSED):
            assert isinstance(cause, ApplicationError)
            raise refused_location(cause.message) from err
        raise


async def move(
    source: StorageRef,
    bucket: str,
    key: str,
    provider: str | None = None,
    retry: RetryPolicy = STORAGE_RETRY,
    *,
    owner: str | None,
    priority: Priority = Priority.default,
    local: bool = False,
) -> StorageRef:
    """Move the object; `owner` is the tenant whose places it may go to (None in
    histories from before the location check). `local`: as a local activity, on this
    workflow's worker, for an object small enough (`LOCAL_MOVE_MAX_BYTES`) that moving it
    takes well under a workflow task's timeout."""
    request = MoveRequest(source=source, bucket=bucket, key=key, provider=provider, tenant_id=owner)
    if local:
        # Retried by the worker itself, as the database steps are (Temporal's own timer
        # backs off once the retries outlast a minute).
        local_move: StorageRef = await workflow.execute_local_activity_method(
            StorageActivities.move,
            request,
            start_to_close_timeout=timedelta(minutes=2),
            retry_policy=retry,
        )
        return local_move
    moved: StorageRef = await workflow.execute_activity_method(
        StorageActivities.move,
        request,
        start_to_close_timeout=timedelta(minutes=30),
        heartbeat_timeout=timedelta(minutes=2),
        retry_policy=retry,
        priority=priority,
    )
    return moved


@dataclass
class CopyWorker:
    """The worker holding an upload's copy, and how long to wait for it; `here`: it is
    the workflow's own, whose local activities the media steps are."""

    task_queue: str
    spool_id: str
    wait: timedelta
    here: bool = False

    @staticmethod
    def of(copy: SpooledCopy | None, wait_seconds: float) -> CopyWorker | None:
        if copy is None:
            return None
        return CopyWorker(copy.task_queue, copy.spool_id, timedelta(seconds=wait_seconds))


async def holds_copy(copy: CopyWorker) -> CopyWorker:
    """`copy`, `here` when the workflow's own worker holds it (a local activity asks; its
    answer is recorded, so a replay elsewhere takes the same path, and a step there that
    finds no copy reads the stored original)."""
    try:
        here: bool = await workflow.execute_local_activity_method(
            InspectActivities.holds_copy,
            copy.spool_id,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=RetryPolicy(maximum_attempts=2),
        )
    except STEP_FAILED:
        here = False  # no answer: the copy's own worker is asked, as before
    return dataclasses.replace(copy, here=here)


async def on_copy_worker(
    activity: Any,
    request: Any,
    copy: CopyWorker | None,
    *,
    ends: datetime | None = None,
    **options: Any,
) -> Any:
    """The media step on the worker holding the upload's copy, reading that copy: as a
    local activity when that is the workflow's own (`copy.here`); on any worker from the
    stored original when that worker does not take it within `copy.wait` (it is gone, or
    far behind), or when there is no copy (histories from before). `ends`: the step's
    deadline, across both (each one's schedule-to-close timeout)."""
    if copy is None:
        return await workflow.execute_activity_method(activity, request, **options)
    if copy.here:
        # A local activity has no task queue, heartbeat or priority: its worker is this one.
        kept = ("start_to_close_timeout", "retry_policy")
        local: dict[str, Any] = {k: v for k, v in options.items() if k in kept}
        return await workflow.execute_local_activity_method(
            activity, dataclasses.replace(request, spool=copy.spool_id), **_until(ends, local)
        )
    try:
        return await workflow.execute_activity_method(
            activity,
            dataclasses.replace(request, spool=copy.spool_id),
            task_queue=copy.task_queue,
            schedule_to_start_timeout=copy.wait,
            **_until(ends, options),
        )
    except ActivityError as err:
        cause = err.cause
        if not (isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_START):
            raise
        workflow.logger.warning("no answer from %s: reading the stored original", copy.task_queue)
    return await workflow.execute_activity_method(activity, request, **_until(ends, options))


def _until(ends: datetime | None, options: dict[str, Any]) -> dict[str, Any]:
    """`options` with a schedule-to-close timeout at `ends` (a second at least: a step
    whose deadline has passed times out at once rather than being refused)."""
    if ends is None:
        return options
    left = max(ends - workflow.now(), timedelta(seconds=1))
    return {**options, "schedule_to_close_timeout": left}


async def thumbnails(
    stored: StorageRef,
    file_id: str,
    owner: str | None,
    copy: CopyWorker | None = None,
    priority: Priority = Priority.default,
) -> list[Thumbnail]:
    made: ThumbnailSet = await on_copy_worker(
        MediaActivities.make_thumbnails,
        ThumbnailRequest(source=stored, bucket=stored.bucket, file_id=file_id, tenant_id=owner),
        copy,
        start_to_close_timeout=timedelta(minutes=10),
        heartbeat_timeout=timedelta(minutes=1),
        retry_policy=STORAGE_RETRY,
        priority=priority,
    )
    return [
        Thumbnail(t.name, t.key, t.width, t.height, t.content_type, t.size_bytes)
        for t in made.thumbnails
    ]


async def metadata(
    stored: StorageRef,
    owner: str | None,
    copy: CopyWorker | None = None,
    sha256: str | None = None,
    priority: Priority = Priority.default,
) -> Metadata:
    found: Metadata = await on_copy_worker(
        MediaActivities.extract_metadata,
        MetadataRequest(source=stored, tenant_id=owner, sha256=sha256),
        copy,
        start_to_close_timeout=timedelta(minutes=30),
        heartbeat_timeout=timedelta(minutes=1),
        retry_policy=STORAGE_RETRY,
        priority=priority,
    )
    return found


async def analysis(
    stored: StorageRef,
    content_type: str,
    deadline_seconds: float,
    owner: str | None,
    copy: CopyWorker | None = None,
    priority: Priority = Priority.default,
    deadline_on_activity: bool = False,
) -> dict[str, str]:
    """AI analysis within its deadline: late or failed, the upload goes on without it.

    `deadline_on_activity`: the deadline is the activity's own schedule-to-close timeout;
    else (histories from before) a timer of the workflow's races the activity."""
    request = AnalysisRequest(source=stored, content_type=content_type, tenant_id=owner)
    options: dict[str, Any] = {
        "start_to_close_timeout": timedelta(minutes=5),
        "heartbeat_timeout": timedelta(minutes=1),
        "retry_policy": ANALYSIS_RETRY,
        "priority": priority,
    }
    late = {"status": "timed_out", "deadline_seconds": f"{deadline_seconds:g}"}
    if deadline_on_activity and copy is not None:
        ends = workflow.now() + timedelta(seconds=deadline_seconds)
        try:
            result: Analysis = await on_copy_worker(
                MediaActivities.analyse_content, request, copy, ends=ends, **options
            )
        except STEP_FAILED as err:
            cause = _cause(err)
            if isinstance(cause, ActivityTimeout) and cause.type == TimeoutType.SCHEDULE_TO_CLOSE:
                return late
            return _failure(err)
        return result.as_map()
    running: asyncio.Future[Any]
    if copy is None:
        # As histories from before have it: one activity, raced by its handle.
        running = workflow.start_activity_method(
            MediaActivities.analyse_content, request, **options
        )
    else:
        running = asyncio.ensure_future(
            on_copy_worker(MediaActivities.analyse_content, request, copy, **options)
        )
    try:
        await workflow.wait_condition(running.done, timeout=deadline_seconds)
    except TimeoutError:
        running.cancel()
        return late
    return _analysed(running)


def _analysed(done: asyncio.Future[Any]) -> dict[str, str]:
    try:
        result: Analysis = done.result()
    except ActivityError as err:
        return _failure(err)
    return result.as_map()


def _cause(err: BaseException) -> BaseException:
    """What failed: an activity's failure wraps it, a local activity's is it."""
    return (err.cause or err) if isinstance(err, ActivityError) else err


def _failure(err: BaseException) -> dict[str, str]:
    cause = _cause(err)
    detail = cause.message if isinstance(cause, ApplicationError) else str(cause)
    return {"status": "failed", "detail": detail}


def as_announced(
    upload: FileUploadInput, sha256: str | None, size_bytes: int, empty_refused: bool
) -> None:
    """The stored bytes are the announced ones (SHA-256 when both are known, size), and
    not empty (unless a history from before says otherwise): `corrupt` if not."""
    if upload.sha256 and sha256 and upload.sha256.lower() != sha256:
        raise Rejection(RejectionReason.CORRUPT, "the bytes do not match the declared SHA-256")
    if size_bytes != upload.size_bytes:
        detail = f"{size_bytes} bytes stored, {upload.size_bytes} declared"
        raise Rejection(RejectionReason.CORRUPT, detail)
    if empty_refused and size_bytes == 0:
        raise Rejection(RejectionReason.CORRUPT, "the object is empty")


def infected(scan: ScanResult) -> Rejection:
    return Rejection(RejectionReason.INFECTED, f"clamd found {scan.signature}", scan.signature)


def unreadable(upload: FileUploadInput, err: ActivityError) -> Rejection | None:
    """The rejection for an upload whose bytes could not be read through: no object there,
    or over clamd's limits (never scanned whole, so never clean); None for other failures."""
    if OBJECT_NOT_FOUND.caused(err):
        return no_object(upload)
    if SCAN_LIMIT_EXCEEDED.caused(err):
        return over_scan_limit(err)
    return None


def no_object(upload: FileUploadInput) -> Rejection:
    where = f"{upload.storage.provider}:{upload.storage.bucket}/{upload.storage.key}"
    return Rejection(RejectionReason.CORRUPT, f"no object at {where}")


def over_scan_limit(err: ActivityError) -> Rejection:
    cause = err.cause
    assert isinstance(cause, ApplicationError)
    return Rejection(RejectionReason.SCAN_FAILED, cause.message)
