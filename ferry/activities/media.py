"""Media activities: validate an upload, make thumbnails, extract metadata, analyse content.

Files are streamed from storage; when a library needs a file (Pillow, pypdf,
tesseract) the object is spooled to a temporary file that is deleted after the
call. No image is decoded before its declared dimensions passed the pixel limit,
and CPU-heavy work runs in a thread so the worker's event loop stays responsive.
"""

from __future__ import annotations

import asyncio
import codecs
import hashlib
import importlib.util
import io
import os
import re
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from enum import Enum
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import pytesseract
from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException
from PIL import Image, ImageCms, ImageOps
from pypdf import PdfReader
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ferry.activities.sniff import sniff_content_type
from ferry.activities.storage import provider_named, refuse_outside
from ferry.contracts.enums import RejectionReason
from ferry.contracts.errors import CORRUPT_FILE, INVALID_KEY, MODEL_MISSING, OBJECT_NOT_FOUND
from ferry.contracts.layout import DEFAULT_PLACES, Places
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.storage import ObjectNotFound, StorageProvider

T = TypeVar("T")

# The accepted content types and the file name extensions each may carry.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt",),
}
_TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# Declared types that say nothing about the content: what S3 notifications (which carry
# no type), clients that do not know, and moto's default claim. Such an upload is judged
# by its bytes and its name alone.
UNDECLARED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
IMAGE_TYPES = frozenset(_PILLOW_FORMATS)
PDF = "application/pdf"
TEXT = "text/plain"

# Text that would render as active content in a browser is not plain text.
_MARKUP = re.compile(rb"^\s*<(\?xml|svg[\s>]|!doctype\s+html|html[\s>]|script[\s>])", re.IGNORECASE)
_MARKUP_TYPES = {b"?xml": "application/xml", b"svg": "image/svg+xml", b"script": "text/html"}
_BINARY = re.compile(rb"[\x00-\x08]")

SNIFF_BYTES = 4096

# nudenet's classes that count towards `nsfw`. Covered parts, faces, feet, armpits,
# bellies and male chests are reported as labels but never make a file nsfw.
EXPOSED_CLASSES = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)

# EXIF kept in metadata: an allow-list, so GPS (IFD 34853), serial numbers, owner
# names, maker notes, free-text comments and time zone offsets (a coarse location)
# never leave the file.
_PUBLIC_IFD0 = {
    271: "Make",
    272: "Model",
    274: "Orientation",
    282: "XResolution",
    283: "YResolution",
    296: "ResolutionUnit",
    305: "Software",
    306: "DateTime",
}
_PUBLIC_EXIF_IFD = {
    33434: "ExposureTime",
    33437: "FNumber",
    34850: "ExposureProgram",
    34855: "ISOSpeedRatings",
    36867: "DateTimeOriginal",
    36868: "DateTimeDigitized",
    37383: "MeteringMode",
    37385: "Flash",
    37386: "FocalLength",
    40961: "ColorSpace",
    40962: "PixelXDimension",
    40963: "PixelYDimension",
    41986: "ExposureMode",
    41987: "WhiteBalance",
    41989: "FocalLengthIn35mmFilm",
    42035: "LensMake",
    42036: "LensModel",
}
_EXIF_IFD_POINTER = 0x8769
_ORIENTATION = 274

# langdetect keeps one global factory; its lazy loading is not thread-safe.
_LANGUAGE_LOCK = threading.Lock()


@dataclass(frozen=True)
class MediaLimits:
    """Limits and tuning of the media activities, set once in the worker."""

    max_pixels: int = 50_000_000
    # Pillow reads WebP files whole and any image file is far smaller than this
    # when honest; larger ones are `too_large` before any parsing.
    max_image_bytes: int = 128 * 1024 * 1024
    text_excerpt_chars: int = 2000
    pdf_text_max_pages: int = 50
    ocr_text_chars: int = 2000
    ocr_language: str = "eng"
    ocr_max_side: int = 2000
    # OCR (the costliest step) runs only on images that look like text on a
    # background: at least this share of pixels within one narrow band of
    # brightness (pages, screenshots, slides, signs). Photos and noise are
    # skipped. 0 runs OCR on every image.
    ocr_background_share: float = 0.35
    ocr_timeout_seconds: float = 30.0
    moderation_max_side: int = 640
    # A detection of an `EXPOSED_CLASSES` label at or above this score makes `nsfw` true.
    nsfw_threshold: float = 0.5
    # Fewer letters than this and the language is not guessed (langdetect is noisy).
    min_language_letters: int = 20
    jpeg_quality: int = 85
    webp_quality: int = 80
    heartbeat_seconds: float = 5.0
    temp_dir: str | None = None


