"""Media activities on local storage: validation, thumbnails, metadata and analysis."""

from __future__ import annotations

import hashlib
import io
import random
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import nudenet
import pytest
from PIL import ExifTags, Image, ImageCms, ImageDraw, ImageFile, ImageFont, ImageStat
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from ferry.activities.media import MediaActivities
from ferry.activities.media_payloads import (
    Analysis,
    AnalysisRequest,
    Metadata,
    MetadataRequest,
    ModerationLabel,
    ThumbnailRequest,
    ThumbnailSet,
    Validation,
    ValidationRequest,
)
from ferry.contracts.enums import RejectionReason
from ferry.contracts.storage import StorageRef
from ferry.media.analysis import detect_language, looks_like_text
from ferry.media.limits import MediaLimits
from ferry.storage import LocalStorage

INGEST = "ferry-ingest"
TENANT_BUCKET = "ferry-acme"
MB = 1024 * 1024
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
LATITUDE = (52.0, 22.0, 1.5)


# --- files made in the test -------------------------------------------------------------


def image_bytes(
    fmt: str, size: tuple[int, int] = (64, 48), mode: str = "RGB", **save: Any
) -> bytes:
    image = Image.new(mode, size, (200, 30, 90) if mode == "RGB" else 0)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


def noise_jpeg(size: tuple[int, int], seed: int = 7) -> bytes:
    rng = random.Random(seed)
    image = Image.frombytes("RGB", size, rng.randbytes(size[0] * size[1] * 3))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def camera_jpeg(size: tuple[int, int] = (1200, 800)) -> bytes:
    """A JPEG stored landscape with EXIF orientation 6 (show rotated 90° clockwise),
    a camera model, a time zone offset and a GPS position; the top-left quarter is red."""
    image = Image.new("RGB", size, (255, 255, 255))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2, size[1] // 2), fill=(255, 0, 0))
    exif = Image.Exif()
    exif[271] = "Ferry Optics"
    exif[272] = "FerryCam 3000"
    exif[274] = 6
    exif[306] = "2024:05:01 12:00:00"
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[36867] = "2024:05:01 11:59:58"
    details[36880] = "+02:00"  # OffsetTime: a coarse location, kept out
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps.update({1: "N", 2: LATITUDE, 3: "E", 4: (4.0, 53.0, 0.0)})
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, quality=90)
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of one colour: a few KB on disk, huge when decoded.

    Written chunk by chunk with zlib, since Pillow would hold one byte per pixel
    (400 MB for 20000x20000) to write it.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * ((width + 7) // 8)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def pdf_bytes(pages: list[str]) -> bytes:
    """A minimal PDF, built by hand, with one line of Helvetica text per page."""
    count = len(pages)
    font_id = 3 + 2 * count
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(count))
        + b"] /Count %d >>" % count,
    ]
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = b"BT /F1 18 Tf 72 720 Td (" + escaped.encode("latin-1") + b") Tj ET"
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 %d 0 R >> >> /Contents %d 0 R >>" % (font_id, 4 + 2 * i)
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def text_image() -> bytes:
    """Large black words on white, for OCR."""
    image = Image.new("RGB", (1500, 420), "white")
    font = ImageFont.truetype(str(FONT), 64) if FONT.exists() else ImageFont.load_default(size=64)
    draw = ImageDraw.Draw(image)
    draw.text((40, 60), "The quick brown fox jumps", fill="black", font=font)
    draw.text((40, 200), "over the lazy sleeping dog", fill="black", font=font)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "hello")
    return buffer.getvalue()


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "objects")


@pytest.fixture
def temp_dir(tmp_path: Path) -> Path:
    path = tmp_path / "spool"
    path.mkdir()
    return path


@pytest.fixture
def media(storage: LocalStorage, temp_dir: Path) -> MediaActivities:
    return MediaActivities({"local": storage}, MediaLimits(temp_dir=str(temp_dir)))


