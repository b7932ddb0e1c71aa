"""Tenants, users, files, shares, file migrations, processed events, usage; row-level security.

Revision ID: 0001
Revises:
Create Date: 2026-11-28 15:00:00+00:00

Every table is isolated per tenant by row-level security, enabled and forced,
with one policy keyed on the transaction's `app.tenant_id` setting (set by
`ferry.db.tenant_session`). A missing setting makes `current_setting(..., true)`
NULL (or '' once the session has used it), which equals no tenant: a query with
no tenant sees nothing and can write nothing. The application role gets plain
DML on the tables and nothing else; every key is a business ID, so there are no
sequences to grant.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "public"
CURRENT_TENANT = "current_setting('app.tenant_id', true)"
# Children after parents; downgrade drops them in reverse.
TABLES = (
    "tenants",
    "users",
    "memberships",
    "files",
    "thumbnails",
    "shares",
    "file_migrations",
    "file_migration_items",
    "processed_events",
    "usage_reports",
)


def _app_role() -> str:
    return str(context.config.attributes.get("app_role", "ferry_app"))


def _check_app_role(role: str) -> None:
    """Refuse to grant to a role that is missing or would see through the policies."""
    op.execute(
        f"""
        DO $$
        DECLARE r pg_roles%ROWTYPE;
        BEGIN
            SELECT * INTO r FROM pg_roles WHERE rolname = '{role}';
            IF NOT FOUND THEN
                RAISE EXCEPTION 'application role "{role}" does not exist: create it '
                    '(LOGIN NOBYPASSRLS) or name another with -x app_role=...';
            END IF;
            IF r.rolsuper OR r.rolbypassrls THEN
                RAISE EXCEPTION 'application role "{role}" bypasses row-level security';
            END IF;
        END $$
        """
    )


def _isolate(table: str, column: str = "tenant_id") -> None:
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    # FORCE: the policies bind the table owner too, so only a superuser or a
    # BYPASSRLS role can ever read across tenants, never a mistaken connection.
    op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    op.execute(
        f"CREATE POLICY tenant_isolation ON {table} "
        f"USING ({column} = {CURRENT_TENANT}) WITH CHECK ({column} = {CURRENT_TENANT})"
    )


def _one_of(table: str, column: str, *values: str) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({listed})", name=op.f(f"ck_{table}_{column}"))


def _tenant_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["tenant_id"],
        ["tenants.id"],
        name=op.f(f"fk_{table}_tenant_id_tenants"),
        ondelete="CASCADE",
    )


def _timestamp(name: str, nullable: bool = False, now: bool = True) -> sa.Column[Any]:
    default = sa.text("now()") if now and not nullable else None
    return sa.Column(name, sa.DateTime(timezone=True), server_default=default, nullable=nullable)


def _text(name: str, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.Text(), nullable=nullable)


def _state(name: str = "state", nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.String(32), nullable=nullable)


def _bigint(name: str, nullable: bool = False, default: str | None = None) -> sa.Column[Any]:
    server_default = None if default is None else sa.text(default)
    return sa.Column(name, sa.BigInteger(), server_default=server_default, nullable=nullable)


def upgrade() -> None:
    role = _app_role()
    _check_app_role(role)

    op.create_table(
        "tenants",
        _text("id"),
        _text("name"),
        _state("plan"),
        _state("status"),
        _text("status_reason", nullable=True),
        _text("region"),
        _text("admin_email"),
        _state("storage_provider"),
        _text("storage_bucket"),
        _bigint("quota_bytes"),
        _bigint("quota_files"),
        _bigint("max_file_bytes"),
        sa.Column("over_quota", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
        sa.CheckConstraint("id ~ '^[a-z0-9][a-z0-9-]{1,62}$'", name=op.f("ck_tenants_slug")),
        _one_of("tenants", "plan", "free", "pro", "enterprise"),
        _one_of("tenants", "status", "provisioning", "active", "suspended", "deleting"),
        _one_of("tenants", "storage_provider", "local", "s3", "gcs", "azure"),
    )
    op.create_table(
        "users",
        _text("tenant_id"),
        _text("id"),
        _text("email", nullable=True),
        _text("display_name", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_users")),
        _tenant_fk("users"),
    )
    op.create_table(
        "memberships",
        _text("tenant_id"),
        _text("user_id"),
        _state("role"),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "user_id", name=op.f("pk_memberships")),
        _tenant_fk("memberships"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "user_id"],
            ["users.tenant_id", "users.id"],
            name=op.f("fk_memberships_tenant_id_users"),
            ondelete="CASCADE",
        ),
        _one_of("memberships", "role", "owner", "admin", "editor", "viewer"),
    )
    op.create_table(
        "files",
        _text("tenant_id"),
        _text("id"),
        _state("state"),
        _text("filename"),
        _text("declared_content_type"),
        _text("content_type", nullable=True),
        _bigint("size_bytes"),
        _text("sha256", nullable=True),
        _text("uploaded_by"),
        _text("storage_provider"),
        _text("storage_bucket"),
        _text("storage_key"),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "analysis",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        _state("reject_reason", nullable=True),
        _text("reject_detail", nullable=True),
        _text("signature", nullable=True),
        _text("upload_event_id", nullable=True),
        _timestamp("processed_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_files")),
        _tenant_fk("files"),
        _one_of("files", "state", "processing", "processed", "rejected", "quarantined"),
        _one_of(
            "files",
            "reject_reason",
            "infected",
            "invalid_type",
            "too_large",
            "corrupt",
            "quota_exceeded",
            "scan_failed",
        ),
    )
    op.create_index("ix_files_tenant_id_state", "files", ["tenant_id", "state"])
    op.create_table(
        "thumbnails",
        _text("tenant_id"),
        _text("file_id"),
        _text("name"),
        _text("key"),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        _text("content_type"),
        _bigint("size_bytes", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "file_id", "name", name=op.f("pk_thumbnails")),
        _tenant_fk("thumbnails"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "file_id"],
            ["files.tenant_id", "files.id"],
            name=op.f("fk_thumbnails_tenant_id_files"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "shares",
        _text("tenant_id"),
        _text("id"),
        _text("file_id"),
        _text("shared_by"),
        _state("grantee_type"),
        _text("grantee", nullable=True),
        _state("permission"),
        _state("status"),
        _timestamp("expires_at", nullable=True),
        sa.Column("notify", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        _text("message", nullable=True),
        _text("revoked_by", nullable=True),
        _timestamp("ended_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_shares")),
        _tenant_fk("shares"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "file_id"],
            ["files.tenant_id", "files.id"],
            name=op.f("fk_shares_tenant_id_files"),
            ondelete="CASCADE",
        ),
        _one_of("shares", "grantee_type", "user", "email", "tenant", "public_link"),
        _one_of("shares", "permission", "view", "download", "edit"),
        _one_of("shares", "status", "active", "revoked", "expired"),
    )
    op.create_index("ix_shares_tenant_id_file_id", "shares", ["tenant_id", "file_id"])
    op.create_table(
        "file_migrations",
        _text("tenant_id"),
        _text("id"),
        _state("state"),
        _text("source_provider"),
        _text("source_bucket"),
        _text("target_provider"),
        _text("target_bucket"),
        _text("prefix", nullable=True),
        sa.Column("batch_size", sa.Integer(), nullable=False),
        sa.Column("delete_source", sa.Boolean(), nullable=False),
        _bigint("files_moved", default="0"),
        _bigint("bytes_moved", default="0"),
        _bigint("files_failed", default="0"),
        _text("detail", nullable=True),
        _timestamp("completed_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("tenant_id", "id", name=op.f("pk_file_migrations")),
        _tenant_fk("file_migrations"),
        _one_of("file_migrations", "state", "running", "completed", "failed", "rolled_back"),
    )
    op.create_table(
        "file_migration_items",
        _text("tenant_id"),
        _text("migration_id"),
        _text("source_key"),
        _text("target_key"),
        _text("file_id", nullable=True),
        _state("state"),
        _bigint("size_bytes", nullable=True),
        _text("sha256", nullable=True),
        _text("detail", nullable=True),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "migration_id", "source_key", name=op.f("pk_file_migration_items")
        ),
        _tenant_fk("file_migration_items"),
        sa.ForeignKeyConstraint(
            ["tenant_id", "migration_id"],
            ["file_migrations.tenant_id", "file_migrations.id"],
            name=op.f("fk_file_migration_items_tenant_id_file_migrations"),
            ondelete="CASCADE",
        ),
        _one_of(
            "file_migration_items",
            "state",
            "pending",
            "copied",
            "verified",
            "failed",
            "rolled_back",
        ),
    )
    # No foreign key to tenants: an event may precede its tenant, and the rows
    # outlive the tenant so a redelivered creation event cannot resurrect it.
    op.create_table(
        "processed_events",
        _text("tenant_id"),
        _text("consumer"),
        _text("event_id"),
        _text("event_type", nullable=True),
        _timestamp("processed_at"),
        sa.PrimaryKeyConstraint(
            "tenant_id", "consumer", "event_id", name=op.f("pk_processed_events")
        ),
    )
    op.create_index(
        "ix_processed_events_tenant_id_processed_at",
        "processed_events",
        ["tenant_id", "processed_at"],
    )
    op.create_table(
        "usage_reports",
        _text("tenant_id"),
        _timestamp("window_start", now=False),
        _timestamp("window_end", now=False),
        _bigint("files"),
        _bigint("bytes"),
        _bigint("quota_bytes"),
        _state("plan"),
        _timestamp("recorded_at"),
        sa.PrimaryKeyConstraint("tenant_id", "window_start", name=op.f("pk_usage_reports")),
        _tenant_fk("usage_reports"),
        _one_of("usage_reports", "plan", "free", "pro", "enterprise"),
    )

    _isolate("tenants", column="id")
    for table in TABLES[1:]:
        _isolate(table)
    op.execute(f'GRANT USAGE ON SCHEMA {SCHEMA} TO "{role}"')
    for table in TABLES:
        op.execute(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO "{role}"')


def downgrade() -> None:
    # Dropping a table drops its policies and grants with it.
    for table in reversed(TABLES):
        op.drop_table(table)
    role = _app_role()
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
                REVOKE USAGE ON SCHEMA {SCHEMA} FROM "{role}";
            END IF;
        END $$
        """
    )
