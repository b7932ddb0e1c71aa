"""The tables, as SQLAlchemy 2 typed models.

Every table but `tenants` carries a `tenant_id` and is isolated by row-level
security on it (the policies live in the migrations); `tenants` is isolated by
its own `id`. Keys are business IDs (the contract's slugs and IDs, as text), and
every reference to a tenant's row includes the `tenant_id`, so a row can never
point at another tenant's row even by mistake.

`processed_events` is tenant-scoped too: the bridge knows each event's tenant.
Its key is (`tenant_id`, `consumer`, `event_id`): deduplication by
(`consumer`, `event_id`) within the tenant, so one tenant's event IDs can never
suppress another's, and an upsert never conflicts with a row that row-level
security hides. It has no foreign key to `tenants`: an event may precede its
tenant (`tenant.creation_requested`), and its rows outlive the tenant's
deletion so a redelivered event cannot resurrect it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

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

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{1,62}$"


def _enum(cls: type[StrEnum], name: str) -> Enum:
    """A text column limited to the enum's values by a CHECK constraint.

    Not a Postgres ENUM type: adding a value is then a constraint change, and
    dropping the tables leaves no types behind.
    """
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, str]: JSONB,
        str: Text,
        int: BigInteger,
    }


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


def _tenant_fk() -> ForeignKey:
    return ForeignKey("tenants.id", ondelete="CASCADE")


class Tenant(_Timestamps, Base):
    """A customer organisation: its plan, state, quotas and storage."""

    __tablename__ = "tenants"
    __table_args__ = (CheckConstraint(f"id ~ '{SLUG_PATTERN}'", name="slug"),)

    id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str]
    plan: Mapped[TenantPlan] = mapped_column(_enum(TenantPlan, "plan"))
    status: Mapped[TenantStatus] = mapped_column(_enum(TenantStatus, "status"))
    status_reason: Mapped[str | None]
    region: Mapped[str]
    admin_email: Mapped[str]
    storage_provider: Mapped[StorageProvider] = mapped_column(
        _enum(StorageProvider, "storage_provider")
    )
    storage_bucket: Mapped[str]
    quota_bytes: Mapped[int]
    quota_files: Mapped[int]
    max_file_bytes: Mapped[int]
    # Set by the monitoring workflow; new uploads are refused while it is true.
    over_quota: Mapped[bool] = mapped_column(server_default=text("false"))


class User(_Timestamps, Base):
    """A user as one tenant knows them.

    Users are per tenant: a global users table could not be isolated by
    row-level security without leaking one tenant's people to another. A user
    row outlives its membership so uploads and shares stay attributable.
    """

    __tablename__ = "users"

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(primary_key=True)
    email: Mapped[str | None]
    display_name: Mapped[str | None]


class Membership(_Timestamps, Base):
    """A user's role in a tenant; no row means not a member."""

    __tablename__ = "memberships"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "user_id"], ["users.tenant_id", "users.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    user_id: Mapped[str] = mapped_column(primary_key=True)
    role: Mapped[MemberRole] = mapped_column(_enum(MemberRole, "role"))


class File(_Timestamps, Base):
    """An uploaded file and what processing found out about it."""

    __tablename__ = "files"
    __table_args__ = (
        Index("ix_files_tenant_id_state", "tenant_id", "state"),
        # The rescan's order: processed files, newest first (migration 0004).
        Index(
            "ix_files_processed_at",
            text("processed_at DESC"),
            postgresql_where=text("state = 'processed'"),
        ),
    )

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[FileState] = mapped_column(_enum(FileState, "state"))
    filename: Mapped[str]
    declared_content_type: Mapped[str]
    content_type: Mapped[str | None]
    size_bytes: Mapped[int]
    sha256: Mapped[str | None]
    uploaded_by: Mapped[str]
    storage_provider: Mapped[str]
    storage_bucket: Mapped[str]
    storage_key: Mapped[str]
    file_metadata: Mapped[dict[str, str]] = mapped_column(
        "metadata", server_default=text("'{}'::jsonb")
    )
    analysis: Mapped[dict[str, str]] = mapped_column(server_default=text("'{}'::jsonb"))
    reject_reason: Mapped[RejectionReason | None] = mapped_column(
        _enum(RejectionReason, "reject_reason")
    )
    reject_detail: Mapped[str | None]
    signature: Mapped[str | None]
    upload_event_id: Mapped[str | None]
    processed_at: Mapped[datetime | None]


class Thumbnail(_Timestamps, Base):
    """A rendition of a processed image, stored beside the original."""

    __tablename__ = "thumbnails"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "file_id"], ["files.tenant_id", "files.id"], ondelete="CASCADE"
        ),
    )

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    file_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(primary_key=True)
    key: Mapped[str]
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str]
    size_bytes: Mapped[int | None]


