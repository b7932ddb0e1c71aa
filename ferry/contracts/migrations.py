"""One object of a file migration, as the workflow, its activities and the database know it."""

# No `from __future__ import annotations`: Temporal's data converter reads the field
# types at run time.

from dataclasses import dataclass

from ferry.contracts.enums import MigrationItemState


@dataclass
class MigrationItem:
    """One object of a migration; `target_key` defaults to `source_key`."""

    source_key: str
    state: MigrationItemState
    target_key: str | None = None
    file_id: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    detail: str | None = None
