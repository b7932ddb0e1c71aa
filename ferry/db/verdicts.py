"""Scan verdicts by content: what clamd said of some bytes, under which signatures.

The table `scan_verdicts` (migration 0004) holds one row per SHA-256, the
latest verdict; it is shared by every tenant, holding hashes and verdicts only.
`outdated_files` asks migration 0004's function which processed files, of any
tenant, have no verdict under the current signature version, newest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ferry.contracts.workflows import OutdatedFile, RescanCursor
from ferry.db.models import ScanVerdict

_CANDIDATES = text(
    "SELECT tenant_id, file_id, processed_at, sha256, verdict_at"
    " FROM ferry_rescan_candidates(:version, :before_at, :before_tenant, :before_file,"
    " :row_limit, CAST(:only_tenants AS text[]))"
)


@dataclass(frozen=True)
class Verdict:
    """clamd's verdict on some bytes: clean, or the signature it found."""

    sha256: str
    engine: str
    signature_version: int | None
    clean: bool
    signature: str | None
    scanned_at: datetime


class VerdictBook:
    """Reads and records verdicts, each in a transaction of its own."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, sha256: str) -> Verdict | None:
        """The latest verdict on these bytes, under whatever signatures gave it."""
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(ScanVerdict.__table__).where(ScanVerdict.sha256 == sha256)
                )
            ).first()
        return None if row is None else Verdict(**row._asdict())

    async def current(self, sha256: str, signature_version: int) -> Verdict | None:
        """The verdict on these bytes if it was given under `signature_version`."""
        verdict = await self.get(sha256)
        if verdict is None or verdict.signature_version != signature_version:
            return None
        return verdict

    async def record(
        self,
        sha256: str,
        *,
        engine: str,
        signature_version: int | None,
        clean: bool,
        signature: str | None = None,
    ) -> Verdict:
        """Record a verdict as the latest on these bytes (safe to repeat)."""
        values = {
            "sha256": sha256,
            "engine": engine,
            "signature_version": signature_version,
            "clean": clean,
            "signature": None if clean else signature,
        }
        stmt = (
            insert(ScanVerdict)
            .values(values)
            .on_conflict_do_update(
                index_elements=["sha256"], set_={**values, "scanned_at": text("now()")}
            )
            .returning(*ScanVerdict.__table__.c)
        )
        async with self._engine.begin() as conn:
            row = (await conn.execute(stmt)).one()
        return Verdict(**row._asdict())


async def outdated_files(
    engine: AsyncEngine,
    signature_version: int,
    *,
    after: RescanCursor | None = None,
    limit: int = 50,
    only_tenants: Sequence[str] | None = None,
) -> list[OutdatedFile]:
    """Processed files without a verdict under `signature_version`, newest first; `after`
    is the cursor of the last of the previous page."""
    params = {
        "version": signature_version,
        "before_at": after.processed_at if after else None,
        "before_tenant": after.tenant_id if after else None,
        "before_file": after.file_id if after else None,
        "row_limit": limit,
        "only_tenants": None if only_tenants is None else list(only_tenants),
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(_CANDIDATES, params)).all()
    return [OutdatedFile(**row._asdict()) for row in rows]
