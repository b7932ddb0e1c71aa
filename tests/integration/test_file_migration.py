"""Migrations between providers on the local stack: S3 → Azure, GCS → local, a crash, a rollback.

Each test seeds a tenant whose processed files live in one provider (objects
written there, rows recorded as processing would leave them), then runs
`file_migration_workflow` on a real worker and checks the target's bytes, the
database's pointers and the events.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.client import Client, WorkflowExecutionStatus

from ferry.config import Settings
from ferry.consumers.tail import TopicFollower
from ferry.contracts.storage import BucketRef, StorageRef
from ferry.db import tenant_scope
from ferry.demo import ensure_tenant
from ferry.storage import StorageProvider, providers_from_env
from ferry.watch import watch_migration
from ferry.workflows.file_migration import (
    FileMigrationWorkflow,
    MigrationProgress,
    MigrationRequest,
)

pytestmark = pytest.mark.stack


@dataclass
class Seeded:
    tenant: str
    bucket: str
    digests: dict[str, str]  # key → SHA-256
    file_ids: list[str]


@pytest.fixture
async def providers(settings: Settings) -> AsyncIterator[dict[str, StorageProvider]]:
    providers = providers_from_env(settings.local_storage_root)
    yield providers
    for provider in providers.values():
        await provider.close()


async def _seed(
    sessionmaker: async_sessionmaker[AsyncSession],
    provider: StorageProvider,
    files: int,
) -> Seeded:
    """A tenant with `files` processed files (original and a thumbnail each) on `provider`."""
    tenant = await ensure_tenant(sessionmaker, f"mg-{uuid.uuid4().hex[:12]}")
    bucket = f"ferry-{tenant}"
    await provider.create_bucket(bucket)
    digests: dict[str, str] = {}
    file_ids = [str(uuid.uuid4()) for _ in range(files)]

    async def put(key: str, data: bytes) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await provider.write(bucket, key, chunks())
        digests[key] = hashlib.sha256(data).hexdigest()

    async def one(index: int, file_id: str) -> None:
        data = os.urandom(1000 + index * 7)
        await put(f"files/{file_id}/original", data)
        await put(f"files/{file_id}/thumbnails/thumb-256.webp", os.urandom(200))

    for at in range(0, files, 20):
        await asyncio.gather(*(one(at + i, f) for i, f in enumerate(file_ids[at : at + 20])))
    async with tenant_scope(sessionmaker, tenant) as db:
        for file_id in file_ids:
            key = f"files/{file_id}/original"
            location = StorageRef(provider.name, bucket, key)
            await db.files.record_processing(
                file_id,
                filename=f"{file_id}.bin",
                declared_content_type="application/octet-stream",
                size_bytes=0,
                uploaded_by="seed",
                location=location,
            )
            await db.files.record_processed(
                file_id,
                sha256=digests[key],
                size_bytes=0,
                content_type="application/octet-stream",
                location=location,
                metadata={},
                analysis={},
            )
    return Seeded(tenant, bucket, digests, file_ids)


async def _locations(
    sessionmaker: async_sessionmaker[AsyncSession], seeded: Seeded
) -> set[tuple[str, str]]:
    async with tenant_scope(sessionmaker, seeded.tenant) as db:
        rows = [await db.files.require(f) for f in seeded.file_ids]
    return {(row.storage_provider, row.storage_bucket) for row in rows}


async def _digests(provider: StorageProvider, bucket: str) -> dict[str, str]:
    found: dict[str, str] = {}
    token = None
    while True:
        page = await provider.list(bucket, page_token=token)
        for item in page.items:
            digest = hashlib.sha256()
            async for chunk in provider.read(bucket, item.key):
                digest.update(chunk)
            found[item.key] = digest.hexdigest()
        token = page.next_token
        if token is None:
            return found


def _request(
    seeded: Seeded, source: str, target: str, target_bucket: str | None = None, **extra: object
) -> MigrationRequest:
    return MigrationRequest(
        event_id=str(uuid.uuid4()),
        tenant_id=seeded.tenant,
        migration_id=f"m-{uuid.uuid4().hex[:8]}",
        source=BucketRef(source, seeded.bucket),
        target=BucketRef(target, target_bucket or seeded.bucket),
        **extra,  # type: ignore[arg-type]
    )


async def test_a_few_hundred_files_move_from_s3_to_azure_with_progress(
    client: Client,
    task_queue: str,
    worker: None,
    providers: dict[str, StorageProvider],
    sessionmaker: async_sessionmaker[AsyncSession],
    file_events: TopicFollower,
) -> None:
    seeded = await _seed(sessionmaker, providers["s3"], 150)
    request = _request(seeded, "s3", "azure", batch_size=25, history_limit=60)
    workflow_id = f"file-migration/{seeded.tenant}/{request.migration_id}"
    handle = await client.start_workflow(
        FileMigrationWorkflow.run, request, id=workflow_id, task_queue=task_queue
    )

    # What an operator sees with `ferry migration watch`, sampled along the way.
    seen: list[MigrationProgress] = []

    async def sample() -> None:
        while True:
            seen.append(await handle.query("progress", result_type=MigrationProgress))
            await asyncio.sleep(0.1)

    sampler = asyncio.create_task(sample())
    out = io.StringIO()
    status, last = await watch_migration(client, workflow_id, Console(file=out, width=120))
    sampler.cancel()
    result = await handle.result()

    assert status == WorkflowExecutionStatus.COMPLETED
    assert result.status == "completed"
    objects = len(seeded.digests)
    assert (last.files_done, last.files_total) == (objects, objects)
    assert last.bytes_done == last.bytes_total > 0
    assert any(0 < p.files_done < objects for p in seen), "no progress seen between 0 and done"
    assert last.runs > 1, "the migration never continued as new"
    assert last.written == objects and last.skipped == 0
    assert f"{objects}/{objects} files" in out.getvalue()
    # Every object arrived intact, and the files point at Azure now.
    assert await _digests(providers["azure"], seeded.bucket) == seeded.digests
    assert await _locations(sessionmaker, seeded) == {("azure", seeded.bucket)}
    [completed] = await file_events.wait_for(
        lambda e: e.get("migration_id") == request.migration_id
    )
    assert completed["event_type"] == "file.migration_completed"
    assert (completed["files_moved"], completed["rolled_back"]) == (objects, False)

    # The same migration again (another ID) finds everything there: nothing is written.
    again = _request(seeded, "s3", "azure", batch_size=50)
    repeat = await client.execute_workflow(
        FileMigrationWorkflow.run,
        again,
        id=f"file-migration/{seeded.tenant}/{again.migration_id}",
        task_queue=task_queue,
    )
    assert (repeat.progress.written, repeat.progress.skipped) == (0, objects)


async def test_gcs_to_local_with_delete_source(
    client: Client,
    task_queue: str,
    worker: None,
    providers: dict[str, StorageProvider],
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    seeded = await _seed(sessionmaker, providers["gcs"], 30)
    request = _request(seeded, "gcs", "local", batch_size=10, delete_source=True)

    result = await client.execute_workflow(
        FileMigrationWorkflow.run,
        request,
        id=f"file-migration/{seeded.tenant}/{request.migration_id}",
        task_queue=task_queue,
    )

    assert result.status == "completed"
    assert await _digests(providers["local"], seeded.bucket) == seeded.digests
    assert await _locations(sessionmaker, seeded) == {("local", seeded.bucket)}
    assert not (await providers["gcs"].list(seeded.bucket)).items


async def test_a_migration_whose_target_fails_rolls_back_completely(
    client: Client,
    task_queue: str,
    worker: None,
    providers: dict[str, StorageProvider],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    file_events: TopicFollower,
) -> None:
    seeded = await _seed(sessionmaker, providers["s3"], 40)
    target_bucket = seeded.bucket  # the tenant's bucket, on another provider
    # The target's disk refuses the last file's directory (a file sits where it must go),
    # as a full or broken volume would; every attempt at that batch fails.
    last = max(seeded.file_ids)
    blocker = Path(settings.local_storage_root) / target_bucket / "files" / last
    blocker.parent.mkdir(parents=True)
    blocker.write_text("in the way")
    request = _request(seeded, "s3", "local", target_bucket, batch_size=10)

    result = await client.execute_workflow(
        FileMigrationWorkflow.run,
        request,
        id=f"file-migration/{seeded.tenant}/{request.migration_id}",
        task_queue=task_queue,
    )

    assert result.status == "rolled_back"
    assert result.progress.written > 0, "some batches should have been copied before the failure"
    assert await _locations(sessionmaker, seeded) == {("s3", seeded.bucket)}
    left = {i.key for i in (await providers["local"].list(target_bucket)).items}
    assert left == {f"files/{last}"}  # only the blocker: every copy is gone
    assert await _digests(providers["s3"], seeded.bucket) == seeded.digests
    [failed] = await file_events.wait_for(lambda e: e.get("migration_id") == request.migration_id)
    assert failed["event_type"] == "file.migration_failed"
    assert failed["rolled_back"] is True
    assert failed["files_moved"] == 0


def _worker(task_queue: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "FERRY_FILES_TASK_QUEUE": task_queue}
    return subprocess.Popen(
        [sys.executable, "-m", "ferry.cli", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_migration_interrupted_by_a_killed_worker_resumes_and_copies_nothing_twice(
    client: Client,
    providers: dict[str, StorageProvider],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    workers: list[subprocess.Popen[bytes]],
) -> None:
    seeded = await _seed(sessionmaker, providers["gcs"], 150)
    target_bucket = seeded.bucket
    queue = f"ferry-crash-{uuid.uuid4().hex[:8]}"
    request = _request(seeded, "gcs", "local", target_bucket, batch_size=10)
    workers.append(_worker(queue))
    handle = await client.start_workflow(
        FileMigrationWorkflow.run,
        request,
        id=f"file-migration/{seeded.tenant}/{request.migration_id}",
        task_queue=queue,
    )
    objects = len(seeded.digests)
    async with asyncio.timeout(120):
        while True:
            progress = await handle.query("progress", result_type=MigrationProgress)
            if progress.files_done >= objects // 3:
                break
            await asyncio.sleep(0.05)
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait()

    # Each copy is a new file (written aside, then renamed): its inode changes if rewritten.
    root = Path(settings.local_storage_root) / target_bucket
    before = {p: p.stat().st_ino for p in root.rglob("*") if p.is_file()}
    assert 0 < len(before) < objects
    workers.append(_worker(queue))
    result = await handle.result()

    assert result.status == "completed"
    after = {p: p.stat().st_ino for p in root.rglob("*") if p.is_file()}
    assert all(after[p] == inode for p, inode in before.items()), "a copy was written twice"
    assert await _digests(providers["local"], target_bucket) == seeded.digests
    assert await _locations(sessionmaker, seeded) == {("local", target_bucket)}
