"""A worker killed in the middle of an upload's inspection (its one pass: reading, hashing,
scanning): another worker reads the object again from storage and finishes the upload,
exactly once, its media steps on its own queue beside its own copy. And a worker killed
in the middle of a small upload's media steps, run as local activities beside its copy:
another worker takes the workflow over and finishes them from the stored original."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from PIL import Image
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.client import Client, WorkflowExecutionStatus

from ferry.config import Settings
from ferry.consumers.tail import TopicFollower
from ferry.contracts.layout import thumbnail_key
from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import FileUploadInput
from ferry.devstack.stack import Stack
from ferry.storage import LocalStorage
from ferry.workflows.file_upload import FileUploadWorkflow

pytestmark = pytest.mark.stack

SIZE = 256 * 1024 * 1024


def worker_process(task_queue: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FERRY_FILES_TASK_QUEUE": task_queue}
    return subprocess.Popen(
        [sys.executable, "-m", "ferry.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def staged(
    storage: LocalStorage,
    settings: Settings,
    tenant: str,
    file_id: str,
    key: str,
    content_type: str,
    chunks: AsyncIterator[bytes],
    size: int,
) -> FileUploadInput:
    """The object written to the ingest bucket, and its upload as the bridge would start it."""
    await storage.create_bucket(settings.ingest_bucket)
    await storage.write(settings.ingest_bucket, key, chunks)
    return FileUploadInput(
        event_id=str(uuid.uuid4()),
        tenant_id=tenant,
        file_id=file_id,
        filename=key.rsplit("/", 1)[-1],
        declared_content_type=content_type,
        size_bytes=size,
        storage=StorageRef("local", settings.ingest_bucket, key),
        uploaded_by="u-1",
    )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_worker_killed_during_the_scan_is_replaced_and_the_upload_completes_once(
    client: Client,
    settings: Settings,
    local_storage: LocalStorage,
    file_events: TopicFollower,
    workers: list[subprocess.Popen[bytes]],
    tenant: str,
) -> None:
    file_id = str(uuid.uuid4())
    key = f"tenants/{tenant}/uploads/{file_id}/backup.txt"

    async def chunks() -> AsyncIterator[bytes]:
        line = b"an ordinary log line that clamd will read to the end\n"
        block = line * (1024 * 1024 // len(line) + 1)
        for _ in range(SIZE // (1024 * 1024)):
            yield block[: 1024 * 1024]

    upload = await staged(
        local_storage, settings, tenant, file_id, key, "text/plain", chunks(), SIZE
    )
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    workers.append(worker_process(queue))
    handle = await client.start_workflow(
        FileUploadWorkflow.run, upload, id=f"file-upload/{tenant}/{file_id}", task_queue=queue
    )

    async with asyncio.timeout(120):
        while True:
            pending = (await handle.describe()).raw_description.pending_activities
            if any(
                p.activity_type.name == "inspect_upload"
                and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
                for p in pending
            ):
                break
            await asyncio.sleep(0.1)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()
    workers.append(worker_process(queue))

    result = await asyncio.wait_for(handle.result(), 240)

    assert result.status == "processed"
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    history = await handle.fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes for e in history.events]
    inspections = [
        e for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "inspect_upload"
    ]  # fmt: skip
    assert len(inspections) == 1  # one inspection, retried by Temporal on the new worker
    [started] = [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.activity_task_started_event_attributes.scheduled_event_id == inspections[0].event_id
    ]
    assert started.attempt == 2
    # The media steps went to the queue of the worker that made the copy: the new one.
    media = {
        a.activity_type.name: a.task_queue.name
        for a in scheduled
        if a.activity_type.name in ("make_thumbnails", "extract_metadata", "analyse_content")
    }
    assert len(media) == 3 and len(set(media.values())) == 1, media
    [own_queue] = set(media.values())
    assert own_queue.startswith(f"{queue}/") and str(workers[1].pid) in own_queue
    events = await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=30)
    assert [e["event_type"] for e in events] == ["file.processed"]
    with pytest.raises(TimeoutError):
        await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=5)


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def photo() -> bytes:
    """A 1600x1200 JPEG of noise over a gradient, as a phone camera's would be sized."""
    gradient = Image.linear_gradient("L").resize((1600, 1200)).convert("RGB")
    noise = Image.effect_noise((1600, 1200), 40).convert("RGB")
    out = io.BytesIO()
    Image.blend(gradient, noise, 0.3).save(out, "JPEG", quality=90)
    return out.getvalue()


async def test_a_worker_killed_during_its_local_media_steps_is_replaced_and_the_upload_completes(
    client: Client,
    settings: Settings,
    stack: Stack,
    local_storage: LocalStorage,
    file_events: TopicFollower,
    workers: list[subprocess.Popen[bytes]],
    tenant: str,
) -> None:
    """The media steps run as local activities of the worker that inspected the upload and
    holds its copy. The moderation service is frozen, so the analysis waits on it while the
    thumbnails are written; the worker is killed then, its workflow task unfinished. Another
    worker takes the workflow over when the task times out. Asked anew, it does not hold the
    copy, so the steps go to the dead worker's queue and, unanswered for
    `copy_worker_wait_seconds`, to any worker, which reads the stored original: the copy is
    a cache, the upload is not inspected again, and it ends processed once."""
    file_id = str(uuid.uuid4())
    key = f"tenants/{tenant}/uploads/{file_id}/photo.jpg"
    data = photo()
    upload = await staged(
        local_storage, settings, tenant, file_id, key, "image/jpeg", one(data), len(data)
    )
    queue = f"crash-{uuid.uuid4().hex[:8]}"
    workers.append(worker_process(queue))
    bucket = f"ferry-{tenant}"
    thumbnails = [thumbnail_key(file_id, name) for name in ("thumb-1024.jpg", "thumb-256.webp")]
    assert stack.pause_service("moderator")
    try:
        handle = await client.start_workflow(
            FileUploadWorkflow.run,
            upload,
            id=f"file-upload/{tenant}/{file_id}",
            task_queue=queue,
        )
        async with asyncio.timeout(120):
            # The thumbnails are written by the first worker's local activity while its
            # analysis waits on the frozen moderation service.
            while not all([await local_storage.head(bucket, k) for k in thumbnails]):
                await asyncio.sleep(0.1)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
    finally:
        stack.pause_service("moderator", paused=False)
    workers.append(worker_process(queue))

    result = await asyncio.wait_for(handle.result(), 240)

    assert result.status == "processed"
    assert result.analysis["status"] == "ok", result.analysis
    assert sorted(t.key for t in result.thumbnails) == sorted(thumbnails)
    history = await handle.fetch_history()
    types = [e.event_type for e in history.events]
    # The first worker's workflow task never completed: it timed out, and the new worker
    # ran the rest.
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT in types
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    ]
    assert scheduled.count("inspect_upload") == 1  # the bytes were not inspected again
    events = await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=30)
    assert [e["event_type"] for e in events] == ["file.processed"]
    with pytest.raises(TimeoutError):
        await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=5)
