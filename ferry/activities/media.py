"""Media activities: validate an upload, make thumbnails, extract metadata, analyse content.

Thin over `ferry.media`, which does the content work: files are streamed from
storage and, when a library needs a file (Pillow, pypdf, tesseract), spooled to
a temporary file deleted after the call (`spool.fetch`). CPU-heavy work runs in
a thread so the worker's event loop stays responsive and keeps heartbeating.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

from PIL import Image
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ferry.activities.heartbeat import auto_heartbeat
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
from ferry.activities.metrics import count
from ferry.activities.spool import (
    Fetched,
    Plan,
    SpoolStore,
    fetch,
    fetch_copy,
    in_thread,
    not_found,
    spool_images_and_pdfs,
)
from ferry.activities.storage import provider_named, refuse_outside
from ferry.contracts.enums import RejectionReason
from ferry.contracts.errors import CORRUPT_FILE, INVALID_KEY, MODEL_MISSING
from ferry.contracts.layout import DEFAULT_PLACES, Places, thumbnail_key
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.media.analysis import (
    Moderates,
    Moderator,
    analysis_images,
    analysis_images_of,
    detect_language,
    is_nsfw,
    ocr,
    packaged_model,
)
from ferry.media.documents import read_pdf, text_excerpt
from ferry.media.errors import CorruptContent, ModelMissing, TooLarge
from ferry.media.images import (
    image_metadata,
    render_thumbnails,
    thumbnails_of,
    validate_and_decode,
    validate_image,
)
from ferry.media.limits import DEFAULT_LIMITS, MediaLimits
from ferry.media.types import IMAGE_TYPES, PDF, TEXT, normalise_type, type_mismatch
from ferry.storage import StorageProvider

DECODES = "ferry_image_decodes"
DECODES_HELP = (
    "Images the thumbnails and the analysis start from, by step and by where the image "
    "came from: the inspection's own decode, kept in the worker's memory (validation), or "
    "a decode of the file (file: no copy here, or no room left to keep its decode)"
)


def _corrupt_error(ref: StorageRef, exc: CorruptContent) -> ApplicationError:
    return CORRUPT_FILE(f"{ref.bucket}/{ref.key}: {exc}")


class MediaActivities:
    """Validation, thumbnails, metadata and AI analysis over the storage providers."""

    def __init__(
        self,
        providers: Mapping[str, StorageProvider],
        limits: MediaLimits = DEFAULT_LIMITS,
        places: Places = DEFAULT_PLACES,
        spool: SpoolStore | None = None,
        moderator: Moderates | None = None,
    ) -> None:
        self._providers = dict(providers)
        self._limits = limits
        self._places = places
        self._moderator = moderator or Moderator()
        self._spool = spool

    @property
    def moderation_model_path(self) -> Path:
        """The ONNX model that ships inside the nudenet package (never downloaded)."""
        try:
            return packaged_model()
        except ModelMissing as exc:
            raise MODEL_MISSING(str(exc)) from None

    @property
    def moderation_model_loaded(self) -> bool:
        return self._moderator.model_name is not None

    def close(self) -> None:
        """Let the moderation model (or the service's connections) go."""
        self._moderator.close()

    def _provider(self, name: str) -> StorageProvider:
        return provider_named(self._providers, name)

    def _fetch(
        self,
        ref: StorageRef,
        plan: Callable[[str], Plan],
        *,
        hash_all: bool = False,
        max_bytes: int | None = None,
        spool: str | None = None,
    ) -> AbstractAsyncContextManager[Fetched]:
        """`spool.fetch` of `ref` from its provider, within this worker's limits; of its
        spooled copy instead when `spool` names one this worker holds."""
        if spool is not None and self._spool is not None and self._spool.has(spool):
            path = self._spool.path(spool)
            return fetch_copy(path, plan, self._limits, hash_all=hash_all, max_bytes=max_bytes)
        provider = self._provider(ref.provider)
        return fetch(provider, ref, plan, self._limits, hash_all=hash_all, max_bytes=max_bytes)

    def _copy_size(self, spool: str | None) -> int | None:
        """The size of the spooled copy `spool`, if this worker holds it."""
        if spool is None or self._spool is None or not self._spool.has(spool):
            return None
        return self._spool.path(spool).stat().st_size

    def _kept(self, spool: str | None, step: str) -> Image.Image | None:
        """The image the validation of the copy `spool` decoded, if this worker keeps it;
        counted by where `step` starts from (`DECODES`)."""
        upright = None if self._spool is None else self._spool.decoded(spool)
        count(DECODES, DECODES_HELP, step=step, source="file" if upright is None else "validation")
        return upright

    @asynccontextmanager
    async def _reading(self, spool: str | None, follower: str) -> AsyncIterator[None]:
        """`follower` is done with the copy `spool` when the block ends, however it ends."""
        try:
            yield
        finally:
            if spool is not None and self._spool is not None:
                self._spool.done(spool, follower)

    @activity.defn(name="validate_upload")
    @auto_heartbeat
    async def validate_upload(self, request: ValidationRequest) -> Validation:
        """Size, type (bytes vs declared type vs extension) and integrity of an upload.

        A rejection is a result, not an error: `ok` is false and `reason` is the
        `file.rejected` reason (`too_large`, `invalid_type` or `corrupt`).
        """
        limits = self._limits
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id, request.file_id)
        sniffed = ""
        declared = normalise_type(request.declared_content_type)

        def reject(reason: RejectionReason, detail: str, content_type: str = "") -> Validation:
            return Validation(False, content_type or declared, reason, detail)

        if request.size_bytes > request.max_file_bytes:
            return reject(
                RejectionReason.TOO_LARGE,
                f"{request.size_bytes} bytes is over the limit of {request.max_file_bytes}",
            )
        size = self._copy_size(request.spool)
        if size is None:
            info = await self._provider(ref.provider).head(ref.bucket, ref.key)
            if info is None:
                raise not_found(ref)
            size = info.size
        if size > request.max_file_bytes:
            return reject(
                RejectionReason.TOO_LARGE,
                f"the object is {size} bytes, over the limit of {request.max_file_bytes}",
            )
        if size == 0:
            return reject(RejectionReason.CORRUPT, "the object is empty")

        def plan(content_type: str) -> Plan:
            if type_mismatch(content_type, declared, request.filename):
                return Plan.STOP
            if content_type in IMAGE_TYPES and size > limits.max_image_bytes:
                return Plan.STOP
            return spool_images_and_pdfs(content_type)

        try:
            async with self._fetch(
                ref, plan, max_bytes=request.max_file_bytes, spool=request.spool
            ) as fetched:
                sniffed = fetched.content_type
                mismatch = type_mismatch(sniffed, declared, request.filename)
                if mismatch:
                    return reject(RejectionReason.INVALID_TYPE, mismatch, sniffed)
                if sniffed in IMAGE_TYPES and fetched.path is None:
                    return reject(
                        RejectionReason.TOO_LARGE,
                        f"images over {limits.max_image_bytes} bytes are not processed",
                        sniffed,
                    )
                if fetched.path is not None and sniffed in IMAGE_TYPES:
                    if request.spool is None or self._spool is None:
                        width, height = await in_thread(
                            validate_image, fetched.path, sniffed, limits
                        )
                    else:
                        # Inspecting a copy: the decode that checks the data is kept for
                        # the thumbnails and the analysis, sent to this worker.
                        (width, height), upright = await in_thread(
                            validate_and_decode, fetched.path, sniffed, limits
                        )
                        if upright is not None:
                            self._spool.keep_decoded(request.spool, upright)
                    return Validation(True, sniffed, width=width, height=height)
                if fetched.path is not None and sniffed == PDF:
                    pages, _ = await in_thread(read_pdf, fetched.path, limits, False)
                    return Validation(True, sniffed, pages=pages)
                if fetched.text_error:
                    return reject(RejectionReason.CORRUPT, fetched.text_error, sniffed)
                return Validation(True, sniffed)
        except TooLarge as exc:
            return reject(RejectionReason.TOO_LARGE, str(exc))
        except CorruptContent as exc:
            return reject(RejectionReason.CORRUPT, str(exc), sniffed)

    @activity.defn(name="make_thumbnails")
    @auto_heartbeat
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

        def plan(content_type: str) -> Plan:
            return Plan.SPOOL if content_type in IMAGE_TYPES else Plan.STOP

        async with (
            self._reading(request.spool, "thumbnails"),
            self._fetch(ref, plan, spool=request.spool) as fetched,
        ):
            if fetched.path is None:
                return ThumbnailSet()
            upright = self._kept(request.spool if request.draft else None, "thumbnails")
            try:
                if upright is None:
                    rendered = await in_thread(
                        render_thumbnails,
                        fetched.path,
                        fetched.content_type,
                        self._limits,
                        request.draft,
                    )
                else:
                    rendered = await in_thread(thumbnails_of, upright, self._limits)
            except CorruptContent as exc:
                raise _corrupt_error(ref, exc) from exc

        target = self._provider(request.provider or ref.provider)
        thumbnails = []
        for name, content_type, data, width, height in rendered:
            key = thumbnail_key(request.file_id, name)
            await target.write(request.bucket, key, _once(data))
            thumbnails.append(Thumbnail(name, key, width, height, content_type, len(data)))
        return ThumbnailSet(thumbnails)

    @activity.defn(name="extract_metadata")
    @auto_heartbeat
    async def extract_metadata(self, request: MetadataRequest) -> Metadata:
        """SHA-256 (streamed), size, type, dimensions, PDF pages, text and public EXIF."""
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id)
        limits = self._limits

        hashed = request.sha256 is None
        async with (
            self._reading(request.spool, "metadata"),
            self._fetch(
                ref, spool_images_and_pdfs, hash_all=hashed, spool=request.spool
            ) as fetched,
        ):
            sha256 = fetched.sha256 if hashed else request.sha256
            assert sha256 is not None
            result = Metadata(sha256, fetched.size, fetched.content_type)
            try:
                if fetched.path is not None and fetched.content_type in IMAGE_TYPES:
                    result.width, result.height, result.exif = await in_thread(
                        image_metadata, fetched.path, fetched.content_type, limits
                    )
                elif fetched.path is not None and fetched.content_type == PDF:
                    result.pages, result.text_excerpt = await in_thread(
                        read_pdf, fetched.path, limits
                    )
                elif fetched.content_type == TEXT:
                    result.text_excerpt = text_excerpt(fetched.head, limits)
            except CorruptContent as exc:
                raise _corrupt_error(ref, exc) from exc
        result.public = _public_metadata(result)
        return result

    @activity.defn(name="analyse_content")
    @auto_heartbeat
    async def analyse_content(self, request: AnalysisRequest) -> Analysis:
        """Moderation labels (nudenet) and OCR (tesseract) for images; language of any text."""
        async with self._reading(request.spool, "analysis"):
            return await self._analyse(request)

    async def _analyse(self, request: AnalysisRequest) -> Analysis:
        ref = request.source
        refuse_outside(self._places, ref.bucket, ref.key, request.tenant_id)
        limits = self._limits
        content_type = normalise_type(request.content_type)
        result = Analysis()
        text = request.text

        def plan(sniffed: str) -> Plan:
            if sniffed in IMAGE_TYPES or (sniffed == PDF and text is None):
                return Plan.SPOOL
            return Plan.STOP

        if content_type in IMAGE_TYPES or (text is None and content_type in (PDF, TEXT)):
            async with self._fetch(ref, plan, spool=request.spool) as fetched:
                try:
                    if fetched.path is not None and fetched.content_type in IMAGE_TYPES:
                        upright = self._kept(request.spool, "analysis")
                        result = await in_thread(
                            self._analyse_image, fetched.path, fetched.content_type, upright
                        )
                    elif fetched.path is not None and fetched.content_type == PDF:
                        _, text = await in_thread(read_pdf, fetched.path, limits)
                    elif fetched.content_type == TEXT:
                        text = text_excerpt(fetched.head, limits)
                except CorruptContent as exc:
                    raise _corrupt_error(ref, exc) from exc
                except ModelMissing as exc:
                    raise MODEL_MISSING(str(exc)) from None
        sample = "\n".join(filter(None, (text, result.ocr_text)))
        if sample:
            result.language, result.language_score = await in_thread(
                detect_language, sample, limits.min_language_letters
            )
        return result

    def _analyse_image(
        self, path: Path, content_type: str, upright: Image.Image | None
    ) -> Analysis:
        if upright is None:
            moderation, ocr_image = analysis_images(path, content_type, self._limits)
        else:
            moderation, ocr_image = analysis_images_of(upright, self._limits)
        labels = self._moderator.labels(moderation)
        return Analysis(
            labels=[ModerationLabel(name, score) for name, score in labels],
            nsfw=is_nsfw(labels, self._limits.nsfw_threshold),
            ocr_text=ocr(ocr_image, self._limits, self._moderator),
            moderation_model=self._moderator.model_name,
        )


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
