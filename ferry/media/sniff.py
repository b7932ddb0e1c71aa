"""Content type from a file's first bytes, never from its name; UTF-8 text checked as it streams."""

from __future__ import annotations

import codecs
import re

from ferry.media.types import TEXT

# How much of the start of a file the sniffing looks at.
SNIFF_BYTES = 4096

_SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"\xff\xd8\xff", "image/jpeg"),
    (0, b"\x89PNG\r\n\x1a\n", "image/png"),
    (0, b"GIF87a", "image/gif"),
    (0, b"GIF89a", "image/gif"),
    (0, b"%PDF-", "application/pdf"),
    (0, b"PK\x03\x04", "application/zip"),
    (0, b"II*\x00", "image/tiff"),
    (0, b"MM\x00*", "image/tiff"),
)

# Text that would render as active content in a browser is not plain text.
_MARKUP = re.compile(rb"^\s*<(\?xml|svg[\s>]|!doctype\s+html|html[\s>]|script[\s>])", re.IGNORECASE)
_MARKUP_TYPES = {b"?xml": "application/xml", b"svg": "image/svg+xml", b"script": "text/html"}
_BINARY = re.compile(rb"[\x00-\x08]")


def sniff_content_type(head: bytes) -> str:
    """The MIME type the leading bytes show, `application/octet-stream` if unknown."""
    for offset, magic, mime in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return mime
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    try:
        # Not final: a multi-byte character cut at the end of the sample is still text.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "application/octet-stream"
    if any(byte < 9 for byte in head):
        return "application/octet-stream"
    return "text/plain"


def sniff_media_type(head: bytes) -> str:
    """`sniff_content_type`, with markup (SVG, HTML, XML) told apart from plain text."""
    content_type = sniff_content_type(head)
    if content_type == TEXT:
        match = _MARKUP.match(head.removeprefix(codecs.BOM_UTF8))
        if match:
            tag = match.group(1).lower().split()[0].rstrip(b">")
            return _MARKUP_TYPES.get(tag, "text/html")
    return content_type


class TextCheck:
    """Whether a stream fed chunk by chunk is UTF-8 text without control characters.

    `error` is None while it is; the first problem found is kept and ends the check.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self.error: str | None = None

    def feed(self, chunk: bytes, position: int) -> None:
        """Check the next chunk; `position` (bytes read so far) goes into the error."""
        if self.error is not None:
            return
        if _BINARY.search(chunk):
            self.error = f"control characters in text near byte {position}"
            return
        try:
            self._decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            self.error = f"not UTF-8 text near byte {position}: {exc}"

    def finish(self) -> None:
        """The stream ended: a character cut at the end is an error too."""
        if self.error is not None:
            return
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            self.error = f"text ends inside a UTF-8 character: {exc}"
