"""What the media activities take and give: validation, thumbnails, metadata, analysis.

The workflows send and receive these (`ferry.activities.media` does the work).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ferry.contracts.enums import RejectionReason
from ferry.contracts.storage import StorageRef, Thumbnail


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
    # The upload's spooled copy on this worker (`inspect_upload`), read instead when found.
    spool: str | None = None


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
    # The source's spooled copy on this worker (`inspect_upload`), read instead when found.
    spool: str | None = None


@dataclass
class ThumbnailSet:
    """The thumbnails written; empty for anything that is not an image."""

    thumbnails: list[Thumbnail] = field(default_factory=list)


@dataclass
class MetadataRequest:
    source: StorageRef
    tenant_id: str | None = None
    # The source's spooled copy on this worker (`inspect_upload`), read instead when found.
    spool: str | None = None
    # Known already (the inspection hashed every byte): not hashed again.
    sha256: str | None = None


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
    # The source's spooled copy on this worker (`inspect_upload`), read instead when found.
    spool: str | None = None


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
