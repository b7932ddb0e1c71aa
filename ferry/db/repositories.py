"""Tenant-scoped repositories: every read and write of one tenant's rows.

A repository is bound to one session and one tenant. It writes that tenant's ID
into every row itself and filters every read by it, so callers cannot name a
foreign tenant; row-level security enforces the same in the database.

Writes are idempotent: inserts are upserts keyed by business IDs, and updates
touch a row only when a value actually changes, so repeating a call leaves the
rows exactly as one call did (`updated_at` included).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    CursorResult,
    Table,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.contracts.enums import (
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    MigrationState,
    RejectionReason,
    SharePermission,
    ShareStatus,
    StorageProvider,
    TenantPlan,
    TenantStatus,
)
from ferry.contracts.plans import limits_for
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.db.errors import (
    FileNotFound,
    InvalidTransition,
    MigrationNotFound,
    ShareNotFound,
    TenantNotFound,
)
from ferry.db.models import (
    Base,
    File,
    FileMigration,
    FileMigrationItem,
    Membership,
    ProcessedEvent,
    Share,
    Tenant,
    UsageReport,
    User,
)
from ferry.db.models import (
    Thumbnail as ThumbnailRow,
)

M = TypeVar("M", bound=Base)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _changed(table: Table, values: Mapping[str, Any]) -> ColumnElement[bool]:
    """True for a row where any of `values` differs (NULL-safe)."""
    return or_(*(table.c[name].is_distinct_from(value) for name, value in values.items()))


def _upsert(
    model: type[Base],
    values: Mapping[str, Any],
    key: Sequence[str],
    update_columns: Sequence[str] = (),
    only_if: ColumnElement[bool] | None = None,
) -> Insert:
    """INSERT, or on a key conflict update `update_columns` where they changed."""
    stmt = pg_insert(_table(model)).values(dict(values))
    if not update_columns:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    table = _table(model)
    changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in update_columns))
    set_: dict[str, Any] = {c: stmt.excluded[c] for c in update_columns}
    if "updated_at" in table.c:
        set_["updated_at"] = func.now()
    condition = changed if only_if is None else and_(changed, only_if)
    return stmt.on_conflict_do_update(index_elements=list(key), set_=set_, where=condition)


@dataclass(frozen=True)
class Usage:
    files: int
    bytes: int


@dataclass(frozen=True)
class MigrationItemData:
    """What a migration knows about one object; `target_key` defaults to the source key."""

    source_key: str
    state: MigrationItemState
    target_key: str | None = None
    file_id: str | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class MigrationProgress:
    files_total: int
    bytes_total: int
    files_done: int
    bytes_done: int
    files_failed: int


class Repository:
    """One tenant's rows of one kind, inside the caller's transaction."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def _one(self, model: type[M], *where: ColumnElement[bool]) -> M | None:
        stmt = select(model).where(*where).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    async def _update(
        self,
        model: type[Base],
        where: Sequence[ColumnElement[bool]],
        values: Mapping[str, Any],
        also: Mapping[str, Any] | None = None,
    ) -> int:
        """UPDATE rows where one of `values` differs; `also` is set alongside, not compared."""
        table = _table(model)
        new: dict[str, Any] = {**values, **(also or {})}
        if "updated_at" in table.c:
            new["updated_at"] = func.now()
        stmt = update(table).where(*where, _changed(table, values)).values(new)
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        return result.rowcount

    async def _execute(self, stmt: Any) -> CursorResult[Any]:
        return cast(CursorResult[Any], await self.session.execute(stmt))


