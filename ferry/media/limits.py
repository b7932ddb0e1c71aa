"""The limits and tuning of the media work, set once in the worker."""

from __future__ import annotations

from dataclasses import dataclass


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
    # The moderation model's own input size (`analysis.INFERENCE_RESOLUTION`): nudenet
    # scales anything larger down to it, so a larger image is only more work.
    moderation_max_side: int = 320
    # A detection of an `EXPOSED_CLASSES` label at or above this score makes `nsfw` true.
    nsfw_threshold: float = 0.5
    # Fewer letters than this and the language is not guessed (langdetect is noisy).
    min_language_letters: int = 20
    jpeg_quality: int = 85
    webp_quality: int = 80
    # libwebp's effort (0-6): 2 took a third of 4's CPU on a 256 px thumbnail; its files
    # were 4% smaller for `bench/upload.py`'s photos, about 30 bytes larger for its charts.
    webp_method: int = 2
    temp_dir: str | None = None


DEFAULT_LIMITS = MediaLimits()
