"""Running an in-process bridge for the length of a block, and the events it is fed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.records import Ledger
from ferry.contracts.workflows import file_upload_id
from ferry.db.errors import unavailable
from ferry.processes import bridge_config
from ferry.producers import EventPublisher


@asynccontextmanager
async def running(bridge: Bridge) -> AsyncIterator[Bridge]:
    """Run `bridge`: the block begins once it has joined its group, and when the block
    ends the bridge finishes its records, commits and leaves, as on SIGTERM."""
    stop = asyncio.Event()
    task = asyncio.create_task(bridge.run(stop))
    ready = asyncio.create_task(bridge.ready.wait())
    try:
        # A bridge that stops before it is ready (Temporal did not answer) says why at once.
        await asyncio.wait([task, ready], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            await task
            raise RuntimeError("the bridge stopped before it joined its group")
        if not ready.done():
            raise TimeoutError("the bridge did not join its group within 60 s")
        yield bridge
    finally:
        ready.cancel()
        stop.set()
        await task


async def workflow_ids(client: Client, tenant: str) -> list[str]:
    return [wf.id async for wf in client.list_workflows(f'TenantId = "{tenant}"')]


def upload_event(tenant: str, filename: str) -> dict[str, Any]:
    """A `file.uploaded` for a file that is not there: for workflows that need only to start."""
    file_id = str(uuid.uuid4())
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "file.uploaded",
        "occurred_at": 1_795_000_000_000,
        "tenant_id": tenant,
        "source": "test",
        "file_id": file_id,
        "filename": filename,
        "declared_content_type": "text/plain",
        "size_bytes": 1,
        "storage": {
            "provider": "local",
            "bucket": "ferry-ingest",
            "key": f"tenants/{tenant}/uploads/{file_id}/{filename}",
        },
        "uploaded_by": "u-1",
    }


def upload_workflow_id(event: dict[str, Any]) -> str:
    return file_upload_id(event["tenant_id"], event["file_id"])


async def terminate_uploads(client: Client, events: list[dict[str, Any]]) -> None:
    """Clean up after a worker-less bridge: its workflows only started."""
    for event in events:
        handle = client.get_workflow_handle(upload_workflow_id(event))
        await handle.terminate("test cleanup: no worker on this queue")


def workerless_bridge(
    client: Client,
    publisher: EventPublisher,
    settings: Settings,
    group: str,
    ledger: Ledger,
    **overrides: object,
) -> Bridge:
    """A bridge with four records in flight, starting workflows on a queue no worker polls:
    they need only to start."""
    config = bridge_config(settings, group_id=group, max_in_flight=4, **overrides)
    config.task_queues = dict.fromkeys(config.task_queues, f"no-worker-{uuid.uuid4().hex[:8]}")
    return Bridge(
        client,
        publisher,
        settings.kafka_bootstrap,
        config,
        ledger=ledger,
        # As `ferry consume` is wired: a database outage is waited out.
        ledger_unavailable=unavailable,
    )