@pytest.fixture
def heartbeats() -> list[Any]:
    return []


@pytest.fixture
def run(heartbeats: list[Any], temp_dir: Path) -> Callable[..., Any]:
    """Runs an activity in Temporal's activity environment; no spooled file may remain."""

    async def call(fn: Callable[..., Any], arg: Any) -> Any:
        env = ActivityEnvironment()
        env.on_heartbeat = lambda *details: heartbeats.append(details)
        try:
            return await env.run(fn, arg)
        finally:
            assert list(temp_dir.iterdir()) == []

    return call


async def put(storage: LocalStorage, name: str, data: bytes) -> StorageRef:
    key = f"tenants/acme/uploads/f1/{name}"

    async def chunks() -> Any:
        yield data

    await storage.write(INGEST, key, chunks())
    return StorageRef("local", INGEST, key)


def validation(ref: StorageRef, filename: str, declared: str, size: int) -> ValidationRequest:
    return ValidationRequest(ref, filename, declared, size, max_file_bytes=64 * MB)


# --- validate_upload --------------------------------------------------------------------

TEXT = b"Plain words, in UTF-8: caf\xc3\xa9.\n" * 10
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.mark.parametrize(
    ("data", "filename", "declared", "expected"),
    [
        (image_bytes("JPEG"), "photo.jpg", "image/jpeg", "image/jpeg"),
        (image_bytes("JPEG"), "PHOTO.JPEG", "image/jpg", "image/jpeg"),
        (image_bytes("PNG"), "a.png", "image/png", "image/png"),
        (image_bytes("GIF"), "a.gif", "image/gif", "image/gif"),
        (image_bytes("WEBP"), "a.webp", "image/webp", "image/webp"),
        (pdf_bytes(["Hello"]), "doc.pdf", "application/pdf", "application/pdf"),
        (TEXT, "notes.txt", "text/plain; charset=utf-8", "text/plain"),
    ],
)
async def test_accepted_types(
    storage: LocalStorage,
    media: MediaActivities,
    run: Callable[..., Any],
    data: bytes,
    filename: str,
    declared: str,
    expected: str,
) -> None:
    ref = await put(storage, filename, data)
    result = await run(media.validate_upload, validation(ref, filename, declared, len(data)))
    assert result == Validation(
        True,
        expected,
        width=64 if expected.startswith("image/") else None,
        height=48 if expected.startswith("image/") else None,
        pages=1 if expected == "application/pdf" else None,
    )


@pytest.mark.parametrize(
    ("data", "filename", "declared", "sniffed"),
    [
        (image_bytes("PNG"), "report.pdf", "application/pdf", "image/png"),  # PNG named .pdf
        (image_bytes("PNG"), "report.pdf", "image/png", "image/png"),  # extension lies
        (image_bytes("JPEG"), "photo.jpg", "image/png", "image/jpeg"),  # declared type lies
        (image_bytes("JPEG"), "photo", "image/jpeg", "image/jpeg"),  # no extension
        (zip_bytes(), "archive.zip", "application/zip", "application/zip"),
        (zip_bytes(), "photo.jpg", "image/jpeg", "application/zip"),
        (image_bytes("TIFF"), "scan.tif", "image/tiff", "image/tiff"),
        (SVG, "drawing.txt", "text/plain", "image/svg+xml"),
        (TEXT, "notes.pdf", "text/plain", "text/plain"),
        (b"\x00\x01\x02binary" * 100, "data.txt", "text/plain", "application/octet-stream"),
    ],
)
async def test_type_mismatches_are_invalid_type(
    storage: LocalStorage,
    media: MediaActivities,
    run: Callable[..., Any],
    data: bytes,
    filename: str,
    declared: str,
    sniffed: str,
) -> None:
    ref = await put(storage, filename, data)
    result = await run(media.validate_upload, validation(ref, filename, declared, len(data)))
    assert (result.ok, result.reason, result.content_type) == (
        False,
        RejectionReason.INVALID_TYPE,
        sniffed,
    )
    assert result.detail


