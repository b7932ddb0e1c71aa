"""Tenant isolation in Postgres itself: forced row-level security, seen through the app's role."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any, cast

import pytest
from sqlalchemy import CursorResult, Table, func, insert, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from ferry.contracts.storage import StorageRef
from ferry.contracts.workflows import OutdatedFile
from ferry.db import TENANT_TABLES, InvalidTenantId, TenantScope, tenant_scope, tenant_session
from ferry.db.models import Base
from ferry.db.verdicts import VerdictBook, outdated_files

if TYPE_CHECKING:
    from db_fixtures import Seed

pytest_plugins = ["db_fixtures"]
pytestmark = pytest.mark.stack


@pytest.fixture
def tenant() -> str:
    """A bare tenant ID (the shared `tenant` fixture provisions one; these tests do it)."""
    return f"t-{uuid.uuid4().hex[:12]}"


RLS_VIOLATION = "violates row-level security policy"

POLICIES_SQL = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       p.polname, p.polcmd::text AS polcmd, p.polpermissive,
       pg_get_expr(p.polqual, p.polrelid) AS using_expr,
       pg_get_expr(p.polwithcheck, p.polrelid) AS check_expr
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_policy p ON p.polrelid = c.oid
WHERE n.nspname = current_schema() AND c.relname = ANY(:tables)
"""


def _key_column(table: str) -> str:
    return "id" if table == "tenants" else "tenant_id"


def _table(name: str) -> Table:
    table = Base.metadata.tables.get(name)
    assert table is not None, f"table {name} is in the database but not in ferry.db.models"
    return table


async def test_every_tenant_table_has_a_forced_policy(
    admin_engine: AsyncEngine, tenant_tables_in_catalog: list[str]
) -> None:
    """Every table with a tenant_id (from the catalog) has RLS enabled, forced, and a policy."""
    tables = ["tenants", *tenant_tables_in_catalog]
    assert set(TENANT_TABLES) <= set(tables), "the catalog lacks tables the models define"
    async with admin_engine.connect() as conn:
        rows = (await conn.execute(text(POLICIES_SQL), {"tables": tables})).all()
    with_policy = set()
    for row in rows:
        assert row.relrowsecurity, f"{row.relname}: row-level security is not enabled"
        assert row.relforcerowsecurity, f"{row.relname}: row-level security is not forced"
        if row.polname is None:
            continue
        # '*' is ALL: the one policy guards SELECT, INSERT, UPDATE and DELETE alike.
        assert (row.polcmd, row.polpermissive) == ("*", True), row
        expected = f"({_key_column(row.relname)} = current_setting('app.tenant_id'::text, true))"
        assert (row.using_expr, row.check_expr) == (expected, expected), row
        with_policy.add(row.relname)
    assert not set(tables) - with_policy, "tables without a tenant policy"


async def test_app_role_neither_owns_tables_nor_bypasses_rls(
    app_engine: AsyncEngine, admin_engine: AsyncEngine
) -> None:
    async with app_engine.connect() as conn:
        role = (await conn.execute(text("SELECT current_user"))).scalar_one()
    async with admin_engine.connect() as conn:
        attrs = (
            await conn.execute(
                text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
            )
        ).one()
        owned = await conn.scalar(
            text("SELECT count(*) FROM pg_class WHERE relowner = to_regrole(:r)"), {"r": role}
        )
    assert (attrs.rolsuper, attrs.rolbypassrls) == (False, False)
    assert owned == 0


async def _secret_upload(db: TenantScope, file_id: str) -> None:
    """A file of the scope's tenant, processing, whose name no look across tenants may see."""
    await db.files.record_processing(
        file_id,
        filename="secret-plans.pdf",
        declared_content_type="application/pdf",
        size_bytes=1,
        uploaded_by=f"owner@{db.tenant_id}",
        location=StorageRef("local", "ferry-ingest", f"tenants/{db.tenant_id}/uploads/s/p"),
    )