class TenantRepository(Repository):
    """The tenant's own row: plan, status, quotas, storage."""

    async def get(self) -> Tenant | None:
        return await self._one(Tenant, Tenant.id == self.tenant_id)

    async def require(self) -> Tenant:
        tenant = await self.get()
        if tenant is None:
            raise TenantNotFound(self.tenant_id)
        return tenant

    async def create(
        self,
        *,
        name: str,
        plan: TenantPlan,
        region: str,
        admin_email: str,
        storage_provider: StorageProvider,
        storage_bucket: str,
    ) -> tuple[Tenant, bool]:
        """Insert the tenant in `provisioning` with its plan's quotas; True if it was new.

        An existing tenant is left as it is (a repeat is not a second tenant).
        """
        limits = limits_for(plan)
        values = {
            "id": self.tenant_id,
            "name": name,
            "plan": TenantPlan(plan),
            "status": TenantStatus.PROVISIONING,
            "region": region,
            "admin_email": admin_email,
            "storage_provider": StorageProvider(storage_provider),
            "storage_bucket": storage_bucket,
            "quota_bytes": limits.quota_bytes,
            "quota_files": limits.quota_files,
            "max_file_bytes": limits.max_file_bytes,
        }
        stmt = _upsert(Tenant, values, key=["id"]).returning(_table(Tenant).c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(), created

    async def set_status(self, status: TenantStatus, reason: str | None = None) -> Tenant:
        await self.require()
        await self._update(
            Tenant,
            [Tenant.id == self.tenant_id],
            {"status": TenantStatus(status), "status_reason": reason},
        )
        return await self.require()

    async def apply_plan(self, plan: TenantPlan) -> Tenant:
        """Set the plan and the quotas and limits that come with it."""
        await self.require()
        limits = limits_for(plan)
        values = {
            "plan": TenantPlan(plan),
            "quota_bytes": limits.quota_bytes,
            "quota_files": limits.quota_files,
            "max_file_bytes": limits.max_file_bytes,
        }
        await self._update(Tenant, [Tenant.id == self.tenant_id], values)
        return await self.require()

    async def set_over_quota(self, over_quota: bool) -> Tenant:
        await self.require()
        await self._update(Tenant, [Tenant.id == self.tenant_id], {"over_quota": over_quota})
        return await self.require()

    async def delete_rows(self) -> dict[str, int]:
        """Delete every row of the tenant, children first; the counts by table.

        Processed event IDs are kept: they hold no user data, and they stop a
        redelivered `tenant.creation_requested` from resurrecting the tenant.
        """
        deleted: dict[str, int] = {}
        for model in (
            ThumbnailRow,
            Share,
            FileMigrationItem,
            FileMigration,
            File,
            Membership,
            User,
            UsageReport,
        ):
            table = _table(model)
            result = await self._execute(delete(table).where(table.c.tenant_id == self.tenant_id))
            deleted[table.name] = result.rowcount
        result = await self._execute(delete(_table(Tenant)).where(Tenant.id == self.tenant_id))
        deleted["tenants"] = result.rowcount
        return deleted


class UserRepository(Repository):
    """The tenant's users and their memberships."""

    async def get(self, user_id: str) -> User | None:
        return await self._one(User, User.tenant_id == self.tenant_id, User.id == user_id)

    async def upsert(
        self, user_id: str, *, email: str | None = None, display_name: str | None = None
    ) -> User:
        """Create the user, or update the fields given (None keeps what is stored)."""
        values: dict[str, Any] = {"tenant_id": self.tenant_id, "id": user_id}
        given = {
            k: v for k, v in (("email", email), ("display_name", display_name)) if v is not None
        }
        await self._execute(_upsert(User, values | given, ["tenant_id", "id"], list(given)))
        user = await self.get(user_id)
        assert user is not None
        return user

    async def set_role(self, user_id: str, role: MemberRole) -> Membership:
        """Make the (existing) user a member with `role`."""
        values = {"tenant_id": self.tenant_id, "user_id": user_id, "role": MemberRole(role)}
        await self._execute(_upsert(Membership, values, ["tenant_id", "user_id"], ["role"]))
        membership = await self.membership(user_id)
        assert membership is not None
        return membership

    async def add_member(
        self,
        user_id: str,
        role: MemberRole,
        *,
        email: str | None = None,
        display_name: str | None = None,
    ) -> Membership:
        await self.upsert(user_id, email=email, display_name=display_name)
        return await self.set_role(user_id, role)

    async def remove_member(self, user_id: str) -> bool:
        """End the membership; the user row stays for attribution."""
        table = _table(Membership)
        result = await self._execute(
            delete(table).where(table.c.tenant_id == self.tenant_id, table.c.user_id == user_id)
        )
        return result.rowcount > 0

    async def membership(self, user_id: str) -> Membership | None:
        return await self._one(
            Membership, Membership.tenant_id == self.tenant_id, Membership.user_id == user_id
        )

    async def role_of(self, user_id: str) -> MemberRole | None:
        """The user's role in the tenant, None if not a member."""
        membership = await self.membership(user_id)
        return None if membership is None else membership.role


class FileRepository(Repository):
    """The tenant's files, their states and thumbnails."""

    def _key(self, file_id: str) -> list[ColumnElement[bool]]:
        return [File.tenant_id == self.tenant_id, File.id == file_id]

    async def get(self, file_id: str) -> File | None:
        return await self._one(File, *self._key(file_id))

    async def require(self, file_id: str) -> File:
        file = await self.get(file_id)
        if file is None:
            raise FileNotFound(file_id)
        return file

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
        stmt = _upsert(File, values, ["tenant_id", "id"]).returning(_table(File).c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(file_id), created

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
        """Mark a file processed with what processing found; its thumbnails become `thumbnails`."""
        file = await self.require(file_id)
        if file.state not in (FileState.PROCESSING, FileState.PROCESSED):
            raise InvalidTransition(f"file {file_id!r} is {file.state}; it cannot become processed")
        table = _table(File)
        values = {
            "state": FileState.PROCESSED,
            "sha256": sha256,
            "size_bytes": size_bytes,
            "content_type": content_type,
            "storage_provider": location.provider,
            "storage_bucket": location.bucket,
            "storage_key": location.key,
            "metadata": dict(metadata),
            "analysis": dict(analysis),
        }
        await self._update(
            File,
            self._key(file_id),
            values,
            also={"processed_at": func.coalesce(table.c.processed_at, func.now())},
        )
        await self._replace_thumbnails(file_id, thumbnails)
        return await self.require(file_id)

    async def _replace_thumbnails(self, file_id: str, thumbnails: Sequence[Thumbnail]) -> None:
        table = _table(ThumbnailRow)
        key = ["tenant_id", "file_id", "name"]
        columns = ["key", "width", "height", "content_type", "size_bytes"]
        for thumb in thumbnails:
            values = {
                "tenant_id": self.tenant_id,
                "file_id": file_id,
                "name": thumb.name,
                "key": thumb.key,
                "width": thumb.width,
                "height": thumb.height,
                "content_type": thumb.content_type,
                "size_bytes": thumb.size_bytes,
            }
            await self._execute(_upsert(ThumbnailRow, values, key, columns))
        await self._execute(
            delete(table).where(
                table.c.tenant_id == self.tenant_id,
                table.c.file_id == file_id,
                table.c.name.not_in([t.name for t in thumbnails]),
            )
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
        stmt = select(func.count(), func.coalesce(func.sum(File.size_bytes), 0)).where(
            File.tenant_id == self.tenant_id, File.state == FileState.PROCESSED
        )
        files, size = (await self.session.execute(stmt)).one()
        return Usage(files=int(files), bytes=int(size))


class ShareRepository(Repository):
    """Grants of access to the tenant's files."""

    async def get(self, share_id: str) -> Share | None:
        return await self._one(Share, Share.tenant_id == self.tenant_id, Share.id == share_id)

    async def require(self, share_id: str) -> Share:
        share = await self.get(share_id)
        if share is None:
            raise ShareNotFound(share_id)
        return share

    async def record(
        self,
        share_id: str,
        *,
        file_id: str,
        shared_by: str,
        grantee_type: GranteeType,
        grantee: str | None,
        permission: SharePermission,
        expires_at: datetime | None = None,
        notify: bool = False,
        message: str | None = None,
    ) -> tuple[Share, bool]:
        """Record an active grant; True if new. A known share keeps its state (no resurrection)."""
        values = {
            "tenant_id": self.tenant_id,
            "id": share_id,
            "file_id": file_id,
            "shared_by": shared_by,
            "grantee_type": GranteeType(grantee_type),
            "grantee": grantee,
            "permission": SharePermission(permission),
            "status": ShareStatus.ACTIVE,
            "expires_at": expires_at,
            "notify": notify,
            "message": message,
        }
        if await self.get(share_id) is None:
            await FileRepository(self.session, self.tenant_id).require(file_id)
        stmt = _upsert(Share, values, ["tenant_id", "id"]).returning(_table(Share).c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(share_id), created

    async def end(
        self, share_id: str, status: ShareStatus, ended_by: str | None = None
    ) -> tuple[Share, bool]:
        """End an active share as `revoked` or `expired`; True if this call ended it."""
        status = ShareStatus(status)
        if status == ShareStatus.ACTIVE:
            raise ValueError("a share ends as revoked or expired")
        await self.require(share_id)
        ended = await self._update(
            Share,
            [
                Share.tenant_id == self.tenant_id,
                Share.id == share_id,
                Share.status == ShareStatus.ACTIVE,
            ],
            {"status": status, "revoked_by": ended_by},
            also={"ended_at": func.now()},
        )
        return await self.require(share_id), ended > 0

    async def active_permissions(self, file_id: str, user_id: str) -> list[SharePermission]:
        """Permissions that unexpired, active user shares of the file give `user_id`."""
        stmt = select(Share.permission).where(
            Share.tenant_id == self.tenant_id,
            Share.file_id == file_id,
            Share.grantee_type == GranteeType.USER,
            Share.grantee == user_id,
            Share.status == ShareStatus.ACTIVE,
            or_(Share.expires_at.is_(None), Share.expires_at > func.now()),
        )
        return list((await self.session.execute(stmt)).scalars())


class FileMigrationRepository(Repository):
    """File migrations between providers and the progress of each object."""

    async def get(self, migration_id: str) -> FileMigration | None:
        return await self._one(
            FileMigration,
            FileMigration.tenant_id == self.tenant_id,
            FileMigration.id == migration_id,
        )

    async def require(self, migration_id: str) -> FileMigration:
        migration = await self.get(migration_id)
        if migration is None:
            raise MigrationNotFound(migration_id)
        return migration

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
        self, migration_id: str, items: Sequence[MigrationItemData]
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


class ProcessedEventRepository(Repository):
    """Inbound event IDs a consumer has handled (deduplication beyond Temporal's retention)."""

    async def mark(self, consumer: str, event_id: str, event_type: str | None = None) -> bool:
        """Record the event as processed; True the first time, False for a duplicate."""
        values = {
            "tenant_id": self.tenant_id,
            "consumer": consumer,
            "event_id": event_id,
            "event_type": event_type,
        }
        key = ["tenant_id", "consumer", "event_id"]
        stmt = _upsert(ProcessedEvent, values, key).returning(_table(ProcessedEvent).c.event_id)
        return (await self._execute(stmt)).first() is not None

    async def seen(self, consumer: str, event_id: str) -> bool:
        found = await self._one(
            ProcessedEvent,
            ProcessedEvent.tenant_id == self.tenant_id,
            ProcessedEvent.consumer == consumer,
            ProcessedEvent.event_id == event_id,
        )
        return found is not None

    async def prune(self, before: datetime) -> int:
        """Forget the tenant's events processed before `before`; how many were removed."""
        table = _table(ProcessedEvent)
        result = await self._execute(
            delete(table).where(table.c.tenant_id == self.tenant_id, table.c.processed_at < before)
        )
        return result.rowcount


class UsageRepository(Repository):
    """The tenant's measured usage, one row per window."""

    async def record(
        self,
        *,
        window_start: datetime,
        window_end: datetime,
        files: int,
        bytes: int,
        quota_bytes: int,
        plan: TenantPlan,
    ) -> UsageReport:
        values = {
            "tenant_id": self.tenant_id,
            "window_start": window_start,
            "window_end": window_end,
            "files": files,
            "bytes": bytes,
            "quota_bytes": quota_bytes,
            "plan": TenantPlan(plan),
        }
        columns = ["window_end", "files", "bytes", "quota_bytes", "plan"]
        await self._execute(_upsert(UsageReport, values, ["tenant_id", "window_start"], columns))
        report = await self._one(
            UsageReport,
            UsageReport.tenant_id == self.tenant_id,
            UsageReport.window_start == window_start,
        )
        assert report is not None
        return report

    async def latest(self) -> UsageReport | None:
        stmt = (
            select(UsageReport)
            .where(UsageReport.tenant_id == self.tenant_id)
            .order_by(UsageReport.window_start.desc())
            .limit(1)
            .execution_options(populate_existing=True)
        )
        return (await self.session.execute(stmt)).scalar_one_or_none()