@pytest.mark.parametrize("declared", ["application/octet-stream", "binary/octet-stream", ""])
async def test_an_upload_without_a_declared_type_is_judged_by_its_bytes_and_name(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any], declared: str
) -> None:
    # What an S3 notification announces: AWS's records carry no content type.
    data = image_bytes("PNG")
    ref = await put(storage, "Happy Face.png", data)
    result = await run(
        media.validate_upload, validation(ref, "Happy Face.png", declared, len(data))
    )
    assert result == Validation(True, "image/png", width=64, height=48)


async def test_an_undeclared_type_still_needs_a_name_that_matches_the_bytes(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    data = image_bytes("PNG")
    ref = await put(storage, "report.pdf", data)
    request = validation(ref, "report.pdf", "application/octet-stream", len(data))
    result = await run(media.validate_upload, request)
    assert (result.ok, result.reason, result.content_type) == (
        False,
        RejectionReason.INVALID_TYPE,
        "image/png",
    )
    assert result.detail == "name ends in '.pdf' but the content is image/png"


async def test_an_empty_object_is_corrupt(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = await put(storage, "empty.txt", b"")
    result = await run(media.validate_upload, validation(ref, "empty.txt", "text/plain", 0))
    assert (result.ok, result.reason, result.detail) == (
        False,
        RejectionReason.CORRUPT,
        "the object is empty",
    )


@pytest.mark.parametrize(
    ("tenant", "file_id", "bucket", "key", "kind"),
    [
        ("acme", "f1", INGEST, "tenants/other/uploads/f1/a.png", "OutsideTenant"),
        ("acme", "f1", INGEST, "tenants/acme/uploads/f2/a.png", "OutsideTenant"),
        ("acme", "f1", "ferry-other", "files/f1/original", "OutsideTenant"),
        ("acme", "f1", INGEST, "tenants/acme/uploads/f1/../../../other/x", "InvalidKey"),
    ],
    ids=["another-tenants-upload", "another-file", "another-tenants-bucket", "climbs-out"],
)
async def test_validation_refuses_an_object_that_is_not_the_uploads(
    storage: LocalStorage,
    media: MediaActivities,
    run: Callable[..., Any],
    tenant: str,
    file_id: str,
    bucket: str,
    key: str,
    kind: str,
) -> None:
    ref = StorageRef("local", bucket, key)
    request = ValidationRequest(
        ref, "a.png", "image/png", 10, max_file_bytes=MB, tenant_id=tenant, file_id=file_id
    )
    with pytest.raises(ApplicationError) as caught:
        await run(media.validate_upload, request)
    assert (caught.value.type, caught.value.non_retryable) == (kind, True)


async def test_too_large_by_declared_size_and_by_stored_size(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    data = image_bytes("PNG", (300, 300))
    ref = await put(storage, "big.png", data)
    declared_big = ValidationRequest(ref, "big.png", "image/png", 10 * MB, max_file_bytes=MB)
    result = await run(media.validate_upload, declared_big)
    assert (result.ok, result.reason) == (False, RejectionReason.TOO_LARGE)

    # The event may understate the size: the stored object is what counts.
    understated = ValidationRequest(ref, "big.png", "image/png", 10, max_file_bytes=len(data) - 1)
    result = await run(media.validate_upload, understated)
    assert (result.ok, result.reason) == (False, RejectionReason.TOO_LARGE)


@pytest.mark.parametrize(
    ("width", "height"),
    [
        (8000, 8000),  # 64 MP: over Ferry's 50 MP, under Pillow's own limit
        (20000, 20000),  # 400 MP: Pillow itself calls this a decompression bomb
    ],
)
async def test_decompression_bomb_is_corrupt_and_never_decoded(
    storage: LocalStorage,
    media: MediaActivities,
    run: Callable[..., Any],
    monkeypatch: pytest.MonkeyPatch,
    width: int,
    height: int,
) -> None:
    decoded: list[str] = []
    original_load = ImageFile.ImageFile.load

    def spy_load(self: ImageFile.ImageFile) -> Any:
        decoded.append(f"{self.format} {self.size}")
        return original_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy_load)
    data = bomb_png(width, height)
    assert len(data) < 100 * 1024
    ref = await put(storage, "bomb.png", data)

    result = await run(media.validate_upload, validation(ref, "bomb.png", "image/png", len(data)))
    assert (result.ok, result.reason) == (False, RejectionReason.CORRUPT)
    assert "decompression bomb" in result.detail

    for activity_fn, request in [
        (media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1")),
        (media.extract_metadata, MetadataRequest(ref)),
        (media.analyse_content, AnalysisRequest(ref, "image/png")),
    ]:
        with pytest.raises(ApplicationError) as error:
            await run(activity_fn, request)
        assert (error.value.type, error.value.non_retryable) == ("CorruptFile", True)
    assert decoded == []


async def test_truncated_jpeg_is_corrupt(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    whole = noise_jpeg((640, 480))
    data = whole[: len(whole) * 6 // 10]
    ref = await put(storage, "cut.jpg", data)
    result = await run(media.validate_upload, validation(ref, "cut.jpg", "image/jpeg", len(data)))
    assert (result.ok, result.reason) == (False, RejectionReason.CORRUPT)

    ref = await put(storage, "whole.jpg", whole)
    result = await run(
        media.validate_upload, validation(ref, "whole.jpg", "image/jpeg", len(whole))
    )
    assert (result.ok, result.width, result.height) == (True, 640, 480)


async def test_damaged_png_and_pdf_are_corrupt(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    png = bytearray(image_bytes("PNG", (200, 200)))
    png[60] ^= 0xFF  # inside the image data: the chunk's CRC no longer matches
    ref = await put(storage, "bad.png", bytes(png))
    result = await run(media.validate_upload, validation(ref, "bad.png", "image/png", len(png)))
    assert (result.ok, result.reason) == (False, RejectionReason.CORRUPT)

    pdf = b"%PDF-1.4\nthis is not a document\n" * 20
    ref = await put(storage, "bad.pdf", pdf)
    result = await run(
        media.validate_upload, validation(ref, "bad.pdf", "application/pdf", len(pdf))
    )
    assert (result.ok, result.reason) == (False, RejectionReason.CORRUPT)


async def test_text_that_turns_binary_after_the_sniffed_bytes_is_corrupt(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    data = b"a" * 10_000 + b"\xff\xfe not utf-8"
    ref = await put(storage, "notes.txt", data)
    result = await run(media.validate_upload, validation(ref, "notes.txt", "text/plain", len(data)))
    assert (result.ok, result.reason, result.content_type) == (
        False,
        RejectionReason.CORRUPT,
        "text/plain",
    )


async def test_missing_object_is_a_non_retryable_error(
    media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = StorageRef("local", INGEST, "tenants/acme/uploads/f1/gone.png")
    with pytest.raises(ApplicationError) as error:
        await run(media.extract_metadata, MetadataRequest(ref))
    assert (error.value.type, error.value.non_retryable) == ("ObjectNotFound", True)


# --- make_thumbnails --------------------------------------------------------------------


async def test_thumbnails_are_upright_and_carry_no_metadata(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = await put(storage, "camera.jpg", camera_jpeg((1200, 800)))
    result: ThumbnailSet = await run(
        media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1")
    )

    by_name = {t.name: t for t in result.thumbnails}
    assert set(by_name) == {"thumb-256.webp", "thumb-1024.jpg"}
    # Stored 1200x800 landscape, shown rotated: portrait thumbnails.
    assert (by_name["thumb-1024.jpg"].width, by_name["thumb-1024.jpg"].height) == (683, 1024)
    assert (by_name["thumb-256.webp"].width, by_name["thumb-256.webp"].height) == (171, 256)
    for thumb, fmt in [(by_name["thumb-1024.jpg"], "JPEG"), (by_name["thumb-256.webp"], "WEBP")]:
        assert thumb.key == f"files/f1/thumbnails/{thumb.name}"
        data = b"".join([chunk async for chunk in storage.read(TENANT_BUCKET, thumb.key)])
        assert thumb.size_bytes == len(data)
        assert b"FerryCam" not in data and b"Exif" not in data
        image = Image.open(io.BytesIO(data))
        assert image.format == fmt and image.size == (thumb.width, thumb.height)
        assert not image.getexif() and "icc_profile" not in image.info
        assert "exif" not in image.info
        # The red top-left quarter, turned 90° clockwise, is now the top-right one.
        rgb = image.convert("RGB")
        red_corner, white_corner = rgb.getpixel((thumb.width - 3, 3)), rgb.getpixel((3, 3))
        assert isinstance(red_corner, tuple) and isinstance(white_corner, tuple)
        assert red_corner[0] > 200 and red_corner[1] < 60
        assert min(white_corner) > 200


async def test_thumbnail_sizes_and_no_upscaling(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    sizes = {}
    for name, size in [
        ("wide.png", (3000, 2000)),
        ("mid.png", (600, 400)),
        ("tiny.png", (100, 80)),
    ]:
        ref = await put(storage, name, image_bytes("PNG", size))
        result = await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, name[:-4]))
        sizes[name] = {t.name: (t.width, t.height) for t in result.thumbnails}
    assert sizes == {
        "wide.png": {"thumb-1024.jpg": (1024, 683), "thumb-256.webp": (256, 171)},
        "mid.png": {"thumb-1024.jpg": (600, 400), "thumb-256.webp": (256, 171)},
        "tiny.png": {"thumb-1024.jpg": (100, 80), "thumb-256.webp": (100, 80)},
    }


async def test_thumbnails_with_and_without_draft_agree_and_rewrite_the_same_keys(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = await put(storage, "big.jpg", noise_jpeg((4000, 3000)))
    drafted = await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1"))
    full = await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1", draft=False))
    assert [(t.key, t.width, t.height) for t in drafted.thumbnails] == [
        (t.key, t.width, t.height) for t in full.thumbnails
    ]
    assert [(t.width, t.height) for t in full.thumbnails] == [(1024, 768), (256, 192)]


async def test_thumbnails_convert_colour_profiles_and_high_bit_depth_images(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with_profile = image_bytes("PNG", (300, 200), icc_profile=srgb)
    deep = io.BytesIO()
    Image.linear_gradient("L").resize((300, 200)).convert("I").point(lambda v: v * 256).convert(
        "I;16"
    ).save(deep, "PNG")
    transparent = image_bytes("PNG", (300, 200), mode="RGBA")
    for name, data in [("icc.png", with_profile), ("deep.png", deep.getvalue()),
                       ("alpha.png", transparent)]:  # fmt: skip
        ref = await put(storage, name, data)
        result = await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1"))
        for thumb in result.thumbnails:
            data = b"".join([chunk async for chunk in storage.read(TENANT_BUCKET, thumb.key)])
            image = Image.open(io.BytesIO(data))
            assert "icc_profile" not in image.info
            assert image.mode in ("RGB", "RGBA")
            if name == "deep.png":  # 16-bit grey scaled to 8 bits, not clipped to white
                assert 100 < ImageStat.Stat(image.convert("L")).mean[0] < 155


async def test_no_thumbnails_for_documents(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    for name, data in [("doc.pdf", pdf_bytes(["Hello"])), ("notes.txt", TEXT)]:
        ref = await put(storage, name, data)
        result = await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "f1"))
        assert result == ThumbnailSet([])


async def test_thumbnails_refuse_a_file_id_that_is_not_one_key_segment(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = await put(storage, "a.png", image_bytes("PNG"))
    with pytest.raises(ApplicationError) as error:
        await run(media.make_thumbnails, ThumbnailRequest(ref, TENANT_BUCKET, "../other"))
    assert (error.value.type, error.value.non_retryable) == ("InvalidKey", True)


# --- extract_metadata -------------------------------------------------------------------


async def test_image_metadata_keeps_the_camera_and_drops_the_location(
    storage: LocalStorage,
    media: MediaActivities,
    run: Callable[..., Any],
    heartbeats: list[Any],
) -> None:
    data = camera_jpeg((1200, 800))
    ref = await put(storage, "camera.jpg", data)
    result: Metadata = await run(media.extract_metadata, MetadataRequest(ref))

    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.size_bytes, result.content_type) == (len(data), "image/jpeg")
    assert (result.width, result.height) == (800, 1200)  # as shown, orientation applied
    assert result.exif["Make"] == "Ferry Optics"
    assert result.exif["Model"] == "FerryCam 3000"
    assert result.exif["Orientation"] == "6"
    assert result.exif["DateTimeOriginal"] == "2024:05:01 11:59:58"
    assert result.public["exif.Model"] == "FerryCam 3000"
    assert result.public["width"] == "800" and result.public["height"] == "1200"
    everything = repr(asdict(result))
    assert "GPS" not in everything.upper() and "34853" not in everything
    assert "52" not in "".join(result.exif.values()) + "".join(result.public.values())
    assert "OffsetTime" not in everything and "+02:00" not in everything
    assert all(isinstance(v, str) for v in result.public.values())
    assert heartbeats == []  # a read this short sends none (each one is a write on the server)


async def test_pdf_metadata_has_pages_and_text(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    data = pdf_bytes(["Hello from Ferry, page one.", "And this is the second page."])
    ref = await put(storage, "doc.pdf", data)
    result: Metadata = await run(media.extract_metadata, MetadataRequest(ref))
    assert (result.content_type, result.pages, result.size_bytes) == (
        "application/pdf",
        2,
        len(data),
    )
    assert result.text_excerpt is not None
    assert "Hello from Ferry" in result.text_excerpt and "second page" in result.text_excerpt
    assert result.public["pages"] == "2"
    assert result.sha256 == hashlib.sha256(data).hexdigest()


async def test_text_metadata_is_a_bounded_excerpt_and_a_streamed_hash(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    data = ("Ferry carries files across. " * 20_000).encode()  # about 560 KB
    ref = await put(storage, "long.txt", data)
    result: Metadata = await run(media.extract_metadata, MetadataRequest(ref))
    assert result.sha256 == hashlib.sha256(data).hexdigest()
    assert (result.content_type, result.size_bytes) == ("text/plain", len(data))
    assert result.text_excerpt is not None and len(result.text_excerpt) == 2000
    assert result.text_excerpt.startswith("Ferry carries files across.")
    assert result.width is None and result.pages is None and result.exif == {}


# --- analyse_content --------------------------------------------------------------------


async def test_ocr_reads_the_words_and_detects_english(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    ref = await put(storage, "words.png", text_image())
    result: Analysis = await run(media.analyse_content, AnalysisRequest(ref, "image/png"))
    assert result.ocr_text is not None
    words = result.ocr_text.lower()
    for word in ("quick", "brown", "fox", "jumps", "lazy", "dog"):
        assert word in words
    assert result.language == "en"
    assert result.as_map()["language"] == "en"


async def test_moderation_runs_the_packaged_model_on_a_plain_image(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    gradient = Image.linear_gradient("L").resize((640, 480)).convert("RGB")
    buffer = io.BytesIO()
    gradient.save(buffer, "JPEG")
    ref = await put(storage, "plain.jpg", buffer.getvalue())

    assert not media.moderation_model_loaded
    result: Analysis = await run(media.analyse_content, AnalysisRequest(ref, "image/jpeg"))

    assert media.moderation_model_loaded
    assert media.moderation_model_path.parent == Path(nudenet.__file__).resolve().parent
    assert media.moderation_model_path.name == "320n.onnx"
    assert isinstance(result.labels, list)
    assert not [label for label in result.labels if label.name.endswith("_EXPOSED")]
    assert result.nsfw is False
    assert result.moderation_model == "nudenet-3.4.2/320n.onnx"
    assert result.as_map()["nsfw"] == "false"


async def test_analysis_of_documents_detects_the_language_of_their_text(
    storage: LocalStorage, media: MediaActivities, run: Callable[..., Any]
) -> None:
    pdf = pdf_bytes(["The weather is lovely today and we are going to the seaside."])
    ref = await put(storage, "doc.pdf", pdf)
    result = await run(media.analyse_content, AnalysisRequest(ref, "application/pdf"))
    assert (result.language, result.labels, result.ocr_text) == ("en", [], None)

    given = "Le bateau traverse la rivière chaque matin avec des passagers."
    result = await run(media.analyse_content, AnalysisRequest(ref, "application/pdf", given))
    assert result.language == "fr"

    ref = await put(storage, "short.txt", b"ok")
    result = await run(media.analyse_content, AnalysisRequest(ref, "text/plain"))
    assert result.language is None and result.as_map() == {"status": "ok", "nsfw": "false"}


def test_language_detection_is_deterministic_and_quiet_on_little_text() -> None:
    text = "Dies ist ein kurzer deutscher Satz über Fähren und Flüsse."
    assert {detect_language(text, 20) for _ in range(5)} == {detect_language(text, 20)}
    assert detect_language(text, 20)[0] == "de"
    assert detect_language("hi there", 20) == (None, None)


def test_analysis_map_is_flat_strings() -> None:
    analysis = Analysis(
        labels=[ModerationLabel("FACE_FEMALE", 0.81234), ModerationLabel("FEET_EXPOSED", 0.3)],
        ocr_text="hello",
        language="en",
        language_score=0.99999,
        moderation_model="m",
    )
    assert analysis.as_map() == {
        "status": "ok",
        "nsfw": "false",
        "moderation.model": "m",
        "moderation.FACE_FEMALE": "0.812",
        "moderation.FEET_EXPOSED": "0.300",
        "ocr_text": "hello",
        "language": "en",
        "language_score": "1.000",
    }


# --- payloads ---------------------------------------------------------------------------


def test_results_round_trip_through_temporals_converter() -> None:
    converter = DataConverter.default.payload_converter
    values: list[Any] = [
        Validation(False, "image/png", RejectionReason.CORRUPT, "bomb", 1, 2, None),
        Metadata("00", 1, "text/plain", exif={"Model": "x"}, public={"exif.Model": "x"}),
        Analysis([ModerationLabel("FACE_MALE", 0.5)], False, "t", "en", 0.9, "m"),
        ThumbnailSet(),
    ]
    for value in values:
        (decoded,) = converter.from_payloads(converter.to_payloads([value]), [type(value)])
        assert decoded == value
    assert isinstance(
        converter.from_payloads(converter.to_payloads([values[0]]), [Validation])[0].reason,
        RejectionReason,
    )


def test_ocr_is_attempted_on_text_like_images_and_skipped_on_photos() -> None:
    page = Image.new("RGB", (800, 400), "white")
    ImageDraw.Draw(page).text((40, 150), "Quarterly report", fill="black")
    noise = Image.effect_noise((800, 400), 60).convert("RGB")
    gradient = Image.linear_gradient("L").resize((800, 400)).convert("RGB")

    assert looks_like_text(page, 0.35)
    assert not looks_like_text(noise, 0.35)
    assert not looks_like_text(gradient, 0.35)
    assert looks_like_text(noise, 0.0)  # 0: always OCR


def test_ocr_is_skipped_on_a_blank_image() -> None:
    blank = Image.new("RGB", (800, 600), (40, 120, 200))
    assert not looks_like_text(blank, 0.35)
