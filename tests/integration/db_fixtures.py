"""Database fixtures, loaded by the `test_db_*` modules as a pytest plugin.

`pytest_plugins = ["db_fixtures"]` in a test module; tests reach the helpers
through fixtures (`seed`, `snapshot`, `tenant_tables`) and import names from here
only for type checking, so pytest can rewrite this module's asserts.

The shared `ferry` database is migrated to head once per session (idempotent),
so any test may use the tables; each test then works in tenants of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from ferry.config import Settings
from ferry.contracts.enums import (
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    RejectionReason,
    SharePermission,
    StorageProvider,
    TenantPlan,
    TenantStatus,
)
from ferry.contracts.migrations import MigrationItem
from ferry.contracts.storage import StorageRef, Thumbnail
from ferry.db import create_engine, create_sessionmaker, tenant_scope
from ferry.db.migrate import alembic_config, upgrade
from ferry.db.models import Base

# Every table with a tenant_id column, and how each is isolated, from the catalog.
TENANT_TABLES_SQL = """
SELECT c.relname
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid
WHERE n.nspname = current_schema()
  AND c.relkind IN ('r', 'p')
  AND a.attname = 'tenant_id'
  AND NOT a.attisdropped
ORDER BY c.relname
"""


def new_tenant_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def admin_url(settings: Settings) -> str:
    return settings.database_admin_url.get_secret_value()


def app_url(settings: Settings) -> str:
    return settings.database_url.get_secret_value()


async def migrate_to_head(url: str, **options: Any) -> None:
    """`upgrade head` on `url`, in a thread: Alembic's env runs its own event loop."""
    config = alembic_config(url=url, configure_logging=False, **options)
    await asyncio.to_thread(upgrade, config, "head")


async def tenant_tables(conn: AsyncConnection) -> list[str]:
    """Names of the tables with a `tenant_id` column in the current schema."""
    return list((await conn.execute(text(TENANT_TABLES_SQL))).scalars())


def model_table(name: str) -> Table:
    table = Base.metadata.tables.get(name)
    assert table is not None, f"table {name} is in the database but not in ferry.db.models"
    return table


@pytest.fixture(scope="session")
async def migrated_database(settings: Settings) -> None:
    """The shared database at head, so every test can use the tables."""
    await migrate_to_head(admin_url(settings))


