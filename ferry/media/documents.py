"""PDFs (page count and text, read by seeking, never whole) and excerpts of text."""

from __future__ import annotations

import codecs
from contextlib import suppress
from pathlib import Path
from typing import BinaryIO

from pypdf import PdfReader

from ferry.media.errors import CorruptContent
from ferry.media.limits import MediaLimits


def _pdf_reader(handle: BinaryIO) -> PdfReader:
    # Given a path, pypdf reads the whole file into memory; given a file, it seeks.
    try:
        reader = PdfReader(handle)
        if reader.is_encrypted:
            with suppress(Exception):
                reader.decrypt("")
        return reader
    except Exception as exc:
        raise CorruptContent(f"not a readable PDF: {exc}") from exc


def _pdf_pages(reader: PdfReader) -> int | None:
    try:
        return len(reader.pages)
    except Exception as exc:
        if reader.is_encrypted:
            return None  # encrypted with a password: intact, just closed to us
        raise CorruptContent(f"PDF page tree is damaged: {exc}") from exc


def read_pdf(path: Path, limits: MediaLimits, text: bool = True) -> tuple[int | None, str | None]:
    """Page count and (when `text`) an excerpt of a PDF file; `CorruptContent` if unreadable."""
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
    return excerpt("\n".join(parts), limits.text_excerpt_chars)


def excerpt(text: str, limit: int) -> str | None:
    """At most `limit` characters of `text`, stripped and without NULs; None if empty."""
    text = text.replace("\x00", "").strip()
    return text[:limit] or None


def text_excerpt(head: bytes, limits: MediaLimits) -> str | None:
    """An excerpt of a text file from its first bytes (undecodable bytes replaced)."""
    text = codecs.getincrementaldecoder("utf-8")(errors="replace").decode(head)
    return excerpt(text.removeprefix("\ufeff"), limits.text_excerpt_chars)
