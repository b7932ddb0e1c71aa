"""Record the histories that tests/replay replays: `python tests/replay/record_histories.py`.

Runs each scenario on the local stack with the real worker and activities
(the stack must be up), then writes the workflow's history as JSON next to
this file. Re-record when a workflow changes on purpose, in the same commit.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from ferry.activities.storage import StorageRef
from ferry.config import get_settings
from ferry.db import create_engine, create_sessionmaker
from ferry.demo import DEMO_FILES, EICAR, ensure_tenant, stage_upload
from ferry.storage import LocalStorage
from ferry.worker import connect, ferry_worker
from ferry.workflows.file_upload import FileUploadInput, FileUploadWorkflow

HISTORIES = Path(__file__).parent / "histories"
TENANT = "replay"


async def record_upload(name: str, filename: str, content_type: str, data: bytes) -> None:
    settings = get_settings()
    client = await connect(settings)
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    await ensure_tenant(create_sessionmaker(engine), TENANT)
    await engine.dispose()
    storage = LocalStorage(settings.local_storage_root)
    event = await stage_upload(
        storage, settings.ingest_bucket, TENANT, filename, content_type, data
    )
    queue = f"record-{uuid.uuid4().hex[:8]}"
    upload = FileUploadInput(
        event_id=event["event_id"],
        tenant_id=TENANT,
        file_id=event["file_id"],
        filename=filename,
        declared_content_type=content_type,
        size_bytes=len(data),
        storage=StorageRef(**event["storage"]),
        uploaded_by="recorder",
        sha256=event["sha256"],
    )
    async with ferry_worker(client, settings, queue):
        handle = await client.start_workflow(
            FileUploadWorkflow.run,
            upload,
            id=f"file-upload/{TENANT}/{upload.file_id}",
            task_queue=queue,
        )
        await handle.result()
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json())
    print(f"recorded {name}: {len(history.events)} events")


async def main() -> None:
    HISTORIES.mkdir(exist_ok=True)
    await record_upload("file_upload_processed", "poster.png", "image/png", DEMO_FILES[0][2])
    await record_upload("file_upload_infected", "notes.txt", "text/plain", EICAR)
    await record_upload(
        "file_upload_invalid_type", "poster.pdf", "application/pdf", DEMO_FILES[0][2]
    )


if __name__ == "__main__":
    asyncio.run(main())