async def test_the_one_look_across_tenants_answers_identifiers_and_times_only(
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    app_sessionmaker: async_sessionmaker[AsyncSession],
    seed: Seed,
) -> None:
    """The reconciliation's function (migration 0003) is the only way across tenants:
    it returns no column of content, PUBLIC may not call it, and it changes nothing."""
    async with admin_engine.connect() as conn:
        function = (
            await conn.execute(
                text(
                    "SELECT p.prosecdef, p.provolatile::text AS provolatile, p.proretset,"
                    " pg_get_function_result(p.oid) AS result,"
                    " has_function_privilege('public', p.oid, 'EXECUTE') AS public_may"
                    " FROM pg_proc p WHERE p.proname = 'ferry_reconciliation'"
                )
            )
        ).one()
    assert function.prosecdef and function.proretset and not function.public_may
    assert function.provolatile == "s"  # STABLE: it cannot write
    assert function.result == (
        "TABLE(kind text, tenant_id text, object_id text,"
        " since timestamp with time zone, total bigint)"
    )
    one, other = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    for tenant_id in (one, other):
        await seed(tenant_id)
        async with tenant_scope(app_sessionmaker, tenant_id) as db:
            await _secret_upload(db, f"{tenant_id}-stuck")
    pair = {"one": one, "other": other}
    async with admin_engine.connect() as conn:
        processing = set(
            (
                await conn.execute(
                    text(
                        "SELECT tenant_id, id FROM files"
                        " WHERE state = 'processing' AND tenant_id IN (:one, :other)"
                    ),
                    pair,
                )
            ).all()
        )
    async with app_engine.connect() as conn:
        overdue = set(
            (
                await conn.execute(
                    text(
                        "SELECT tenant_id, object_id FROM ferry_reconciliation(0, 0, 0, 10,"
                        " ARRAY[:one, :other]) WHERE kind = 'upload_overdue'"
                    ),
                    pair,
                )
            ).all()
        )
        # Both tenants' stuck uploads, by ID, through the function...
        assert processing and overdue == processing
        # ...and nothing of either through the tables, with no tenant set.
        assert await conn.scalar(text("SELECT count(*) FROM files")) == 0


async def test_the_rescans_look_across_tenants_answers_identifiers_hashes_and_times_only(
    app_engine: AsyncEngine,
    admin_engine: AsyncEngine,
    app_sessionmaker: async_sessionmaker[AsyncSession],
    seed: Seed,
) -> None:
    """The rescan's function (migration 0004) lists processed files of every tenant whose
    bytes have no verdict under a version, newest first, by ID and hash; the verdicts
    themselves hold no tenant, no file and no name."""
    async with admin_engine.connect() as conn:
        function = (
            await conn.execute(
                text(
                    "SELECT p.prosecdef, p.provolatile::text AS provolatile,"
                    " pg_get_function_result(p.oid) AS result,"
                    " has_function_privilege('public', p.oid, 'EXECUTE') AS public_may"
                    " FROM pg_proc p WHERE p.proname = 'ferry_rescan_candidates'"
                )
            )
        ).one()
        columns = (
            await conn.execute(
                text(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_name = 'scan_verdicts' ORDER BY ordinal_position"
                )
            )
        ).scalars()
        assert list(columns) == [
            "sha256", "engine", "signature_version", "clean", "signature", "scanned_at",
        ]  # fmt: skip
    assert function.prosecdef and not function.public_may and function.provolatile == "s"
    assert function.result == (
        "TABLE(tenant_id text, file_id text, processed_at timestamp with time zone,"
        " sha256 text, verdict_at timestamp with time zone)"
    )
    one, other = f"t-{uuid.uuid4().hex[:12]}", f"t-{uuid.uuid4().hex[:12]}"
    hashes = {one: "a" * 64, other: "b" * 64}
    for tenant_id in (one, other):
        await seed(tenant_id)
        async with tenant_scope(app_sessionmaker, tenant_id) as db:
            await _secret_upload(db, f"{tenant_id}-old")
            await db.files.record_processed(
                f"{tenant_id}-old",
                sha256=hashes[tenant_id],
                size_bytes=1,
                content_type="application/pdf",
                location=StorageRef("local", f"ferry-{tenant_id}", "files/x/original"),
                metadata={},
                analysis={},
            )
    book = VerdictBook(app_engine)
    # One tenant's bytes were judged under version 7, the other's under 6 (the seeded
    # files' bytes under none: listed too).
    await book.record(hashes[one], engine="1.4.6", signature_version=7, clean=True)
    await book.record(hashes[other], engine="1.4.6", signature_version=6, clean=True)

    async def listed(version: int, **page: Any) -> list[OutdatedFile]:
        found = await outdated_files(app_engine, version, only_tenants=[one, other], **page)
        return [f for f in found if f.file_id.endswith("-old")]

    outdated = await listed(7)
    assert [(f.tenant_id, f.file_id, f.sha256) for f in outdated] == [
        (other, f"{other}-old", hashes[other])
    ]
    assert outdated[0].verdict_at is not None
    both = await listed(8, limit=100)
    assert {f.tenant_id for f in both} == {one, other}
    everything = await outdated_files(app_engine, 8, only_tenants=[one, other])
    newest_first = sorted(everything, key=lambda f: (f.processed_at, f.tenant_id), reverse=True)
    assert everything == newest_first
    # Page by page, each after the last of the one before: the same files, once each.
    pages: list[OutdatedFile] = []
    while page := await outdated_files(
        app_engine, 8, after=pages[-1].cursor if pages else None, only_tenants=[one, other], limit=1
    ):
        pages.extend(page)
    assert pages == everything


