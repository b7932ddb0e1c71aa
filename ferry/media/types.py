"""The accepted content types, their names and extensions, and whether an upload agrees."""

from __future__ import annotations

# The accepted content types and the file name extensions each may carry.
ALLOWED_TYPES: dict[str, tuple[str, ...]] = {
    "image/jpeg": (".jpg", ".jpeg"),
    "image/png": (".png",),
    "image/gif": (".gif",),
    "image/webp": (".webp",),
    "application/pdf": (".pdf",),
    "text/plain": (".txt",),
}
TYPE_ALIASES = {"image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/x-png": "image/png"}
# Declared types that say nothing about the content: what S3 notifications (which carry
# no type), clients that do not know, and moto's default claim. Such an upload is judged
# by its bytes and its name alone.
UNDECLARED_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
PILLOW_FORMATS = {
    "image/jpeg": "JPEG",
    "image/png": "PNG",
    "image/gif": "GIF",
    "image/webp": "WEBP",
}
IMAGE_TYPES = frozenset(PILLOW_FORMATS)
PDF = "application/pdf"
TEXT = "text/plain"


def normalise_type(content_type: str) -> str:
    """The bare, lower-case MIME type, with the usual aliases resolved."""
    base = content_type.split(";", 1)[0].strip().lower()
    return TYPE_ALIASES.get(base, base)


def _extension(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    _, dot, ext = name.rpartition(".")
    return f".{ext.lower()}" if dot and ext else ""


def type_mismatch(sniffed: str, declared: str, filename: str) -> str | None:
    """Why the content, the declared type and the name do not agree; None if they do."""
    if sniffed not in ALLOWED_TYPES:
        return f"content is {sniffed}, which is not accepted"
    declared = normalise_type(declared)
    if declared not in UNDECLARED_TYPES and declared != sniffed:
        return f"declared as {declared} but the content is {sniffed}"
    ext = _extension(filename)
    if ext not in ALLOWED_TYPES[sniffed]:
        return f"name ends in {ext or 'no extension'!r} but the content is {sniffed}"
    return None
