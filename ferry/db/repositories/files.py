"""The tenant's files, their states and thumbnails, and what they add up to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select

from ferry.contracts.enums import FileState, RejectionReason
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.db.errors import FileNotFound, InvalidTransition
from ferry.db.models import File, TenantUsage
from ferry.db.models import Thumbnail as ThumbnailRow
from ferry.db.repositories.base import (
    Repository,
    _bound,
    _params,
    _table,
    _update_statement,
    _upsert,
)

# An upload's statements, built once and run with their parameters (`_bound`).
_FILES = _table(File)
_THUMBNAILS = _table(ThumbnailRow)
_PROCESSED_COLUMNS = (
    "sha256",
    "size_bytes",
    "content_type",
    "storage_provider",
    "storage_bucket",
    "storage_key",
    "metadata",
    "analysis",
)
_NEW_FILE_COLUMNS = (
    "tenant_id",
    "id",
    "state",
    "filename",
    "declared_content_type",
    "size_bytes",
    "uploaded_by",
    "storage_provider",
    "storage_bucket",
    "storage_key",
    "sha256",
    "upload_event_id",
)
_NEW_FILE = _upsert(File, _bound(_FILES, _NEW_FILE_COLUMNS), ["tenant_id", "id"]).returning(
    *_FILES.c
)
# Where one of the values differs (a retry that changes nothing writes nothing).
_BECOME_PROCESSED = _update_statement(
    File,
    [
        _FILES.c.tenant_id == bindparam("p_tenant"),
        _FILES.c.id == bindparam("p_file"),
        _FILES.c.state.in_([FileState.PROCESSING, FileState.PROCESSED]),
    ],
    {"state": FileState.PROCESSED, **_bound(_FILES, _PROCESSED_COLUMNS)},
    also={"processed_at": func.coalesce(_FILES.c.processed_at, func.now())},
).returning(*_FILES.c)
_PUT_THUMBNAILS = _upsert(
    ThumbnailRow,
    None,
    ["tenant_id", "file_id", "name"],
    ["key", "width", "height", "content_type", "size_bytes"],
)
_DROP_OTHER_THUMBNAILS = delete(_THUMBNAILS).where(
    _THUMBNAILS.c.tenant_id == bindparam("p_tenant"),
    _THUMBNAILS.c.file_id == bindparam("p_file"),
    _THUMBNAILS.c.name.not_in(bindparam("p_names", expanding=True)),
)
# The running totals (migration 0005's trigger keeps them): not a count of the rows.
_USAGE = select(TenantUsage.files, TenantUsage.bytes).where(
    TenantUsage.tenant_id == bindparam("p_tenant")
)


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int


class FileRepository(Repository):
    """The tenant's files, their states and thumbnails."""

    def _key(self, file_id: str) -> list[ColumnElement[bool]]:
        return [File.tenant_id == self.tenant_id, File.id == file_id]

    async def get(self, file_id: str) -> File | None:
        return await self._one(File, *self._key(file_id))

    async def require(self, file_id: str) -> File:
        return self._found(await self.get(file_id), FileNotFound, file_id)

    async def record_processing(
        self,
        file_id: str,
        *,
        filename: str,
        declared_content_type: str,
        size_bytes: int,
        uploaded_by: str,
        location: StorageRef,
        sha256: str | None = None,
        upload_event_id: str | None = None,
    ) -> tuple[File, bool]:
        """Record an upload as `processing`; True if new. A known file is left as it is."""
        values = {
            "tenant_id": self.tenant_id,
            "id": file_id,
            "state": FileState.PROCESSING,
            "filename": filename,
            "declared_content_type": declared_content_type,
            "size_bytes": size_bytes,
            "uploaded_by": uploaded_by,
            "storage_provider": location.provider,
            "storage_bucket": location.bucket,
            "storage_key": location.key,
            "sha256": sha256,
            "upload_event_id": upload_event_id,
        }
        inserted = await self._returned(File, _NEW_FILE, _params(values))
        if inserted is not None:
            return inserted, True
        return await self.require(file_id), False

    async def record_processed(
        self,
        file_id: str,
        *,
        sha256: str,
        size_bytes: int,
        content_type: str,
        location: StorageRef,
        metadata: Mapping[str, str],
        analysis: Mapping[str, str],
        thumbnails: Sequence[Thumbnail] = (),
    ) -> File:
        """Mark a file processed with what processing found; its thumbnails become `thumbnails`.

        One UPDATE in the usual case (a file in `processing`); the file is read only when
        that changed nothing: already processed so (a retry), or in a state that cannot
        become processed, or unknown."""
        values = {
            "sha256": sha256,
            "size_bytes": size_bytes,
            "content_type": content_type,
            "storage_provider": location.provider,
            "storage_bucket": location.bucket,
            "storage_key": location.key,
            "metadata": dict(metadata),
            "analysis": dict(analysis),
        }
        where = {"p_tenant": self.tenant_id, "p_file": file_id}
        file = await self._returned(File, _BECOME_PROCESSED, {**_params(values), **where})
        if file is None:
            file = await self.require(file_id)
            if file.state not in (FileState.PROCESSING, FileState.PROCESSED):
                detail = f"file {file_id!r} is {file.state}; it cannot become processed"
                raise InvalidTransition(detail)
        await self._replace_thumbnails(file_id, thumbnails)
        return file

    async def _replace_thumbnails(self, file_id: str, thumbnails: Sequence[Thumbnail]) -> None:
        rows = [
            {
                "tenant_id": self.tenant_id,
                "file_id": file_id,
                "name": thumb.name,
                "key": thumb.key,
                "width": thumb.width,
                "height": thumb.height,
                "content_type": thumb.content_type,
                "size_bytes": thumb.size_bytes,
            }
            for thumb in thumbnails
        ]
        if rows:
            # One statement for all of them (a retry with the same ones changes nothing).
            await self._execute(_PUT_THUMBNAILS, rows)
        names = [t.name for t in thumbnails]
        await self._execute(
            _DROP_OTHER_THUMBNAILS,
            {"p_tenant": self.tenant_id, "p_file": file_id, "p_names": names},
        )

    async def record_rejected(
        self,
        file_id: str,
        *,
        reason: RejectionReason,
        detail: str,
        signature: str | None = None,
        location: StorageRef | None = None,
        quarantined: bool = False,
    ) -> File:
        """Mark a file rejected, or quarantined when its object sits in quarantine.

        Allowed from any state: a verdict that a file is bad always wins.
        """
        await self.require(file_id)
        values: dict[str, Any] = {
            "state": FileState.QUARANTINED if quarantined else FileState.REJECTED,
            "reject_reason": RejectionReason(reason),
            "reject_detail": detail,
            "signature": signature,
        }
        if location is not None:
            values |= {
                "storage_provider": location.provider,
                "storage_bucket": location.bucket,
                "storage_key": location.key,
            }
        await self._update(File, self._key(file_id), values)
        return await self.require(file_id)

    async def set_location(self, file_id: str, location: StorageRef) -> File:
        """Point the file at another copy of its object (failover, migration)."""
        await self.require(file_id)
        values = {
            "storage_provider": location.provider,
            "storage_bucket": location.bucket,
            "storage_key": location.key,
        }
        await self._update(File, self._key(file_id), values)
        return await self.require(file_id)

    async def thumbnails(self, file_id: str) -> list[ThumbnailRow]:
        stmt = (
            select(ThumbnailRow)
            .where(ThumbnailRow.tenant_id == self.tenant_id, ThumbnailRow.file_id == file_id)
            .order_by(ThumbnailRow.name)
            .execution_options(populate_existing=True)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def usage(self) -> Usage:
        """Files and bytes of the tenant's processed files (what counts against the quota)."""
        totals = (await self.session.execute(_USAGE, {"p_tenant": self.tenant_id})).first()
        if totals is None:
            return Usage(files=0, bytes=0)  # nothing processed yet
        return Usage(files=int(totals.files), bytes=int(totals.bytes))
