"""Provider failover: an upload whose tenant's provider keeps failing lands on the next one."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.db import tenant_scope
from ferry.demo import DEMO_FILES, stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage, providers_from_env

pytestmark = pytest.mark.stack


async def test_an_upload_whose_provider_is_down_lands_on_the_next_one(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    # The tenant's provider is `local`; a file sits where its bucket's directory must go,
    # so every write into the bucket fails, as on a broken volume. The ingest bucket is fine.
    blocker = Path(settings.local_storage_root) / f"ferry-{tenant}"
    blocker.write_text("in the way")
    data = DEMO_FILES[0][2]  # a PNG: thumbnails are made from the stored original
    upload = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, "drill.png", "image/png", data
    )

    await publisher.publish(upload, topic="ferry.uploads.v1")
    [processed] = await file_events.wait_for(
        lambda e: e.get("file_id") == upload["file_id"], timeout=120
    )

    assert processed["event_type"] == "file.processed"
    stored = processed["storage"]
    assert stored == {
        "provider": "s3",  # the first of FERRY_STORAGE_FAILOVER_ORDER other than local
        "bucket": f"ferry-{tenant}",
        "key": f"files/{upload['file_id']}/original",
    }
    s3 = providers_from_env(settings.local_storage_root)["s3"]
    try:
        read = b"".join([c async for c in s3.read(stored["bucket"], stored["key"])])
        # Later steps follow where the original is: the thumbnails are on S3 too.
        assert processed["thumbnails"]
        for thumbnail in processed["thumbnails"]:
            assert await s3.head(stored["bucket"], thumbnail["key"]) is not None
    finally:
        await s3.close()
    assert hashlib.sha256(read).hexdigest() == hashlib.sha256(data).hexdigest()
    async with tenant_scope(sessionmaker, tenant) as db:
        row = await db.files.require(upload["file_id"])
    assert (row.storage_provider, row.storage_bucket) == ("s3", f"ferry-{tenant}")
