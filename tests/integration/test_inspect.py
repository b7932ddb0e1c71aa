"""inspect_upload on the stack's clamd: one read of the object, one hash, the verdict and the
checks; the copy it keeps serves the media steps and goes when they are done."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import socket
import urllib.request
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw, ImageFile, ImageFont
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from ferry.activities.inspect import InspectActivities, Inspection, InspectRequest
from ferry.activities.media import MediaActivities
from ferry.activities.media_payloads import AnalysisRequest, MetadataRequest, ThumbnailRequest
from ferry.activities.scan import ScanActivities
from ferry.activities.spool import SpoolStore
from ferry.config import Settings
from ferry.contracts.storage import StorageRef
from ferry.demo import DEMO_FILES, EICAR
from ferry.storage import LocalStorage

pytestmark = pytest.mark.stack

TENANT = "acme"
PNG = DEMO_FILES[0][2]


class CountingStorage(LocalStorage):
    """Local storage that counts the reads of each object."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.reads: list[str] = []

    async def _read(self, bucket: str, key: str, chunk_size: int) -> AsyncGenerator[bytes, None]:
        self.reads.append(key)
        async for chunk in super()._read(bucket, key, chunk_size):
            yield chunk


@pytest.fixture
def storage(tmp_path: Path) -> CountingStorage:
    return CountingStorage(tmp_path / "storage")


@pytest.fixture
def spool(tmp_path: Path) -> Iterator[SpoolStore]:
    yield SpoolStore(tmp_path / "spool", "files/this-worker")


def activities(
    settings: Settings, storage: LocalStorage, spool: SpoolStore, clamd: str | None = None
) -> tuple[InspectActivities, MediaActivities]:
    host, port = (clamd or settings.clamd_address).rsplit(":", 1)
    media = MediaActivities({"local": storage}, spool=spool)
    scanner = ScanActivities(host, int(port), {"local": storage})
    return InspectActivities({"local": storage}, spool, scanner, media), media


async def staged(storage: LocalStorage, name: str, data: bytes) -> InspectRequest:
    file_id = str(uuid.uuid4())
    key = f"tenants/{TENANT}/uploads/{file_id}/{name}"

    async def chunks() -> AsyncIterator[bytes]:
        yield data

    await storage.create_bucket("ferry-ingest")
    await storage.write("ferry-ingest", key, chunks())
    return InspectRequest(
        source=StorageRef("local", "ferry-ingest", key),
        tenant_id=TENANT,
        file_id=file_id,
        filename=name,
        declared_content_type={"png": "image/png", "jpg": "image/jpeg"}.get(
            name.rsplit(".", 1)[-1], "text/plain"
        ),
        size_bytes=len(data),
        max_file_bytes=100 * 1024 * 1024,
    )


def copies(spool: SpoolStore) -> list[str]:
    return sorted(p.name for p in (spool.root / SpoolStore.BUCKET).iterdir())


