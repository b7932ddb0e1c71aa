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
from typing import cast

from sqlalchemy import Table, bindparam, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from ferry.contracts.workflows import OutdatedFile, RescanCursor
from ferry.db.models import ScanVerdict
from ferry.db.repositories.base import _bound, _params

_CANDIDATES = text(
    "SELECT tenant_id, file_id, processed_at, sha256, verdict_at"
    " FROM ferry_rescan_candidates(:version, :before_at, :before_tenant, :before_file,"
    " :row_limit, CAST(:only_tenants AS text[]))"
)

# Built once, run with their parameters (`_bound`): each upload reads and records one.
_VERDICTS = cast(Table, ScanVerdict.__table__)
_INSERT = insert(_VERDICTS)
_LATEST = select(_VERDICTS).where(_VERDICTS.c.sha256 == bindparam("p_sha256"))
_COLUMNS = ("sha256", "engine", "signature_version", "clean", "signature")
_RECORD = (
    _INSERT.values(_bound(_VERDICTS, _COLUMNS))
    .on_conflict_do_update(
        index_elements=["sha256"],
        set_={**{c: _INSERT.excluded[c] for c in _COLUMNS}, "scanned_at": text("now()")},
    )
    .returning(*_VERDICTS.c)
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
    """Reads and records verdicts, each one statement on its own (autocommit)."""

    def __init__(self, engine: AsyncEngine) -> None:
        # Each read and record is one statement, atomic alone: in autocommit it is one
        # round trip, where a transaction around it made three.
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    async def get(self, sha256: str) -> Verdict | None:
        """The latest verdict on these bytes, under whatever signatures gave it."""
        async with self._engine.connect() as conn:
            row = (await conn.execute(_LATEST, {"p_sha256": sha256})).first()
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
        async with self._engine.connect() as conn:
            row = (await conn.execute(_RECORD, _params(values))).one()
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
