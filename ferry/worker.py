"""The worker: settings → clients → activity classes → `Worker`. The one place that wires them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.worker import Worker

from ferry.activities.database import DatabaseActivities
from ferry.activities.events import EventActivities
from ferry.activities.media import MediaActivities
from ferry.activities.scan import ScanActivities
from ferry.activities.storage import StorageActivities
from ferry.config import Settings
from ferry.db import create_engine, create_sessionmaker
from ferry.producers import EventPublisher
from ferry.storage import StorageProvider, providers_from_env
from ferry.workflows.file_upload import FileUploadWorkflow

WORKFLOWS = [FileUploadWorkflow]


async def connect(
    settings: Settings, retry_config: RetryConfig | None = None, lazy: bool = False
) -> Client:
    """A Temporal client as every Ferry process makes it."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        retry_config=retry_config,
        lazy=lazy,
    )


def storage_providers(settings: Settings) -> dict[str, StorageProvider]:
    """Local storage, and each cloud provider whose usual variables are set."""
    return providers_from_env(settings.local_storage_root)


@contextlib.asynccontextmanager
async def file_worker(
    client: Client, settings: Settings, task_queue: str | None = None
) -> AsyncIterator[Worker]:
    """A running worker for the file workflows and their activities."""
    providers = storage_providers(settings)
    host, port = settings.clamd_host_port
    engine = create_engine(settings.database_url.get_secret_value())
    async with EventPublisher(settings.kafka_bootstrap) as publisher:
        storage = StorageActivities(providers)
        scan = ScanActivities(host, port, providers)
        events = EventActivities(publisher)
        database = DatabaseActivities(create_sessionmaker(engine))
        media = MediaActivities(providers)
        worker = Worker(
            client,
            task_queue=task_queue or settings.files_task_queue,
            workflows=WORKFLOWS,
            activities=[
                storage.fingerprint, storage.move, scan.scan, events.publish,
                media.validate_upload, media.make_thumbnails, media.extract_metadata,
                media.analyse_content, *database.activities(),
            ],
            max_concurrent_activities=32,
        )  # fmt: skip
        try:
            async with worker:
                yield worker
        finally:
            await engine.dispose()
            for provider in providers.values():
                await provider.close()


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    """Run the worker until `stop` is set."""
    client = await connect(settings)
    async with file_worker(client, settings):
        await stop.wait()