async def test_a_clean_image_is_read_once_and_its_copy_serves_the_media_steps(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    inspect, media = activities(settings, storage, spool)
    request = await staged(storage, "poster.png", PNG)

    found: Inspection = await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert found.sha256 == hashlib.sha256(PNG).hexdigest()
    assert found.size_bytes == len(PNG)
    assert found.scan is not None and found.scan.clean
    assert found.validation is not None and found.validation.ok
    assert found.validation.content_type == "image/png"
    assert found.spool is not None and found.spool.task_queue == "files/this-worker"
    assert copies(spool) == [found.spool.spool_id]
    assert storage.reads == [request.source.key], "one read of the object"

    copy = found.spool.spool_id
    run = ActivityEnvironment().run
    made = await run(
        media.make_thumbnails,
        ThumbnailRequest(request.source, "ferry-acme", request.file_id, spool=copy),
    )
    meta = await run(
        media.extract_metadata, MetadataRequest(request.source, sha256=found.sha256, spool=copy)
    )
    await run(media.analyse_content, AnalysisRequest(request.source, "image/png", spool=copy))

    assert [t.name for t in made.thumbnails] == ["thumb-1024.jpg", "thumb-256.webp"]
    assert (meta.sha256, meta.size_bytes) == (found.sha256, len(PNG))
    assert storage.reads == [request.source.key], "the media steps read the copy, not storage"
    assert copies(spool) == [], "the last step to finish deletes the copy"


async def test_a_media_step_without_the_copy_reads_the_stored_object(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    _, media = activities(settings, storage, spool)
    request = await staged(storage, "poster.png", PNG)

    meta = await ActivityEnvironment().run(
        media.extract_metadata, MetadataRequest(request.source, spool="gone.copy")
    )

    assert meta.sha256 == hashlib.sha256(PNG).hexdigest()
    assert storage.reads == [request.source.key]


async def test_an_infected_upload_is_judged_before_its_content_and_keeps_no_copy(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    inspect, _ = activities(settings, storage, spool)
    request = await staged(storage, "notes.txt", EICAR)

    found = await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert found.scan is not None and not found.scan.clean
    assert found.scan.signature is not None and "Eicar" in found.scan.signature
    assert found.validation is None and found.spool is None
    assert copies(spool) == []


async def test_bytes_that_are_not_the_announced_ones_are_never_scanned(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    inspect, _ = activities(settings, storage, spool)
    request = await staged(storage, "notes.txt", b"what was stored\n")
    request.sha256 = "00" * 32

    found = await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert found.sha256 == hashlib.sha256(b"what was stored\n").hexdigest()
    assert found.scan is None and found.spool is None
    assert copies(spool) == []


async def test_a_size_other_than_the_announced_one_is_not_even_read(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    inspect, _ = activities(settings, storage, spool)
    request = await staged(storage, "notes.txt", b"twelve bytes")
    request.size_bytes = 99

    found = await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert (found.size_bytes, found.sha256, found.scan) == (12, None, None)
    assert storage.reads == []


async def test_clamd_away_fails_the_pass_closed_and_keeps_no_copy(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    # Nothing listens on port 1.
    inspect, _ = activities(settings, storage, spool, clamd="127.0.0.1:1")
    request = await staged(storage, "notes.txt", b"plain text\n")

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert raised.value.type == "ScannerUnavailable" and not raised.value.non_retryable
    assert copies(spool) == []


async def test_another_tenants_object_is_refused_before_it_is_read(
    settings: Settings, storage: CountingStorage, spool: SpoolStore
) -> None:
    inspect, _ = activities(settings, storage, spool)
    request = await staged(storage, "notes.txt", b"theirs\n")
    request.tenant_id = "other"

    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(inspect.inspect_upload, request)

    assert raised.value.type == "OutsideTenant" and raised.value.non_retryable
    assert storage.reads == []


def turned_photo() -> bytes:
    """A 1600x1200 JPEG with EXIF orientation 6 (shown turned 90° clockwise): upright, a
    line of text on a light background, so that its analysis reads as well as moderates."""
    upright = Image.new("RGB", (1200, 1600), (235, 235, 225))
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", 64)
    ImageDraw.Draw(upright).text((80, 700), "Ferry carries files", font=font, fill=(20, 20, 20))
    exif = Image.Exif()
    exif[274] = 6
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


def count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The formats of the images Pillow decodes from now on (a `load` with data to read)."""
    decoded: list[str] = []
    load = ImageFile.ImageFile.load

    def counted(image: ImageFile.ImageFile) -> Any:
        if image.tile:
            decoded.append(str(image.format))
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    return decoded


async def follow(
    media: MediaActivities,
    storage: LocalStorage,
    request: InspectRequest,
    copy: str | None,
    env: ActivityEnvironment | None = None,
) -> Any:
    """The thumbnails' bytes and the analysis of an inspected upload, from `copy` if any."""
    run = (env or ActivityEnvironment()).run
    made = await run(
        media.make_thumbnails,
        ThumbnailRequest(request.source, "ferry-acme", request.file_id, spool=copy),
    )
    analysed = await run(
        media.analyse_content, AnalysisRequest(request.source, "image/jpeg", spool=copy)
    )
    thumbnails = [
        b"".join([chunk async for chunk in storage.read("ferry-acme", t.key)])
        for t in made.thumbnails
    ]
    return [(t.name, t.width, t.height) for t in made.thumbnails], thumbnails, analysed


async def test_a_photo_is_decoded_once_for_its_validation_thumbnails_and_analysis(
    settings: Settings,
    storage: CountingStorage,
    spool: SpoolStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inspect, media = activities(settings, storage, spool)
    request = await staged(storage, "turned.jpg", turned_photo())
    await storage.create_bucket("ferry-acme")
    decodes = count_decodes(monkeypatch)

    found: Inspection = await ActivityEnvironment().run(inspect.inspect_upload, request)
    assert found.validation is not None and found.validation.ok and found.spool is not None
    copy = found.spool.spool_id
    kept = spool.decoded(copy)
    assert kept is not None and kept.size == (1200, 1600), "kept upright, at full size"
    assert decodes == ["JPEG"], "the validation decodes it whole, once"

    sizes, thumbnails, analysed = await follow(media, storage, request, copy)
    await ActivityEnvironment().run(
        media.extract_metadata, MetadataRequest(request.source, sha256=found.sha256, spool=copy)
    )

    assert decodes == ["JPEG"], "the thumbnails and the analysis decode nothing again"
    assert spool.decoded(copy) is None and copies(spool) == [], "the last step lets both go"
    # The same results as the steps decoding the stored original themselves.
    alone = MediaActivities({"local": storage})
    assert await follow(alone, storage, request, None) == (sizes, thumbnails, analysed)
    assert sizes == [("thumb-1024.jpg", 768, 1024), ("thumb-256.webp", 192, 256)]
    assert analysed.ocr_text == "Ferry carries files"
    assert decodes.count("JPEG") == 3, "alone, each step decodes it"


async def test_a_decode_over_the_budget_is_not_kept_and_the_steps_decode_the_copy(
    settings: Settings, storage: CountingStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 1600x1200 in RGB is 7.7 MB as Pillow holds it: over a budget of 4 MB.
    spool = SpoolStore(tmp_path / "small-spool", "files/this-worker", decoded_budget=4 * 2**20)
    inspect, media = activities(settings, storage, spool)
    request = await staged(storage, "turned.jpg", turned_photo())
    await storage.create_bucket("ferry-acme")
    decodes = count_decodes(monkeypatch)

    found: Inspection = await ActivityEnvironment().run(inspect.inspect_upload, request)
    assert found.spool is not None and spool.decoded(found.spool.spool_id) is None
    sizes, _, analysed = await follow(media, storage, request, found.spool.spool_id)

    assert sizes == [("thumb-1024.jpg", 768, 1024), ("thumb-256.webp", 192, 256)]
    assert analysed.moderation_model is not None
    assert len(decodes) == 3
    assert storage.reads.count(request.source.key) == 1, "still read from the copy, not storage"


def decodes_counted(port: int, task_queue: str) -> dict[tuple[str, str], float]:
    """`ferry_image_decodes` of this task queue by (step, source), as Prometheus reads it."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = {}
    for line in text.splitlines():
        if line.startswith("ferry_image_decodes") and f'task_queue="{task_queue}"' in line:
            labels = dict(
                part.split("=", 1) for part in line.split("{", 1)[1].split("}")[0].split(",")
            )
            key = (labels["step"].strip('"'), labels["source"].strip('"'))
            found[key] = float(line.rsplit(" ", 1)[1])
    return found


async def test_the_worker_counts_the_steps_that_started_from_the_kept_decode(
    settings: Settings, storage: CountingStorage, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    runtime = Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))
    )
    env = ActivityEnvironment()
    queue = f"files/{uuid.uuid4().hex}"
    env.info = dataclasses.replace(env.info, task_queue=queue)
    env.metric_meter = runtime.metric_meter
    await storage.create_bucket("ferry-acme")
    # Room for one photo's decode (7.7 MB): the second upload's steps decode the file.
    spool = SpoolStore(tmp_path / "one", "files/this-worker", decoded_budget=8 * 2**20)
    inspect, media = activities(settings, storage, spool)
    first = await staged(storage, "first.jpg", turned_photo())
    second = await staged(storage, "second.jpg", turned_photo())

    found = [await ActivityEnvironment().run(inspect.inspect_upload, r) for r in (first, second)]
    for request, inspection in zip((first, second), found, strict=True):
        assert inspection.spool is not None
        await follow(media, storage, request, inspection.spool.spool_id, env)

    assert decodes_counted(port, queue) == {
        ("thumbnails", "validation"): 1,
        ("analysis", "validation"): 1,
        ("thumbnails", "file"): 1,
        ("analysis", "file"): 1,
    }
