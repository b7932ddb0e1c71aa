"""Images: opened within a pixel limit, validated, converted to sRGB and made into thumbnails.

No image is decoded before its declared dimensions passed the pixel limit.
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageCms, ImageOps

from ferry.media.errors import CorruptContent
from ferry.media.exif import display_size, public_exif, read_exif
from ferry.media.limits import MediaLimits
from ferry.media.types import PILLOW_FORMATS

# (name, longest side, Pillow format, content type, filter, reducing gap), largest
# first. Filters and gaps chosen by measurement (a 1600x1200 photo; PSNR against
# Lanczos): the 1024 px one from the decoded image bilinear, 52 dB for about half of
# bicubic's CPU (18 against 39 ms); the 256 px one from the 1024 px one bicubic after a
# box reduction by 2 (Pillow's own `thumbnail`), 51 dB, 6 against 10 ms with a gap of 3.
THUMBNAILS: tuple[tuple[str, int, str, str, Image.Resampling, float], ...] = (
    ("thumb-1024.jpg", 1024, "JPEG", "image/jpeg", Image.Resampling.BILINEAR, 2.0),
    ("thumb-256.webp", 256, "WEBP", "image/webp", Image.Resampling.BICUBIC, 2.0),
)


def fit(size: tuple[int, int], box: int) -> tuple[int, int]:
    """`size` scaled to fit a `box`-pixel square, never upscaled."""
    width, height = size
    if max(width, height) <= box:
        return width, height
    scale = box / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_pixels(size: tuple[int, int], limits: MediaLimits) -> None:
    """`CorruptContent` for an empty image or one over the pixel limit (a decompression bomb)."""
    width, height = size
    if width <= 0 or height <= 0:
        raise CorruptContent(f"image declares {width}x{height} pixels")
    # Pillow's own limit (a warning above it, an error above twice it) is read from a
    # module global; rather than changing it for everyone, apply the stricter of both.
    limit = limits.max_pixels
    if Image.MAX_IMAGE_PIXELS:
        limit = min(limit, Image.MAX_IMAGE_PIXELS)
    if width * height > limit:
        raise CorruptContent(
            f"decompression bomb: {width}x{height} is {width * height} pixels, "
            f"over the limit of {limit}"
        )


def open_image(path: Path, content_type: str, limits: MediaLimits) -> Image.Image:
    """The image with only its header read, after the pixel limit check."""
    try:
        image = Image.open(path, formats=[PILLOW_FORMATS[content_type]])
    except Image.DecompressionBombError as exc:
        raise CorruptContent(f"decompression bomb: {exc}") from exc
    except Exception as exc:
        raise CorruptContent(f"not a readable {content_type}: {exc}") from exc
    try:
        check_pixels(image.size, limits)
    except CorruptContent:
        image.close()
        raise
    return image


def validate_image(path: Path, content_type: str, limits: MediaLimits) -> tuple[int, int]:
    """Display size of a well-formed image; `CorruptContent` otherwise."""
    size = _verified(path, content_type, limits)
    # verify() checks structure only (and nothing at all for JPEG): decode the
    # first frame to find truncated or damaged data, JPEG at 1/8 scale to stay cheap.
    with open_image(path, content_type, limits) as image:
        if image.format == "JPEG":
            width, height = image.size
            image.draft(None, (max(1, width // 8), max(1, height // 8)))
        try:
            image.load()
        except Exception as exc:
            raise CorruptContent(f"image data is damaged: {exc}") from exc
    return size


def validate_and_decode(
    path: Path, content_type: str, limits: MediaLimits
) -> tuple[tuple[int, int], Image.Image | None]:
    """`validate_image`'s display size, with the decode that checks the data kept for the
    steps after it: the image upright in sRGB, at the size `decode_upright` gives (one
    decode serves the thumbnails and the analysis). None instead of the image when
    turning it upright or into sRGB failed (the steps after it then decode it themselves,
    and fail as they would have)."""
    size = _verified(path, content_type, limits)
    image = _loaded(path, content_type, limits, shared_decode_side(limits))
    try:
        return size, _upright(image)
    except Exception:
        return size, None


def _verified(path: Path, content_type: str, limits: MediaLimits) -> tuple[int, int]:
    """The display size of an image whose structure `Image.verify` passes."""
    with open_image(path, content_type, limits) as image:
        size = display_size(image)
        try:
            image.verify()
        except Exception as exc:
            raise CorruptContent(f"image fails verification: {exc}") from exc
    return size


def shared_decode_side(limits: MediaLimits) -> int:
    """The longest side one decode must cover for every step after the validation: the
    largest thumbnail's, and the OCR's."""
    return max(THUMBNAILS[0][1], limits.ocr_max_side)


def _draft(image: Image.Image, side: int) -> None:
    """A JPEG decoded at the smallest DCT scale that still covers `side` (others whole)."""
    if image.format == "JPEG":
        image.draft("RGB", fit(image.size, side))


def decode_upright(
    path: Path, content_type: str, limits: MediaLimits, side: int, draft: bool = True
) -> Image.Image:
    """The image upright (its EXIF orientation applied) in sRGB, a JPEG decoded at the
    smallest scale covering `side` (unless not `draft`)."""
    image = _loaded(path, content_type, limits, side, draft)
    try:
        return _upright(image)
    except Exception as exc:
        raise CorruptContent(f"image data is damaged: {exc}") from exc


def _loaded(
    path: Path, content_type: str, limits: MediaLimits, side: int, draft: bool = True
) -> Image.Image:
    """The image's first frame decoded, a JPEG at the smallest scale covering `side`
    (unless not `draft`); `CorruptContent` if its data is damaged."""
    with open_image(path, content_type, limits) as image:
        if draft:
            _draft(image, side)
        try:
            image.load()
        except Exception as exc:
            raise CorruptContent(f"image data is damaged: {exc}") from exc
        return image


def _upright(image: Image.Image) -> Image.Image:
    """A decoded image with its EXIF orientation applied (in place: a copy of 5 MB
    saved), in sRGB."""
    ImageOps.exif_transpose(image, in_place=True)
    return to_srgb(image)


def image_metadata(
    path: Path, content_type: str, limits: MediaLimits
) -> tuple[int, int, dict[str, str]]:
    """Display width and height and the public EXIF of an image, from its header only."""
    with open_image(path, content_type, limits) as image:
        width, height = display_size(image)
        return width, height, public_exif(read_exif(image))


def _to_8bit(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return image.convert("I").point(lambda value: value / 256).convert("L")
    return image


def to_srgb(image: Image.Image) -> Image.Image:
    """RGB or RGBA in sRGB: an embedded ICC profile is applied, then dropped. An image in
    that mode without a profile is returned itself, not copied."""
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
    return image if image.mode == mode else image.convert(mode)


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
        image.save(buffer, "WEBP", quality=limits.webp_quality, method=limits.webp_method)
    return buffer.getvalue()


def render_thumbnails(
    path: Path, content_type: str, limits: MediaLimits, draft: bool = True
) -> list[tuple[str, str, bytes, int, int]]:
    """(name, content type, bytes, width, height) of each thumbnail of an image file."""
    return thumbnails_of(
        decode_upright(path, content_type, limits, THUMBNAILS[0][1], draft), limits
    )


def thumbnails_of(
    upright: Image.Image, limits: MediaLimits
) -> list[tuple[str, str, bytes, int, int]]:
    """`render_thumbnails` of an image already decoded upright in sRGB (its `info` is
    cleared: metadata stays with the original only)."""
    rendered = []
    current = upright
    for name, side, fmt, mime, resample, gap in THUMBNAILS:
        size = fit(current.size, side)
        if size != current.size:
            current = current.resize(size, resample, reducing_gap=gap)
        rendered.append((name, mime, _encode(current, fmt, limits), *current.size))
    return rendered