@pytest.fixture(scope="session")
async def admin_engine(settings: Settings, migrated_database: None) -> AsyncIterator[AsyncEngine]:
    """The owner (a superuser locally): sees every tenant's rows, for assertions only."""
    engine = create_engine(admin_url(settings), pool_size=2)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def app_engine(settings: Settings, migrated_database: None) -> AsyncIterator[AsyncEngine]:
    """The application's role: subject to row-level security."""
    engine = create_engine(app_url(settings), pool_size=4)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def app_sessionmaker(app_engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(app_engine)


@pytest.fixture(scope="session")
async def tenant_tables_in_catalog(admin_engine: AsyncEngine) -> list[str]:
    """Every table with a `tenant_id` column, as the database (not the models) says."""
    async with admin_engine.connect() as conn:
        return await tenant_tables(conn)


@pytest.fixture
def other_tenant() -> str:
    """A second tenant of the test's own, beside `tenant`."""
    return new_tenant_id()


Snapshot = Callable[[str], Awaitable[dict[str, list[tuple[Any, ...]]]]]
Seed = Callable[[str], Awaitable["Seeded"]]


@pytest.fixture(scope="session")
def snapshot_of(admin_engine: AsyncEngine) -> Snapshot:
    """`await snapshot_of(tenant_id)`: all the tenant's rows, by table."""
    return lambda tenant_id: snapshot(admin_engine, tenant_id)


@pytest.fixture(scope="session")
def seed(app_sessionmaker: async_sessionmaker[AsyncSession]) -> Seed:
    """`await seed(tenant_id)`: a tenant with rows in every table, through the app's role."""
    return lambda tenant_id: seed_tenant(app_sessionmaker, tenant_id)


async def snapshot(engine: AsyncEngine, tenant_id: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tenant in every table, ordered, as the owner sees them."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for name in ["tenants", *await tenant_tables(conn)]:
            table = model_table(name)
            column = table.c.id if name == "tenants" else table.c.tenant_id
            stmt = select(table).where(column == tenant_id).order_by(*table.primary_key.columns)
            rows[name] = [tuple(row) for row in (await conn.execute(stmt)).all()]
    return rows


@dataclass
class Seeded:
    """IDs of what `seed_tenant` created."""

    tenant_id: str
    owner: str
    viewer: str
    file_id: str
    rejected_file_id: str
    share_id: str
    migration_id: str


async def seed_tenant(sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str) -> Seeded:
    """A tenant with at least one row in every tenant-scoped table, through its repositories."""
    seeded = Seeded(
        tenant_id=tenant_id,
        owner=f"owner@{tenant_id}",
        viewer=f"viewer@{tenant_id}",
        file_id=f"{tenant_id}-file",
        rejected_file_id=f"{tenant_id}-bad",
        share_id=f"{tenant_id}-share",
        migration_id=f"{tenant_id}-migration",
    )
    bucket = f"ferry-{tenant_id}"
    original = StorageRef("local", bucket, f"files/{seeded.file_id}/original")
    async with tenant_scope(sessionmaker, tenant_id) as db:
        await db.tenants.create(
            name=f"Tenant {tenant_id}",
            plan=TenantPlan.FREE,
            region="eu-west-1",
            admin_email=seeded.owner,
            storage_provider=StorageProvider.LOCAL,
            storage_bucket=bucket,
        )
        await db.tenants.set_status(TenantStatus.ACTIVE)
        await db.users.add_member(seeded.owner, MemberRole.OWNER, email=seeded.owner)
        await db.users.add_member(seeded.viewer, MemberRole.VIEWER, email=seeded.viewer)
        await db.files.record_processing(
            seeded.file_id,
            filename="photo.jpg",
            declared_content_type="image/jpeg",
            size_bytes=1234,
            uploaded_by=seeded.owner,
            location=StorageRef(
                "local", "ferry-ingest", f"tenants/{tenant_id}/uploads/x/photo.jpg"
            ),
        )
        await db.files.record_processed(
            seeded.file_id,
            sha256="ab" * 32,
            size_bytes=1234,
            content_type="image/jpeg",
            location=original,
            metadata={"filename": "photo.jpg"},
            analysis={"moderation": "safe"},
            thumbnails=[
                Thumbnail("256.webp", f"files/{seeded.file_id}/256.webp", 256, 192, "image/webp")
            ],
        )
        await db.files.record_processing(
            seeded.rejected_file_id,
            filename="eicar.jpg",
            declared_content_type="image/jpeg",
            size_bytes=68,
            uploaded_by=seeded.owner,
            location=StorageRef(
                "local", "ferry-ingest", f"tenants/{tenant_id}/uploads/y/eicar.jpg"
            ),
        )
        await db.files.record_rejected(
            seeded.rejected_file_id,
            reason=RejectionReason.INFECTED,
            detail="clamd found Eicar-Signature",
            signature="Eicar-Signature",
            quarantined=True,
        )
        await db.shares.record(
            seeded.share_id,
            file_id=seeded.file_id,
            shared_by=seeded.owner,
            grantee_type=GranteeType.USER,
            grantee=seeded.viewer,
            permission=SharePermission.EDIT,
            expires_at=datetime.now(UTC) + timedelta(days=1),
        )
        await db.migrations.start(
            seeded.migration_id, source=("local", bucket), target=("s3", bucket)
        )
        await db.migrations.record_items(
            seeded.migration_id,
            [MigrationItem(original.key, MigrationItemState.PENDING, file_id=seeded.file_id)],
        )
        await db.events.mark("ferry-bridge", str(uuid.uuid4()), "file.uploaded")
        now = datetime.now(UTC).replace(microsecond=0)
        await db.usage.record(
            window_start=now - timedelta(hours=1),
            window_end=now,
            files=1,
            bytes=1234,
            quota_bytes=5 * 1024**3,
            plan=TenantPlan.FREE,
        )
        file = await db.files.require(seeded.file_id)
        assert file.state == FileState.PROCESSED
    return seeded
