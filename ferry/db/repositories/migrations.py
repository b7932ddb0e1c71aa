"""File migrations between providers, and the progress of each object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert

from ferry.contracts.enums import MigrationItemState, MigrationState
from ferry.contracts.migrations import MigrationItem
from ferry.db.errors import InvalidTransition, MigrationNotFound
from ferry.db.models import File, FileMigration, FileMigrationItem
from ferry.db.repositories.base import Repository, _table, _upsert


@dataclass(frozen=True)
class MigrationProgress:
    files_total: int
    bytes_total: int
    files_done: int
    bytes_done: int
    files_failed: int


class FileMigrationRepository(Repository):
    """File migrations between providers and the progress of each object."""

    async def get(self, migration_id: str) -> FileMigration | None:
        return await self._one(
            FileMigration,
            FileMigration.tenant_id == self.tenant_id,
            FileMigration.id == migration_id,
        )

    async def require(self, migration_id: str) -> FileMigration:
        return self._found(await self.get(migration_id), MigrationNotFound, migration_id)

    async def start(
        self,
        migration_id: str,
        *,
        source: tuple[str, str],
        target: tuple[str, str],
        prefix: str | None = None,
        batch_size: int = 100,
        delete_source: bool = False,
    ) -> tuple[FileMigration, bool]:
        """Record a running migration from (provider, bucket) to (provider, bucket); True if new."""
        values = {
            "tenant_id": self.tenant_id,
            "id": migration_id,
            "state": MigrationState.RUNNING,
            "source_provider": source[0],
            "source_bucket": source[1],
            "target_provider": target[0],
            "target_bucket": target[1],
            "prefix": prefix,
            "batch_size": batch_size,
            "delete_source": delete_source,
        }
        table = _table(FileMigration)
        stmt = _upsert(FileMigration, values, ["tenant_id", "id"]).returning(table.c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(migration_id), created

    async def record_items(
        self, migration_id: str, items: Sequence[MigrationItem]
    ) -> MigrationProgress:
        """Upsert the items' progress; files of verified items now point at the target.

        A verified item stays verified (only a rollback changes it), so replaying an
        older batch cannot undo later progress.
        """
        migration = await self.require(migration_id)
        if migration.state != MigrationState.RUNNING:
            raise InvalidTransition(f"migration {migration_id!r} is {migration.state}")
        latest = {item.source_key: item for item in items}  # one row per key per statement
        if latest:
            table = _table(FileMigrationItem)
            rows = [
                {
                    "tenant_id": self.tenant_id,
                    "migration_id": migration_id,
                    "source_key": item.source_key,
                    "target_key": item.target_key or item.source_key,
                    "file_id": item.file_id,
                    "state": MigrationItemState(item.state),
                    "size_bytes": item.size_bytes,
                    "sha256": item.sha256,
                    "detail": item.detail,
                }
                for item in latest.values()
            ]
            stmt = pg_insert(table).values(rows)
            columns = ["target_key", "file_id", "state", "size_bytes", "sha256", "detail"]
            changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in columns))
            set_: dict[str, Any] = {c: stmt.excluded[c] for c in columns}
            set_["updated_at"] = func.now()
            await self._execute(
                stmt.on_conflict_do_update(
                    index_elements=["tenant_id", "migration_id", "source_key"],
                    set_=set_,
                    where=and_(changed, table.c.state != MigrationItemState.VERIFIED),
                )
            )
            await self._repoint(migration, list(latest), to_target=True)
        return await self.progress(migration_id)

    async def _repoint(self, migration: FileMigration, keys: list[str], *, to_target: bool) -> None:
        """Point files of verified items at the target copy, or back at the source."""
        files, items = _table(File), _table(FileMigrationItem)
        source = (migration.source_provider, migration.source_bucket, items.c.source_key)
        target = (migration.target_provider, migration.target_bucket, items.c.target_key)
        old, new = (source, target) if to_target else (target, source)
        await self._execute(
            update(files)
            .where(
                items.c.tenant_id == self.tenant_id,
                items.c.migration_id == migration.id,
                items.c.source_key.in_(keys),
                items.c.state == MigrationItemState.VERIFIED,
                files.c.tenant_id == items.c.tenant_id,
                files.c.id == items.c.file_id,
                files.c.storage_provider == old[0],
                files.c.storage_bucket == old[1],
                files.c.storage_key == old[2],
            )
            .values(
                storage_provider=new[0],
                storage_bucket=new[1],
                storage_key=new[2],
                updated_at=func.now(),
            )
        )

    async def pending_keys(self, migration_id: str, keys: Sequence[str]) -> list[str]:
        """The keys among `keys` not yet verified (what is left to copy), in the given order."""
        stmt = select(FileMigrationItem.source_key).where(
            FileMigrationItem.tenant_id == self.tenant_id,
            FileMigrationItem.migration_id == migration_id,
            FileMigrationItem.source_key.in_(list(keys)),
            FileMigrationItem.state == MigrationItemState.VERIFIED,
        )
        done = set((await self.session.execute(stmt)).scalars())
        return [key for key in keys if key not in done]

    async def items(
        self,
        migration_id: str,
        *,
        states: Sequence[MigrationItemState] = (),
        after_key: str | None = None,
        limit: int = 1000,
    ) -> list[FileMigrationItem]:
        """A page of items ordered by source key, optionally of some states only."""
        stmt = select(FileMigrationItem).where(
            FileMigrationItem.tenant_id == self.tenant_id,
            FileMigrationItem.migration_id == migration_id,
        )
        if states:
            stmt = stmt.where(FileMigrationItem.state.in_([MigrationItemState(s) for s in states]))
        if after_key is not None:
            stmt = stmt.where(FileMigrationItem.source_key > after_key)
        stmt = stmt.order_by(FileMigrationItem.source_key).limit(limit)
        return list((await self.session.execute(stmt)).scalars())

    async def progress(self, migration_id: str) -> MigrationProgress:
        stmt = (
            select(
                FileMigrationItem.state,
                func.count(),
                func.coalesce(func.sum(FileMigrationItem.size_bytes), 0),
            )
            .where(
                FileMigrationItem.tenant_id == self.tenant_id,
                FileMigrationItem.migration_id == migration_id,
            )
            .group_by(FileMigrationItem.state)
        )
        by_state = {
            MigrationItemState(state): (int(count), int(size or 0))
            for state, count, size in (await self.session.execute(stmt)).all()
        }
        done = by_state.get(MigrationItemState.VERIFIED, (0, 0))
        return MigrationProgress(
            files_total=sum(count for count, _ in by_state.values()),
            bytes_total=sum(size for _, size in by_state.values()),
            files_done=done[0],
            bytes_done=done[1],
            files_failed=by_state.get(MigrationItemState.FAILED, (0, 0))[0],
        )

    async def finish(
        self, migration_id: str, state: MigrationState, detail: str | None = None
    ) -> FileMigration:
        """End a running migration as `completed` or `failed`, with its totals."""
        state = MigrationState(state)
        if state not in (MigrationState.COMPLETED, MigrationState.FAILED):
            raise ValueError("a migration finishes as completed or failed")
        migration = await self.require(migration_id)
        if migration.state not in (MigrationState.RUNNING, state):
            raise InvalidTransition(f"migration {migration_id!r} is {migration.state}")
        await self._close(migration_id, state, detail)
        return await self.require(migration_id)

    async def rollback(self, migration_id: str, detail: str | None = None) -> FileMigration:
        """Point every migrated file back at its source and mark copied items `rolled_back`.

        The items then marked `rolled_back` are the target copies left to delete.
        """
        migration = await self.require(migration_id)
        if migration.state == MigrationState.COMPLETED:
            raise InvalidTransition(f"migration {migration_id!r} completed; it cannot roll back")
        items = _table(FileMigrationItem)
        verified = select(items.c.source_key).where(
            items.c.tenant_id == self.tenant_id,
            items.c.migration_id == migration_id,
            items.c.state == MigrationItemState.VERIFIED,
        )
        keys = list((await self.session.execute(verified)).scalars())
        await self._repoint(migration, keys, to_target=False)
        await self._execute(
            update(items)
            .where(
                items.c.tenant_id == self.tenant_id,
                items.c.migration_id == migration_id,
                items.c.state.in_([MigrationItemState.COPIED, MigrationItemState.VERIFIED]),
            )
            .values(state=MigrationItemState.ROLLED_BACK, updated_at=func.now())
        )
        await self._close(migration_id, MigrationState.ROLLED_BACK, detail)
        return await self.require(migration_id)

    async def _close(self, migration_id: str, state: MigrationState, detail: str | None) -> None:
        progress = await self.progress(migration_id)
        table = _table(FileMigration)
        await self._update(
            FileMigration,
            [table.c.tenant_id == self.tenant_id, table.c.id == migration_id],
            {
                "state": state,
                "detail": detail,
                "files_moved": progress.files_done,
                "bytes_moved": progress.bytes_done,
                "files_failed": progress.files_failed,
            },
            also={"completed_at": func.coalesce(table.c.completed_at, func.now())},
        )
