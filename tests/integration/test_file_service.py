"""The file service on the real stack: what users see for clean, infected and invalid uploads."""

from __future__ import annotations

import io
import struct
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from PIL import Image, ImageDraw
from pypdf import PdfWriter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.contracts.enums import FileState, StorageProvider
from ferry.db import tenant_scope
from ferry.demo import EICAR, ensure_tenant, stage_upload
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage, providers_from_env

pytestmark = pytest.mark.stack

UPLOADS = "ferry.uploads.v1"


def jpeg_with_orientation() -> bytes:
    """A 1200x800 photo whose EXIF says 'rotate 90°' (orientation 6), with a camera model."""
    image = Image.new("RGB", (1200, 800), "#3a7bd5")
    ImageDraw.Draw(image).rectangle((0, 0, 300, 800), fill="#ffffff")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation
    exif[0x0110] = "FerryCam 1"  # model
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=90)
    return out.getvalue()


def png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (300, 200), "#c0ffee").save(out, "PNG")
    return out.getvalue()


def pdf(pages: int = 3) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=612, height=792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def zipped(name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def bomb_png(side: int = 30_000) -> bytes:
    """A 1-bit PNG of `side`x`side` pixels (900 megapixels) that is a few kilobytes on disk."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    )


async def upload_and_wait(
    local_storage: LocalStorage,
    settings: Settings,
    publisher: EventPublisher,
    file_events: TopicFollower,
    tenant: str,
    filename: str,
    content_type: str,
    data: bytes,
) -> tuple[dict[str, Any], dict[str, Any]]:
    event = await stage_upload(
        local_storage, settings.ingest_bucket, tenant, filename, content_type, data
    )
    await publisher.publish(event, topic=UPLOADS)
    [outcome] = await file_events.wait_for(
        lambda e: e.get("file_id") == event["file_id"], timeout=120
    )
    return event, outcome


@pytest.fixture
def upload(
    bridge: Bridge,
    local_storage: LocalStorage,
    settings: Settings,
    publisher: EventPublisher,
    file_events: TopicFollower,
    tenant: str,
) -> Any:
    async def send(
        filename: str, content_type: str, data: bytes
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        return await upload_and_wait(
            local_storage, settings, publisher, file_events, tenant, filename, content_type, data
        )

    return send


async def test_a_photo_is_processed_with_upright_thumbnails_metadata_and_analysis(
    upload: Any,
    local_storage: LocalStorage,
    sessionmaker: async_sessionmaker[AsyncSession],
    tenant: str,
) -> None:
    event, processed = await upload("holiday.jpg", "image/jpeg", jpeg_with_orientation())

    assert processed["event_type"] == "file.processed"
    assert processed["content_type"] == "image/jpeg"
    thumbnails = {t["name"]: t for t in processed["thumbnails"]}
    assert set(thumbnails) == {"thumb-256.webp", "thumb-1024.jpg"}
    # EXIF orientation applied: the 1200x800 landscape is a portrait thumbnail.
    assert (thumbnails["thumb-256.webp"]["width"], thumbnails["thumb-256.webp"]["height"]) == (
        171,
        256,
    )
    for thumb in thumbnails.values():
        key = thumb["key"]
        assert key.startswith(f"files/{event['file_id']}/thumbnails/")
        data = b"".join([c async for c in local_storage.read(f"ferry-{tenant}", key)])
        with Image.open(io.BytesIO(data)) as image:
            assert not image.getexif()  # metadata stripped
    assert processed["metadata"]["filename"] == "holiday.jpg"
    assert "FerryCam 1" in processed["metadata"].values()
    assert processed["analysis"]["status"] == "ok"
    assert processed["analysis"]["nsfw"] == "false"

    async with tenant_scope(sessionmaker, tenant) as db:
        row = await db.files.get(event["file_id"])
        assert row is not None and row.state == FileState.PROCESSED
        assert row.sha256 == processed["sha256"]
        assert len(await db.files.thumbnails(event["file_id"])) == 2


async def test_a_png_and_a_pdf_are_processed(upload: Any) -> None:
    _, image = await upload("chart.png", "image/png", png())
    assert image["event_type"] == "file.processed"
    assert len(image["thumbnails"]) == 2

    _, document = await upload("contract.pdf", "application/pdf", pdf(pages=3))
    assert document["event_type"] == "file.processed"
    assert document["content_type"] == "application/pdf"
    assert document["thumbnails"] == []
    assert "3" in document["metadata"].values()


@pytest.mark.parametrize(
    ("filename", "content_type", "make"),
    [
        ("eicar.com", "application/octet-stream", lambda: EICAR),
        ("archive.zip", "application/zip", lambda: zipped("eicar.com", EICAR)),
        ("kitten.jpg", "image/jpeg", lambda: EICAR),
    ],
    ids=["plain", "zipped", "renamed-jpg"],
)
async def test_eicar_in_any_disguise_is_rejected_as_infected_and_only_in_quarantine(
    upload: Any,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
    filename: str,
    content_type: str,
    make: Any,
) -> None:
    event, rejected = await upload(filename, content_type, make())

    assert (rejected["event_type"], rejected["reason"]) == ("file.rejected", "infected")
    assert rejected["signature"].startswith("Eicar-Test-Signature")
    assert await local_storage.head("ferry-quarantine", f"quarantine/{tenant}/{event['file_id']}")
    assert not await local_storage.head(f"ferry-{tenant}", f"files/{event['file_id']}/original")
    assert not await local_storage.head(settings.ingest_bucket, event["storage"]["key"])


async def test_a_png_named_pdf_is_rejected_as_invalid_type(upload: Any) -> None:
    _, rejected = await upload("invoice.pdf", "application/pdf", png())
    assert (rejected["event_type"], rejected["reason"]) == ("file.rejected", "invalid_type")


async def test_a_decompression_bomb_is_rejected_as_corrupt(upload: Any) -> None:
    data = bomb_png()
    assert len(data) < 200_000
    _, rejected = await upload("bomb.png", "image/png", data)
    assert (rejected["event_type"], rejected["reason"]) == ("file.rejected", "corrupt")


@pytest.mark.parametrize(
    ("ingest", "home"),
    [("s3", StorageProvider.AZURE), ("gcs", StorageProvider.S3), ("azure", StorageProvider.GCS)],
)
async def test_an_upload_in_one_cloud_lands_in_the_tenants_bucket_in_another(
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    ingest: str,
    home: StorageProvider,
) -> None:
    tenant = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}", provider=home)
    providers = providers_from_env(settings.local_storage_root)
    try:
        source, target = providers[ingest], providers[str(home)]
        await source.create_bucket(settings.ingest_bucket)
        data = png()
        file_id = str(uuid.uuid4())
        key = f"tenants/{tenant}/uploads/{file_id}/chart.png"

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        await source.write(settings.ingest_bucket, key, chunks())
        event = {
            "event_id": str(uuid.uuid4()),
            "event_type": "file.uploaded",
            "occurred_at": datetime.now(UTC),
            "tenant_id": tenant,
            "correlation_id": None,
            "source": "test",
            "file_id": file_id,
            "filename": "chart.png",
            "declared_content_type": "image/png",
            "size_bytes": len(data),
            "storage": {"provider": ingest, "bucket": settings.ingest_bucket, "key": key},
            "sha256": None,
            "uploaded_by": "u-1",
        }
        await publisher.publish(event, topic=UPLOADS)
        [processed] = await file_events.wait_for(lambda e: e.get("file_id") == file_id, timeout=120)

        assert processed["event_type"] == "file.processed"
        assert processed["storage"] == {
            "provider": str(home),
            "bucket": f"ferry-{tenant}",
            "key": f"files/{file_id}/original",
        }
        stored = b"".join(
            [c async for c in target.read(f"ferry-{tenant}", f"files/{file_id}/original")]
        )
        assert stored == data
        assert await source.head(settings.ingest_bucket, key) is None
        for thumb in processed["thumbnails"]:
            assert await target.head(f"ferry-{tenant}", thumb["key"]) is not None
    finally:
        for provider in providers.values():
            await provider.close()