async def test_each_tenant_sees_only_its_own_rows(
    app_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_tables_in_catalog: list[str],
    seed: Seed,
    tenant: str,
    other_tenant: str,
) -> None:
    """Both tenants have rows in every table; each sees exactly its own."""
    await seed(tenant)
    await seed(other_tenant)
    for current in (tenant, other_tenant):
        async with tenant_session(app_sessionmaker, current) as session:
            for name in ["tenants", *tenant_tables_in_catalog]:
                column = _table(name).c[_key_column(name)]
                seen = (await session.execute(select(column).distinct())).scalars().all()
                assert seen == [current], f"{name} under {current} shows tenants {seen}"


async def test_repositories_do_not_find_another_tenants_rows(
    app_sessionmaker: async_sessionmaker[AsyncSession], seed: Seed, tenant: str, other_tenant: str
) -> None:
    await seed(tenant)
    theirs = await seed(other_tenant)
    async with tenant_scope(app_sessionmaker, tenant) as db:
        assert await db.files.get(theirs.file_id) is None
        assert not await db.file_belongs(theirs.file_id)
        assert await db.shares.get(theirs.share_id) is None
        assert await db.migrations.get(theirs.migration_id) is None
        assert await db.users.role_of(theirs.owner) is None


async def test_writes_with_a_foreign_tenant_id_are_refused(
    app_sessionmaker: async_sessionmaker[AsyncSession],
    tenant_tables_in_catalog: list[str],
    seed: Seed,
    tenant: str,
    other_tenant: str,
) -> None:
    """In A's scope: a copy of A's row as B's, or A's row moved to B, is refused; B's is unseen."""
    await seed(tenant)
    await seed(other_tenant)
    for name in ["tenants", *tenant_tables_in_catalog]:
        table, column = _table(name), _key_column(name)
        async with tenant_session(app_sessionmaker, tenant) as session:
            row = dict((await session.execute(select(table).limit(1))).mappings().one())
        with pytest.raises(DBAPIError, match=RLS_VIOLATION):
            async with tenant_session(app_sessionmaker, tenant) as session:
                await session.execute(insert(table).values({**row, column: other_tenant}))
        with pytest.raises(DBAPIError, match=RLS_VIOLATION):
            async with tenant_session(app_sessionmaker, tenant) as session:
                await session.execute(update(table).values({column: other_tenant}))
        async with tenant_session(app_sessionmaker, tenant) as session:
            moved = await session.execute(
                update(table).where(table.c[column] == other_tenant).values({column: tenant})
            )
            assert cast(CursorResult[Any], moved).rowcount == 0, f"{name}: B's rows seen by A"


async def test_no_tenant_set_sees_nothing_and_writes_nothing(
    app_engine: AsyncEngine, tenant_tables_in_catalog: list[str], seed: Seed, tenant: str
) -> None:
    await seed(tenant)
    async with app_engine.connect() as conn:
        for name in ["tenants", *tenant_tables_in_catalog]:
            count = await conn.scalar(select(func.count()).select_from(_table(name)))
            assert count == 0, f"{name} shows rows with no tenant set"
        await conn.rollback()
        with pytest.raises(DBAPIError, match=RLS_VIOLATION):
            await conn.execute(
                insert(_table("processed_events")).values(
                    tenant_id=tenant, consumer="c", event_id="e"
                )
            )
        await conn.rollback()


async def test_the_tenant_does_not_outlive_its_transaction(
    app_engine: AsyncEngine, seed: Seed, tenant: str
) -> None:
    """On one pooled connection, the transaction after a tenant's sees nothing."""
    await seed(tenant)
    files = select(func.count()).select_from(_table("files"))
    async with app_engine.connect() as conn:
        async with conn.begin():
            await conn.execute(text("SELECT set_config('app.tenant_id', :t, true)"), {"t": tenant})
            assert await conn.scalar(files) == 2
        async with conn.begin():
            assert await conn.scalar(files) == 0


@pytest.mark.parametrize("tenant_id", ["", "A", "x", "bad id", "t'; SET ROLE ferry; --", "-t"])
async def test_tenant_ids_must_be_slugs(
    app_sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> None:
    with pytest.raises(InvalidTenantId):
        async with tenant_session(app_sessionmaker, tenant_id):
            pass
