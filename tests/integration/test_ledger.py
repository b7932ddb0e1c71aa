"""The event ledger on the real database: many tenants per round trip, each in its scope."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ferry.db import tenant_scope
from ferry.db.ledger import EventLedger
from ferry.demo import ensure_tenant

pytestmark = pytest.mark.stack

CONSUMER = "ledger-test"


async def test_existing_tenants_names_only_tenants_that_exist(
    ledger: EventLedger, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    acme = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    globex = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    missing = f"t-{uuid.uuid4().hex[:12]}"
    assert await ledger.existing_tenants([acme, missing, globex, acme]) == {acme, globex}
    assert await ledger.existing_tenants([]) == set()


async def test_events_of_many_tenants_are_recorded_each_in_its_own_tenant(
    ledger: EventLedger, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    acme = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    globex = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    events = [
        (acme, "e-1", "file.uploaded"),
        (globex, "e-2", "file.uploaded"),
        (acme, "e-3", "file.share_requested"),
    ]
    await ledger.mark_many(CONSUMER, events)
    await ledger.mark_many(CONSUMER, events)  # again: nothing changes
    assert await ledger.processed(acme, CONSUMER, "e-1")
    assert await ledger.processed(acme, CONSUMER, "e-3")
    assert await ledger.processed(globex, CONSUMER, "e-2")
    assert not await ledger.processed(globex, CONSUMER, "e-1")  # acme's, not globex's
    assert not await ledger.processed(acme, "another-consumer", "e-1")
    for tenant, expected in ((acme, ["e-1", "e-3"]), (globex, ["e-2"])):
        async with tenant_scope(sessionmaker, tenant) as db:
            rows = await db.session.execute(
                text("SELECT event_id FROM processed_events WHERE consumer = :c ORDER BY 1"),
                {"c": CONSUMER},
            )
            assert list(rows.scalars()) == expected  # row-level security: only its own


async def test_the_batch_functions_leave_the_callers_tenant_setting_as_it_was(
    ledger: EventLedger, sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    acme = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    globex = await ensure_tenant(sessionmaker, f"t-{uuid.uuid4().hex[:12]}")
    async with tenant_scope(sessionmaker, acme) as db:
        await db.session.execute(
            text("SELECT ferry_existing_tenants(CAST(:ids AS text[]))"), {"ids": [globex]}
        )
        setting = await db.session.execute(text("SELECT current_setting('app.tenant_id')"))
        assert setting.scalar_one() == acme
