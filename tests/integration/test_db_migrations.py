"""Migrations on scratch databases: upgrade, downgrade to base, upgrade again; models agree."""

from __future__ import annotations

import argparse
import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Enum, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from typer.testing import CliRunner

from ferry.config import Settings
from ferry.contracts.enums import MemberRole, StorageProvider, TenantPlan
from ferry.db import create_engine, create_sessionmaker, tenant_scope
from ferry.db.cli import db_app
from ferry.db.migrate import alembic_config, upgrade
from ferry.db.models import Base

pytest_plugins = ["db_fixtures"]
pytestmark = pytest.mark.stack

TABLES = {table.name for table in Base.metadata.sorted_tables}


def _with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture
async def scratch_url(settings: Settings) -> AsyncIterator[str]:
    """An empty database of the test's own, created and dropped by the owner."""
    admin_url = settings.database_admin_url.get_secret_value()
    name = f"ferry_migtest_{uuid.uuid4().hex[:12]}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(admin_url, name)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def _query(url: str, sql: str, **params: Any) -> list[Any]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return list((await conn.execute(text(sql), params)).all())
    finally:
        await engine.dispose()


async def _schema(url: str) -> tuple[set[str], int, set[str], list[str]]:
    """Tables, policies, Ferry's functions and the recorded revision of the public schema."""
    tables = {
        row.tablename
        for row in await _query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    policies = len(await _query(url, "SELECT 1 FROM pg_policies WHERE schemaname = 'public'"))
    functions = {
        row.proname
        for row in await _query(url, "SELECT proname FROM pg_proc WHERE proname LIKE 'ferry_%'")
    }
    revision = []
    if "alembic_version" in tables:
        revision = [row.version_num for row in await _query(url, "SELECT * FROM alembic_version")]
    return tables, policies, functions, revision


async def _cli(*args: str) -> None:
    # In a thread: Alembic's env.py runs its own event loop.
    result = await asyncio.to_thread(CliRunner().invoke, db_app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)


async def test_upgrade_downgrade_base_and_upgrade_again_through_the_cli(scratch_url: str) -> None:
    ledger = {"ferry_existing_tenants", "ferry_mark_processed"}
    reconciliation = ledger | {"ferry_reconciliation"}
    verdicts = reconciliation | {"ferry_rescan_candidates"}
    everything = verdicts | {"ferry_count_usage"}
    # Every table has one policy but the verdicts (hashes only, shared by all tenants).
    before_totals = TABLES - {"tenant_usage"}
    before_verdicts = before_totals - {"scan_verdicts"}
    policies = len(before_verdicts)
    at_head = (TABLES | {"alembic_version"}, policies + 1, everything, ["0005"])
    at_fourth = (before_totals | {"alembic_version"}, policies, verdicts, ["0004"])
    at_third = (before_verdicts | {"alembic_version"}, policies, reconciliation, ["0003"])
    at_second = (before_verdicts | {"alembic_version"}, policies, ledger, ["0002"])
    at_first = (before_verdicts | {"alembic_version"}, policies, set(), ["0001"])
    at_base: tuple[set[str], int, set[str], list[str]] = ({"alembic_version"}, 0, set(), [])
    await _cli("upgrade", "--url", scratch_url)
    assert await _schema(scratch_url) == at_head
    await _cli("upgrade", "head", "--url", scratch_url)  # at head already: nothing to do
    assert await _schema(scratch_url) == at_head
    await _cli("downgrade", "base", "--url", scratch_url)
    assert await _schema(scratch_url) == at_base
    await _cli("upgrade", "head", "--url", scratch_url)
    assert await _schema(scratch_url) == at_head
    await _cli("downgrade", "--url", scratch_url)  # one step back: the running totals go
    assert await _schema(scratch_url) == at_fourth
    await _cli("downgrade", "--url", scratch_url)  # and the verdicts
    assert await _schema(scratch_url) == at_third
    await _cli("downgrade", "--url", scratch_url)  # and the reconciliation's function
    assert await _schema(scratch_url) == at_second
    await _cli("downgrade", "--url", scratch_url)  # and the ledger's functions
    assert await _schema(scratch_url) == at_first
    await _cli("downgrade", "--url", scratch_url)
    assert await _schema(scratch_url) == at_base


async def test_models_and_migrations_agree(scratch_url: str) -> None:
    await asyncio.to_thread(upgrade, alembic_config(url=scratch_url, configure_logging=False))
    engine = create_async_engine(scratch_url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync, opts={"compare_type": True, "compare_server_default": True}
                    ),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_check_constraints_match_the_enums(scratch_url: str) -> None:
    """Autogenerate ignores CHECK constraints; the enums' allowed values are compared here."""
    await asyncio.to_thread(upgrade, alembic_config(url=scratch_url, configure_logging=False))
    rows = await _query(
        scratch_url,
        "SELECT conrelid::regclass::text AS tbl, conname, pg_get_constraintdef(oid) AS definition "
        "FROM pg_constraint WHERE contype = 'c' AND connamespace = 'public'::regnamespace",
    )
    in_database = {
        (row.tbl, row.conname): set(re.findall(r"'([^']*)'", row.definition)) for row in rows
    }
    expected = {}
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, Enum):
                expected[(table.name, f"ck_{table.name}_{column.type.name}")] = set(
                    column.type.enums
                )
    expected[("tenants", "ck_tenants_slug")] = {"^[a-z0-9][a-z0-9-]{1,62}$"}
    # A verdict's hash is a SHA-256 in hex; a clean one names no signature.
    expected[("scan_verdicts", "ck_scan_verdicts_sha256")] = {"^[0-9a-f]{64}$"}
    expected[("scan_verdicts", "ck_scan_verdicts_signature")] = set()
    assert in_database == expected


async def test_upgrade_grants_the_application_role(settings: Settings, scratch_url: str) -> None:
    await asyncio.to_thread(upgrade, alembic_config(url=scratch_url, configure_logging=False))
    database = make_url(scratch_url).database or ""
    app_url = _with_database(settings.database_url.get_secret_value(), database)
    engine = create_engine(app_url, pool_size=1)
    try:
        async with tenant_scope(create_sessionmaker(engine), "t-scratch") as db:
            _, created = await db.tenants.create(
                name="Scratch",
                plan=TenantPlan.FREE,
                region="local",
                admin_email="a@b.c",
                storage_provider=StorageProvider.LOCAL,
                storage_bucket="ferry-t-scratch",
            )
            await db.users.add_member("a@b.c", MemberRole.OWNER)
            assert created and await db.users.role_of("a@b.c") == MemberRole.OWNER
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT count(*) FROM tenants"))).scalar_one() == 0
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("role", "message"),
    [("ferry", "bypasses row-level security"), ("ferry_no_such_role", "does not exist")],
)
async def test_upgrade_refuses_an_unfit_application_role(
    scratch_url: str, role: str, message: str
) -> None:
    """Named by `-x app_role=`: a superuser or a missing role stops the upgrade; nothing is left."""
    config = alembic_config(url=scratch_url, configure_logging=False)
    config.cmd_opts = argparse.Namespace(x=[f"app_role={role}"])
    with pytest.raises(DBAPIError, match=message):
        await asyncio.to_thread(upgrade, config)
    assert await _schema(scratch_url) == (set(), 0, set(), [])