class Share(_Timestamps, Base):
    """A grant of access to a file. Signed URLs are bearer secrets and are not stored."""

    __tablename__ = "shares"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "file_id"], ["files.tenant_id", "files.id"], ondelete="CASCADE"
        ),
        Index("ix_shares_tenant_id_file_id", "tenant_id", "file_id"),
    )

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(primary_key=True)
    file_id: Mapped[str]
    shared_by: Mapped[str]
    grantee_type: Mapped[GranteeType] = mapped_column(_enum(GranteeType, "grantee_type"))
    grantee: Mapped[str | None]
    permission: Mapped[SharePermission] = mapped_column(_enum(SharePermission, "permission"))
    status: Mapped[ShareStatus] = mapped_column(_enum(ShareStatus, "status"))
    expires_at: Mapped[datetime | None]
    notify: Mapped[bool] = mapped_column(server_default=text("false"))
    message: Mapped[str | None]
    revoked_by: Mapped[str | None]
    ended_at: Mapped[datetime | None]


class FileMigration(_Timestamps, Base):
    """A copy of a tenant's objects from one provider and bucket to another."""

    __tablename__ = "file_migrations"

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    id: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[MigrationState] = mapped_column(_enum(MigrationState, "state"))
    source_provider: Mapped[str]
    source_bucket: Mapped[str]
    target_provider: Mapped[str]
    target_bucket: Mapped[str]
    prefix: Mapped[str | None]
    batch_size: Mapped[int] = mapped_column(Integer)
    delete_source: Mapped[bool]
    files_moved: Mapped[int] = mapped_column(server_default=text("0"))
    bytes_moved: Mapped[int] = mapped_column(server_default=text("0"))
    files_failed: Mapped[int] = mapped_column(server_default=text("0"))
    detail: Mapped[str | None]
    completed_at: Mapped[datetime | None]


class FileMigrationItem(Base):
    """Progress of one object of a migration, keyed by its source key."""

    __tablename__ = "file_migration_items"
    __table_args__ = (
        ForeignKeyConstraint(
            ["tenant_id", "migration_id"],
            ["file_migrations.tenant_id", "file_migrations.id"],
            ondelete="CASCADE",
        ),
    )

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    migration_id: Mapped[str] = mapped_column(primary_key=True)
    source_key: Mapped[str] = mapped_column(primary_key=True)
    target_key: Mapped[str]
    file_id: Mapped[str | None]
    state: Mapped[MigrationItemState] = mapped_column(_enum(MigrationItemState, "state"))
    size_bytes: Mapped[int | None]
    sha256: Mapped[str | None]
    detail: Mapped[str | None]
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class ProcessedEvent(Base):
    """An inbound event a consumer has handled, for deduplication beyond Temporal's retention."""

    __tablename__ = "processed_events"
    __table_args__ = (
        Index("ix_processed_events_tenant_id_processed_at", "tenant_id", "processed_at"),
    )

    tenant_id: Mapped[str] = mapped_column(primary_key=True)
    consumer: Mapped[str] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(primary_key=True)
    event_type: Mapped[str | None]
    processed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class UsageReport(Base):
    """A tenant's measured usage over one window."""

    __tablename__ = "usage_reports"

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    window_end: Mapped[datetime]
    files: Mapped[int]
    bytes: Mapped[int]
    quota_bytes: Mapped[int]
    plan: Mapped[TenantPlan] = mapped_column(_enum(TenantPlan, "plan"))
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())


class TenantUsage(Base):
    """A tenant's processed files and their bytes, as running totals: a trigger on
    `files` moves them with every change in the same transaction (migration 0005)."""

    __tablename__ = "tenant_usage"

    tenant_id: Mapped[str] = mapped_column(_tenant_fk(), primary_key=True)
    files: Mapped[int] = mapped_column(server_default=text("0"))
    bytes: Mapped[int] = mapped_column(server_default=text("0"))


class ScanVerdict(Base):
    """clamd's latest verdict on some bytes, and the signature version that gave it.

    Shared by every tenant and so without row-level security: it holds hashes and
    verdicts only, never a file, a name or a tenant (migration 0004).
    """

    __tablename__ = "scan_verdicts"
    __table_args__ = (
        CheckConstraint("sha256 ~ '^[0-9a-f]{64}$'", name="sha256"),
        CheckConstraint("clean = (signature IS NULL)", name="signature"),
    )

    sha256: Mapped[str] = mapped_column(primary_key=True)
    engine: Mapped[str]
    signature_version: Mapped[int | None] = mapped_column(Integer)
    clean: Mapped[bool]
    signature: Mapped[str | None]
    scanned_at: Mapped[datetime] = mapped_column(server_default=func.now())


TENANT_TABLES: tuple[str, ...] = tuple(
    table.name for table in Base.metadata.sorted_tables if "tenant_id" in table.c
)
"""Every table isolated by its `tenant_id` column (all but `tenants`)."""
