"""File-migration activities: the migration row and the progress of each object.

The copying itself is `MigrationActivities` (`ferry.activities.migration`).
"""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from dataclasses import dataclass, field

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities
from ferry.contracts.convert import build
from ferry.contracts.enums import MigrationItemState, MigrationState
from ferry.contracts.migrations import MigrationItem
from ferry.db import MigrationProgress
from ferry.db import models as m


@dataclass
class StartMigrationInput:
    tenant_id: str
    migration_id: str
    source_provider: str
    source_bucket: str
    target_provider: str
    target_bucket: str
    prefix: str | None = None
    batch_size: int = 100
    delete_source: bool = False


@dataclass
class MigrationRecord:
    tenant_id: str
    migration_id: str
    state: MigrationState
    source_provider: str
    source_bucket: str
    target_provider: str
    target_bucket: str
    prefix: str | None = None
    batch_size: int = 100
    delete_source: bool = False
    files_moved: int = 0
    bytes_moved: int = 0
    files_failed: int = 0
    detail: str | None = None


@dataclass
class StartMigrationResult:
    migration: MigrationRecord
    created: bool


@dataclass
class MigrationItemsInput:
    """A batch's progress. Verified items with a `file_id` repoint their file to the target."""

    tenant_id: str
    migration_id: str
    items: list[MigrationItem] = field(default_factory=list)


@dataclass
class MigrationProgressRecord:
    tenant_id: str
    migration_id: str
    files_total: int
    bytes_total: int
    files_done: int
    bytes_done: int
    files_failed: int


@dataclass
class PendingKeysInput:
    tenant_id: str
    migration_id: str
    keys: list[str] = field(default_factory=list)


@dataclass
class PendingKeys:
    """The keys not yet verified, in the order given."""

    keys: list[str] = field(default_factory=list)


@dataclass
class MigrationItemsQuery:
    tenant_id: str
    migration_id: str
    states: list[MigrationItemState] = field(default_factory=list)
    after_key: str | None = None
    limit: int = 1000


@dataclass
class MigrationItemsPage:
    items: list[MigrationItem] = field(default_factory=list)
    next_after_key: str | None = None  # None on the last page


@dataclass
class MigrationRef:
    tenant_id: str
    migration_id: str


@dataclass
class FinishMigrationInput:
    tenant_id: str
    migration_id: str
    state: MigrationState  # completed or failed
    detail: str | None = None


@dataclass
class RollbackMigrationInput:
    """Point files back at the source; the `rolled_back` items are the copies to delete."""

    tenant_id: str
    migration_id: str
    detail: str | None = None


def _migration(row: m.FileMigration) -> MigrationRecord:
    return build(MigrationRecord, row, migration_id=row.id)


def _progress(tenant_id: str, migration_id: str, p: MigrationProgress) -> MigrationProgressRecord:
    return MigrationProgressRecord(
        tenant_id, migration_id,
        p.files_total, p.bytes_total, p.files_done, p.bytes_done, p.files_failed,
    )  # fmt: skip


def _item(row: m.FileMigrationItem) -> MigrationItem:
    return build(MigrationItem, row)


class MigrationDbActivities(TenantScopedActivities):
    """A file migration's record: started, its items' progress, finished or rolled back."""

    @activity.defn(name="start_file_migration")
    async def start_file_migration(self, request: StartMigrationInput) -> StartMigrationResult:
        async with self._scope(request.tenant_id) as db:
            await db.tenants.require()
            row, created = await db.migrations.start(
                request.migration_id,
                source=(request.source_provider, request.source_bucket),
                target=(request.target_provider, request.target_bucket),
                prefix=request.prefix,
                batch_size=request.batch_size,
                delete_source=request.delete_source,
            )
            return StartMigrationResult(_migration(row), created)

    @activity.defn(name="record_migration_items")
    async def record_migration_items(self, request: MigrationItemsInput) -> MigrationProgressRecord:
        """Store a batch's progress; files of verified copies now point at the target."""
        async with self._scope(request.tenant_id) as db:
            progress = await db.migrations.record_items(request.migration_id, request.items)
        return _progress(request.tenant_id, request.migration_id, progress)

    @activity.defn(name="pending_migration_keys")
    async def pending_migration_keys(self, request: PendingKeysInput) -> PendingKeys:
        """Of a listed page of keys, those still to copy (not yet verified)."""
        async with self._scope(request.tenant_id) as db:
            await db.migrations.require(request.migration_id)
            return PendingKeys(await db.migrations.pending_keys(request.migration_id, request.keys))

    @activity.defn(name="list_migration_items")
    async def list_migration_items(self, request: MigrationItemsQuery) -> MigrationItemsPage:
        async with self._scope(request.tenant_id) as db:
            rows = await db.migrations.items(
                request.migration_id,
                states=request.states,
                after_key=request.after_key,
                limit=request.limit,
            )
        last_page = len(rows) < request.limit or not rows
        return MigrationItemsPage(
            [_item(row) for row in rows], None if last_page else rows[-1].source_key
        )

    @activity.defn(name="get_migration_progress")
    async def get_migration_progress(self, request: MigrationRef) -> MigrationProgressRecord:
        async with self._scope(request.tenant_id) as db:
            await db.migrations.require(request.migration_id)
            progress = await db.migrations.progress(request.migration_id)
        return _progress(request.tenant_id, request.migration_id, progress)

    @activity.defn(name="finish_file_migration")
    async def finish_file_migration(self, request: FinishMigrationInput) -> MigrationRecord:
        async with self._scope(request.tenant_id) as db:
            row = await db.migrations.finish(request.migration_id, request.state, request.detail)
            return _migration(row)

    @activity.defn(name="rollback_file_migration")
    async def rollback_file_migration(self, request: RollbackMigrationInput) -> MigrationRecord:
        async with self._scope(request.tenant_id) as db:
            return _migration(await db.migrations.rollback(request.migration_id, request.detail))