DEFAULT_LIMITS = MediaLimits()


@dataclass
class ValidationRequest:
    """An upload to check before anything else touches it."""

    source: StorageRef
    filename: str
    declared_content_type: str
    size_bytes: int
    max_file_bytes: int
    # Whose upload this is: the object must lie under its upload prefix (`refuse_outside`).
    tenant_id: str | None = None
    file_id: str | None = None


@dataclass
class Validation:
    """The verdict: `ok`, or the `file.rejected` reason and a readable detail.

    `content_type` is the sniffed type, or the declared one when the upload was
    rejected (`too_large`) before its bytes were read.
    """

    ok: bool
    content_type: str
    reason: RejectionReason | None = None
    detail: str = ""
    width: int | None = None
    height: int | None = None
    pages: int | None = None


@dataclass
class ThumbnailRequest:
    """Thumbnails of `source` go to `files/{file_id}/thumbnails/` in `bucket`."""

    source: StorageRef
    bucket: str
    file_id: str
    # The destination provider; the source's when None.
    provider: str | None = None
    # Pillow's JPEG draft mode (decode at a reduced scale); off only to measure it.
    draft: bool = True
    # The tenant whose places the source and the thumbnails must be (`refuse_outside`).
    tenant_id: str | None = None


@dataclass
class ThumbnailSet:
    """The thumbnails written; empty for anything that is not an image."""

    thumbnails: list[Thumbnail] = field(default_factory=list)


@dataclass
class MetadataRequest:
    source: StorageRef
    tenant_id: str | None = None


@dataclass
class Metadata:
    """What the file says about itself, with GPS and other private EXIF left out."""

    sha256: str
    size_bytes: int
    content_type: str
    width: int | None = None
    height: int | None = None
    pages: int | None = None
    text_excerpt: str | None = None
    exif: dict[str, str] = field(default_factory=dict)
    # Flat, for the `metadata` map of `file.processed`.
    public: dict[str, str] = field(default_factory=dict)


@dataclass
class AnalysisRequest:
    source: StorageRef
    content_type: str
    # Text already extracted (a PDF's or a text file's); read from the file when None.
    text: str | None = None
    tenant_id: str | None = None


@dataclass
class ModerationLabel:
    name: str
    score: float


@dataclass
class Analysis:
    """Moderation labels, OCR text and language; `as_map` is the event's `analysis`."""

    labels: list[ModerationLabel] = field(default_factory=list)
    nsfw: bool = False
    ocr_text: str | None = None
    language: str | None = None
    language_score: float | None = None
    moderation_model: str | None = None

    def as_map(self) -> dict[str, str]:
        """A flat map<string> for `file.processed`."""
        result = {"status": "ok", "nsfw": str(self.nsfw).lower()}
        if self.moderation_model:
            result["moderation.model"] = self.moderation_model
        for label in self.labels:
            result[f"moderation.{label.name}"] = f"{label.score:.3f}"
        if self.ocr_text:
            result["ocr_text"] = self.ocr_text
        if self.language:
            result["language"] = self.language
        if self.language_score is not None:
            result["language_score"] = f"{self.language_score:.3f}"
        return result


class _Corrupt(Exception):
    """The bytes cannot be read as the type they claim."""


class _TooLarge(Exception):
    """The object grew past the limit while it was read."""


class _Plan(Enum):
    STOP = "stop"  # the first bytes are enough
    STREAM = "stream"  # read everything, keep nothing
    SPOOL = "spool"  # read everything into a temporary file


@dataclass
class _Fetched:
    content_type: str
    head: bytes
    size: int
    sha256: str | None = None
    path: Path | None = None
    text_error: str | None = None


def _heartbeat(*details: Any) -> None:
    if activity.in_activity():
        activity.heartbeat(*details)


def _not_found(ref: StorageRef) -> ApplicationError:
    return OBJECT_NOT_FOUND(f"object {ref.bucket}/{ref.key} not found on {ref.provider}")


def _corrupt_error(ref: StorageRef, exc: _Corrupt) -> ApplicationError:
    return CORRUPT_FILE(f"{ref.bucket}/{ref.key}: {exc}")


def sniff_media_type(head: bytes) -> str:
    """`sniff_content_type`, with markup (SVG, HTML, XML) told apart from plain text."""
    content_type = sniff_content_type(head)
    if content_type == TEXT:
        match = _MARKUP.match(head.removeprefix(codecs.BOM_UTF8))
        if match:
            tag = match.group(1).lower().split()[0].rstrip(b">")
            return _MARKUP_TYPES.get(tag, "text/html")
    return content_type


def _normalise_type(content_type: str) -> str:
    base = content_type.split(";", 1)[0].strip().lower()
    return _TYPE_ALIASES.get(base, base)


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    _, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and ext else ""


def _type_mismatch(sniffed: str, declared: str, filename: str) -> str | None:
    """Why the content, the declared type and the name do not agree; None if they do."""
    if sniffed not in ALLOWED_TYPES:
        return f"content is {sniffed}, which is not accepted"
    declared = _normalise_type(declared)
    if declared not in UNDECLARED_TYPES and declared != sniffed:
        return f"declared as {declared} but the content is {sniffed}"
    ext = _extension(filename)
    if ext not in ALLOWED_TYPES[sniffed]:
        return f"name ends in {ext or 'no extension'!r} but the content is {sniffed}"
    return None


def _fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled to fit a `box`-pixel square, never upscaled."""
    width, height = size
    if max(width, height) <= box:
        return width, height
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _check_pixels(size: tuple[int, int], limits: MediaLimits) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise _Corrupt(f"image declares {width}x{height} pixels")
    # Pillow's own limit (a warning above it, an error above twice it) is read from a
    # module global; rather than changing it for everyone, apply the stricter of both.
    limit = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise _Corrupt(
            f"decompression bomb: {width}x{height} is {width * height} pixels, "
            f"over the limit of {limit}"
        )


def _open_image(path: Path, content_type: str, limits: MediaLimits) -> Image.Image:
    """The image with only its header read, after the pixel limit check."""
    try:
        image = Image.open(path, formats=[_PILLOW_FORMATS[content_type]])
    except Image.DecompressionBombError as exc:
        raise _Corrupt(f"decompression bomb: {exc}") from exc
    except Exception as exc:
        raise _Corrupt(f"not a readable {content_type}: {exc}") from exc
    try:
        _check_pixels(image.size, limits)
    except _Corrupt:
        image.close()
        raise
    return image


def _exif(image: Image.Image) -> Image.Exif:
    # A PNG's eXIf chunk may follow the pixel data; looking for it would decode them.
    if image.format == "PNG" and "exif" not in image.info:
        return Image.Exif()
    try:
        return image.getexif()
    except Exception:  # broken EXIF says nothing about the pixels
        return Image.Exif()


def _display_size(image: Image.Image) -> tuple[int, int]:
    """Width and height as shown, after the EXIF orientation."""
    width, height = image.size
    return (height, width) if _exif(image).get(_ORIENTATION) in (5, 6, 7, 8) else (width, height)


def _validate_image(path: Path, content_type: str, limits: MediaLimits) -> tuple[int, int]:
    """Display size of a well-formed image; `_Corrupt` otherwise."""
    with _open_image(path, content_type, limits) as image:
        size = _display_size(image)
        try:
            image.verify()
        except Exception as exc:
            raise _Corrupt(f"image fails verification: {exc}") from exc
    # verify() checks structure only (and nothing at all for JPEG): decode the
    # first frame to find truncated or damaged data, JPEG at 1/8 scale to stay cheap.
    with _open_image(path, content_type, limits) as image:
        if image.format == "JPEG":
            width, height = image.size
            image.draft(None, (max(1, width // 8), max(1, height // 8)))
        try:
            image.load()
        except Exception as exc:
            raise _Corrupt(f"image data is damaged: {exc}") from exc
    return size


def _pdf_reader(handle: BinaryIO) -> PdfReader:
    # Given a path, pypdf reads the whole file into memory; given a file, it seeks.
    try:
        reader = PdfReader(handle)
        if reader.is_encrypted:
            with suppress(Exception):
                reader.decrypt("")
        return reader
    except Exception as exc:
        raise _Corrupt(f"not a readable PDF: {exc}") from exc


def _pdf_pages(reader: PdfReader) -> int | None:
    try:
        return len(reader.pages)
    except Exception as exc:
        if reader.is_encrypted:
            return None  # encrypted with a password: intact, just closed to us
        raise _Corrupt(f"PDF page tree is damaged: {exc}") from exc


def read_pdf(path: Path, limits: MediaLimits, text: bool = True) -> tuple[int | None, str | None]:
    """Page count and (when `text`) an excerpt of a PDF file; `_Corrupt` if unreadable."""
    with path.open("rb") as handle:
        reader = _pdf_reader(handle)
        pages = _pdf_pages(reader)
        return pages, _pdf_text(reader, limits) if text else None


def _pdf_text(reader: PdfReader, limits: MediaLimits) -> str | None:
    parts: list[str] = []
    length = 0
    try:
        for page in reader.pages[: limits.pdf_text_max_pages]:
            text = page.extract_text() or ""
            parts.append(text)
            length += len(text)
            if length >= limits.text_excerpt_chars:
                break
    except Exception:
        pass  # text is a bonus; a page pypdf cannot read ends the excerpt
    return _excerpt("\n".join(parts), limits.text_excerpt_chars)


def _excerpt(text: str, limit: int) -> str | None:
    text = text.replace("\x00", "").strip()
    return text[:limit] or None


def _text_excerpt(head: bytes, limits: MediaLimits) -> str | None:
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head)
    return _excerpt(text.removeprefix("\ufeff"), limits.text_excerpt_chars)


def _exif_value(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "ignore")
    elif isinstance(value, tuple):
        value = ",".join(filter(None, (_exif_value(item) for item in value)))
    elif not isinstance(value, int | str):
        try:
            number = float(value)
        except (TypeError, ValueError, ZeroDivisionError):
            return None
        value = "" if number != number else f"{number:g}"
    text = re.sub(r"[\x00-\x1f\x7f]", "", str(value)).strip()
    return text[:128] or None


def public_exif(exif: Image.Exif) -> dict[str, str]:
    """The allow-listed EXIF fields as strings; nothing from the GPS IFD, ever."""
    result: dict[str, str] = {}
    tables: list[tuple[Mapping[int, Any], dict[int, str]]] = [(exif, _PUBLIC_IFD0)]
    with suppress(Exception):
        tables.append((exif.get_ifd(_EXIF_IFD_POINTER), _PUBLIC_EXIF_IFD))
    for values, names in tables:
        for tag, name in names.items():
            if tag in values and (text := _exif_value(values[tag])) is not None:
                result[name] = text
    return {key: value for key, value in result.items() if "gps" not in key.lower()}


def _image_metadata(
    path: Path, content_type: str, limits: MediaLimits
) -> tuple[int, int, dict[str, str]]:
    with _open_image(path, content_type, limits) as image:
        width, height = _display_size(image)
        return width, height, public_exif(_exif(image))


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image


def _to_srgb(image: Image.Image) -> Image.Image:
    """RGB or RGBA in sRGB: an embedded ICC profile is applied, then dropped."""
    image = _to_8bit(image)
    alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    mode = "RGBA" if alpha else "RGB"
    icc = image.info.get("icc_profile")
    if icc and image.mode in ("RGB", "RGBA", "L", "CMYK"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(
                image, source, ImageCms.createProfile("sRGB"), outputMode=mode
            )
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # an unusable profile: fall back to Pillow's plain conversion
    return image.convert(mode)


def _encode(image: Image.Image, fmt: str, limits: MediaLimits) -> bytes:
    if fmt == "JPEG" and image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        image = background
    # No EXIF, ICC, XMP or comments: metadata stays with the original only.
    image.info.clear()
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=limits.jpeg_quality)
    else:
        image.save(buffer, "WEBP", quality=limits.webp_quality, method=4)
    return buffer.getvalue()


# (name, longest side, Pillow format, content type), largest first.
THUMBNAILS: tuple[tuple[str, int, str, str], ...] = (
    ("thumb-1024.jpg", 1024, "JPEG", "image/jpeg"),
    ("thumb-256.webp", 256, "WEBP", "image/webp"),
)


def render_thumbnails(
    path: Path, content_type: str, limits: MediaLimits, draft: bool = True
) -> list[tuple[str, str, bytes, int, int]]:
    """(name, content type, bytes, width, height) of each thumbnail of an image file."""
    largest = THUMBNAILS[0][1]
    with _open_image(path, content_type, limits) as image:
        if draft and image.format == "JPEG":
            # Decode at the smallest DCT scale that still covers the largest thumbnail.
            image.draft("RGB", _fit(image.size, largest))
        try:
            image.load()
            oriented = ImageOps.exif_transpose(image) or image
            current = _to_srgb(oriented)
        except Exception as exc:
            raise _Corrupt(f"image data is damaged: {exc}") from exc
    rendered = []
    for name, side, fmt, mime in THUMBNAILS:
        size = _fit(current.size, side)
        if size != current.size:
            current = current.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        rendered.append((name, mime, _encode(current, fmt, limits), *current.size))
    return rendered


def _analysis_images(
    path: Path, content_type: str, limits: MediaLimits
) -> tuple[Image.Image, Image.Image]:
    """An upright RGB image for moderation and a greyscale one for OCR, both bounded."""
    with _open_image(path, content_type, limits) as image:
        if image.format == "JPEG":
            image.draft("RGB", _fit(image.size, limits.ocr_max_side))
        try:
            image.load()
            upright = _to_srgb(ImageOps.exif_transpose(image) or image)
        except Exception as exc:
            raise _Corrupt(f"image data is damaged: {exc}") from exc
    if upright.mode == "RGBA":
        flat = Image.new("RGB", upright.size, (255, 255, 255))
        flat.paste(upright, mask=upright.getchannel("A"))
        upright = flat
    ocr = upright.convert("L")
    ocr.thumbnail((limits.ocr_max_side, limits.ocr_max_side), Image.Resampling.LANCZOS)
    moderation = upright.copy()
    moderation.thumbnail(
        (limits.moderation_max_side, limits.moderation_max_side), Image.Resampling.LANCZOS
    )
    return moderation, ocr


# Fewer samples than this off the background: nothing is written there.
MIN_INK_SAMPLES = 8


def looks_like_text(image: Image.Image, background_share: float) -> bool:
    """A cheap guess: does one band of brightness cover `background_share` of the image,
    with something (ink) on it? A blank image is not worth an OCR run."""
    if background_share <= 0:
        return True
    # Point sampling: averaging would smooth noise into a false "background".
    sample = image.convert("L").resize((256, 256), Image.Resampling.NEAREST)
    histogram = sample.histogram()
    total = sum(histogram)
    window = max(sum(histogram[start : start + 16]) for start in range(0, 256 - 15))
    return total > 0 and window / total >= background_share and total - window >= MIN_INK_SAMPLES


def _ocr(image: Image.Image, limits: MediaLimits) -> str | None:
    if not looks_like_text(image, limits.ocr_background_share):
        return None
    try:
        text = pytesseract.image_to_string(
            image, lang=limits.ocr_language, timeout=limits.ocr_timeout_seconds
        )
    except RuntimeError as exc:  # pytesseract's timeout
        if "timeout" in str(exc).lower():
            return None
        raise
    lines = (" ".join(line.split()) for line in str(text).splitlines())
    return _excerpt("\n".join(line for line in lines if line), limits.ocr_text_chars)


def detect_language(text: str, min_letters: int) -> tuple[str | None, float | None]:
    """The most likely language (ISO 639-1) and its probability; None for too little text."""
    if sum(char.isalpha() for char in text) < min_letters:
        return None, None
    with _LANGUAGE_LOCK:
        DetectorFactory.seed = 0  # langdetect samples at random; seeded, it is repeatable
        try:
            languages = detect_langs(text)
        except LangDetectException:
            return None, None
    if not languages:
        return None, None
    return str(languages[0].lang), round(float(languages[0].prob), 4)


class MediaActivities:
    """Validation, thumbnails, metadata and AI analysis over the storage providers."""

    def __init__(
        self,
        providers: Mapping[str, StorageProvider],
        limits: MediaLimits = DEFAULT_LIMITS,
        places: Places = DEFAULT_PLACES,
    ) -> None:
        self._providers = dict(providers)
        self._limits = limits
        self._places = places
        self._detector: Any = None
        self._model_name: str | None = None
        self._detector_lock = threading.Lock()

    @property
    def moderation_model_path(self) -> Path:
        """The ONNX model that ships inside the nudenet package (never downloaded)."""
        spec = importlib.util.find_spec("nudenet")
        if spec is None or spec.origin is None:
            raise MODEL_MISSING("nudenet is not installed")
        return Path(spec.origin).resolve().parent / "320n.onnx"

    @property
    def moderation_model_loaded(self) -> bool:
        return self._detector is not None

    def _provider(self, name: str) -> StorageProvider:
        return provider_named(self._providers, name)

    def _nude_detector(self) -> Any:
        """The NudeDetector, loaded once per instance on first use (thread-safe)."""
        if self._detector is None:
            with self._detector_lock:
                if self._detector is None:
                    from nudenet import NudeDetector  # cv2 and onnxruntime: load on demand

                    path = self.moderation_model_path
                    if not path.is_file():
                        raise MODEL_MISSING(f"nudenet model missing at {path}")
                    self._model_name = f"nudenet-{package_version('nudenet')}/{path.name}"
                    detector = NudeDetector(model_path=str(path))
                    detector.onnx_session = _moderation_session(path)
                    self._detector = detector
        return self._detector

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker thread, heartbeating while it runs."""
        task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._limits.heartbeat_seconds)
                if done:
                    return task.result()
                _heartbeat("working")
        except asyncio.CancelledError:
            # The thread cannot be stopped; let it finish before its files are deleted.
            with suppress(BaseException):
                await task
            raise

    @asynccontextmanager
    async def _fetch(
        self,
        ref: StorageRef,
        plan: Callable[[str], _Plan],
        *,
        hash_all: bool = False,
        max_bytes: int | None = None,
    ) -> AsyncIterator[_Fetched]:
        """Stream an object once: sniff it, then per `plan` stop, stream or spool it.

        `hash_all` reads to the end for the SHA-256; text is checked for UTF-8 as it
        passes. The temporary file, if any, is deleted when the context ends.
        """
        provider = self._provider(ref.provider)
        head_bytes = max(SNIFF_BYTES, self._limits.text_excerpt_chars * 4)
        digest = hashlib.sha256() if hash_all else None
        decoder = codecs.getincrementaldecoder("utf-8")()
        fetched = _Fetched(content_type="", head=b"", size=0)
        handle: io.BufferedWriter | None = None
        decided: _Plan | None = None
        pending: list[bytes] = []
        stream = provider.read(ref.bucket, ref.key)

        async def take(chunk: bytes) -> None:
            if handle is not None:
                await asyncio.to_thread(handle.write, chunk)
            if fetched.content_type != TEXT or fetched.text_error is not None:
                return
            if _BINARY.search(chunk):
                fetched.text_error = f"control characters in text near byte {fetched.size}"
                return
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                fetched.text_error = f"not UTF-8 text near byte {fetched.size}: {exc}"

        try:
            async for chunk in stream:
                fetched.size += len(chunk)
                if max_bytes is not None and fetched.size > max_bytes:
                    raise _TooLarge(f"object is over {max_bytes} bytes")
                if digest is not None:
                    digest.update(chunk)
                if len(fetched.head) < head_bytes:
                    fetched.head += chunk[: head_bytes - len(fetched.head)]
                _heartbeat(fetched.size)
                if decided is None:
                    pending.append(chunk)
                    if len(fetched.head) < SNIFF_BYTES:
                        continue
                    fetched.content_type = sniff_media_type(fetched.head[:SNIFF_BYTES])
                    decided = plan(fetched.content_type)
                    if decided is _Plan.SPOOL:
                        handle, fetched.path = await asyncio.to_thread(self._temp_file)
                    for early in pending:
                        await take(early)
                    pending.clear()
                elif decided is not _Plan.STOP or digest is not None:
                    await take(chunk)
                if decided is _Plan.STOP and digest is None and len(fetched.head) >= head_bytes:
                    break
            else:
                if decided is None:  # smaller than the sniffing sample
                    fetched.content_type = sniff_media_type(fetched.head)
                    decided = plan(fetched.content_type)
                    if decided is _Plan.SPOOL:
                        handle, fetched.path = await asyncio.to_thread(self._temp_file)
                    for early in pending:
                        await take(early)
                if fetched.content_type == TEXT and fetched.text_error is None:
                    try:
                        decoder.decode(b"", final=True)
                    except UnicodeDecodeError as exc:
                        fetched.text_error = f"text ends inside a UTF-8 character: {exc}"
            if handle is not None:
                await asyncio.to_thread(handle.close)
            if digest is not None:
                fetched.sha256 = digest.hexdigest()
            yield fetched
        except ObjectNotFound:
            raise _not_found(ref) from None
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with suppress(Exception):
                    await aclose()
            if handle is not None:
                handle.close()
            if fetched.path is not None:
                fetched.path.unlink(missing_ok=True)

    def _temp_file(self) -> tuple[io.BufferedWriter, Path]:
        fd, name = tempfile.mkstemp(prefix="ferry-media-", dir=self._limits.temp_dir)
        return os.fdopen(fd, "wb"), Path(name)

    @activity.defn(name="validate_upload")
    async def validate_upload(self, request: ValidationRequest) -> Validation:
        """Size, type (bytes vs declared type vs extension) and integrity of an upload.

        A rejection is a result, not an error: `ok` is false and `reason` is the
        `file.rejected` reason (`too_large`, `invalid_type` or `corrupt`).
        """
        limits = self._limits
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id, request.file_id)
        sniffed = ""
        declared = _normalise_type(request.declared_content_type)

        def reject(reason: RejectionReason, detail: str, content_type: str = "") -> Validation:
            return Validation(False, content_type or declared, reason, detail)

        if request.size_bytes > request.max_file_bytes:
            return reject(
                RejectionReason.TOO_LARGE,
                f"{request.size_bytes} bytes is over the limit of {request.max_file_bytes}",
            )
        info = await self._provider(ref.provider).head(ref.bucket, ref.key)
        if info is None:
            raise _not_found(ref)
        if info.size > request.max_file_bytes:
            return reject(
                RejectionReason.TOO_LARGE,
                f"the object is {info.size} bytes, over the limit of {request.max_file_bytes}",
            )
        if info.size == 0:
            return reject(RejectionReason.CORRUPT, "the object is empty")

        def plan(content_type: str) -> _Plan:
            if _type_mismatch(content_type, declared, request.filename):
                return _Plan.STOP
            if content_type in IMAGE_TYPES and info.size > limits.max_image_bytes:
                return _Plan.STOP
            return _spool_images_and_pdfs(content_type)

        try:
            async with self._fetch(ref, plan, max_bytes=request.max_file_bytes) as fetched:
                sniffed = fetched.content_type
                mismatch = _type_mismatch(sniffed, declared, request.filename)
                if mismatch:
                    return reject(RejectionReason.INVALID_TYPE, mismatch, sniffed)
                if sniffed in IMAGE_TYPES and fetched.path is None:
                    return reject(
                        RejectionReason.TOO_LARGE,
                        f"images over {limits.max_image_bytes} bytes are not processed",
                        sniffed,
                    )
                if fetched.path is not None and sniffed in IMAGE_TYPES:
                    width, height = await self._in_thread(
                        _validate_image, fetched.path, sniffed, limits
                    )
                    return Validation(True, sniffed, width=width, height=height)
                if fetched.path is not None and sniffed == PDF:
                    pages, _ = await self._in_thread(read_pdf, fetched.path, limits, False)
                    return Validation(True, sniffed, pages=pages)
                if fetched.text_error:
                    return reject(RejectionReason.CORRUPT, fetched.text_error, sniffed)
                return Validation(True, sniffed)
        except _TooLarge as exc:
            return reject(RejectionReason.TOO_LARGE, str(exc))
        except _Corrupt as exc:
            return reject(RejectionReason.CORRUPT, str(exc), sniffed)

    @activity.defn(name="make_thumbnails")
    async def make_thumbnails(self, request: ThumbnailRequest) -> ThumbnailSet:
        """A 256 px WebP and a 1024 px JPEG of an image, upright and without metadata.

        Written to `files/{file_id}/thumbnails/{name}` in the tenant's bucket;
        running it again rewrites the same keys. Not an image: no thumbnails.
        """
        if not request.file_id or "/" in request.file_id or request.file_id in (".", ".."):
            raise INVALID_KEY(f"invalid file id {request.file_id!r}")
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id)
        refuse_outside(
            self._places, request.bucket, f"files/{request.file_id}/thumbnails", request.tenant_id
        )

        def plan(content_type: str) -> _Plan:
            return _Plan.SPOOL if content_type in IMAGE_TYPES else _Plan.STOP

        async with self._fetch(ref, plan) as fetched:
            if fetched.path is None:
                return ThumbnailSet()
            try:
                rendered = await self._in_thread(
                    render_thumbnails,
                    fetched.path,
                    fetched.content_type,
                    self._limits,
                    request.draft,
                )
            except _Corrupt as exc:
                raise _corrupt_error(ref, exc) from exc

        target = self._provider(request.provider or ref.provider)
        thumbnails = []
        for name, content_type, data, width, height in rendered:
            key = f"files/{request.file_id}/thumbnails/{name}"
            await target.write(request.bucket, key, _once(data))
            thumbnails.append(Thumbnail(name, key, width, height, content_type, len(data)))
            _heartbeat(name)
        return ThumbnailSet(thumbnails)

    @activity.defn(name="extract_metadata")
    async def extract_metadata(self, request: MetadataRequest) -> Metadata:
        """SHA-256 (streamed), size, type, dimensions, PDF pages, text and public EXIF."""
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id)
        limits = self._limits

        async with self._fetch(ref, _spool_images_and_pdfs, hash_all=True) as fetched:
            assert fetched.sha256 is not None
            result = Metadata(fetched.sha256, fetched.size, fetched.content_type)
            try:
                if fetched.path is not None and fetched.content_type in IMAGE_TYPES:
                    result.width, result.height, result.exif = await self._in_thread(
                        _image_metadata, fetched.path, fetched.content_type, limits
                    )
                elif fetched.path is not None and fetched.content_type == PDF:
                    result.pages, result.text_excerpt = await self._in_thread(
                        read_pdf, fetched.path, limits
                    )
                elif fetched.content_type == TEXT:
                    result.text_excerpt = _text_excerpt(fetched.head, limits)
            except _Corrupt as exc:
                raise _corrupt_error(ref, exc) from exc
        result.public = _public_metadata(result)
        return result

    @activity.defn(name="analyse_content")
    async def analyse_content(self, request: AnalysisRequest) -> Analysis:
        """Moderation labels (nudenet) and OCR (tesseract) for images; language of any text."""
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id)
        limits = self._limits
        content_type = _normalise_type(request.content_type)
        result = Analysis()
        text = request.text

        def plan(sniffed: str) -> _Plan:
            if sniffed in IMAGE_TYPES or (sniffed == PDF and text is None):
                return _Plan.SPOOL
            return _Plan.STOP

        if content_type in IMAGE_TYPES or (text is None and content_type in (PDF, TEXT)):
            async with self._fetch(ref, plan) as fetched:
                try:
                    if fetched.path is not None and fetched.content_type in IMAGE_TYPES:
                        result = await self._in_thread(
                            self._analyse_image, fetched.path, fetched.content_type
                        )
                    elif fetched.path is not None and fetched.content_type == PDF:
                        _, text = await self._in_thread(read_pdf, fetched.path, limits)
                    elif fetched.content_type == TEXT:
                        text = _text_excerpt(fetched.head, limits)
                except _Corrupt as exc:
                    raise _corrupt_error(ref, exc) from exc
        sample = "\n".join(filter(None, (text, result.ocr_text)))
        if sample:
            result.language, result.language_score = await self._in_thread(
                detect_language, sample, limits.min_language_letters
            )
        return result

    def _analyse_image(self, path: Path, content_type: str) -> Analysis:
        moderation, ocr = _analysis_images(path, content_type, self._limits)
        detector = self._nude_detector()
        # nudenet expects what cv2.imread returns: an HxWx3 uint8 array in BGR order.
        array = np.ascontiguousarray(np.asarray(moderation.convert("RGB"))[:, :, ::-1])
        detections: list[dict[str, Any]] = detector.detect(array)
        scores: dict[str, float] = {}
        for detection in detections:
            name, score = str(detection["class"]), float(detection["score"])
            scores[name] = max(score, scores.get(name, 0.0))
        labels = [
            ModerationLabel(name, round(score, 4))
            for name, score in sorted(scores.items(), key=lambda item: -item[1])
        ]
        nsfw = any(
            label.name in EXPOSED_CLASSES and label.score >= self._limits.nsfw_threshold
            for label in labels
        )
        return Analysis(
            labels=labels,
            nsfw=nsfw,
            ocr_text=_ocr(ocr, self._limits),
            moderation_model=self._model_name,
        )


def _moderation_session(path: Path) -> Any:
    """The model's ONNX Runtime session: one thread per inference, and no spinning.

    Analyses run in parallel in their own threads already; ONNX Runtime's own
    pool would compete with them for the cores, and its threads spin between
    runs, which costs a third more CPU per image for no gain.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def _spool_images_and_pdfs(content_type: str) -> _Plan:
    """Images and PDFs go to disk for Pillow and pypdf; anything else is streamed."""
    return _Plan.SPOOL if content_type in IMAGE_TYPES or content_type == PDF else _Plan.STREAM


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _public_metadata(metadata: Metadata) -> dict[str, str]:
    public: dict[str, str] = {}
    if metadata.width is not None and metadata.height is not None:
        public["width"], public["height"] = str(metadata.width), str(metadata.height)
    if metadata.pages is not None:
        public["pages"] = str(metadata.pages)
    if metadata.text_excerpt:
        public["text_excerpt"] = metadata.text_excerpt
    for name, value in metadata.exif.items():
        public[f"exif.{name}"] = value
    return {key: value for key, value in public.items() if "gps" not in key.lower()}
