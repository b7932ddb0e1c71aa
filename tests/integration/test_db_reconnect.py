"""The worker's database engine pings no connection before it uses one (three round
trips each time). A connection lost meanwhile, here to a real Postgres restarted, fails
the one attempt that used it, as an error Temporal retries; the next attempt works."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from ferry.activities.database import DatabaseActivities
from ferry.activities.database.tenants import TenantRef
from ferry.config import Settings
from ferry.db.errors import unavailable
from ferry.db.session import create_engine, create_sessionmaker
from ferry.devstack.stack import Stack

pytestmark = [pytest.mark.stack, pytest.mark.restarts_stack]


async def test_a_connection_lost_to_a_postgres_restart_fails_one_attempt_and_the_next_works(
    stack: Stack, settings: Settings, tenant: str
) -> None:
    engine = create_engine(settings.database_url.get_secret_value(), pre_ping=False)
    activities = DatabaseActivities(create_sessionmaker(engine))
    env = ActivityEnvironment()
    try:
        # The pool now holds one connection, idle.
        assert (await env.run(activities.get_tenant, TenantRef(tenant))).found
        await asyncio.to_thread(stack.stop_service, "postgres")
        await asyncio.to_thread(stack.start_service, "postgres")

        with pytest.raises(Exception) as lost:
            await env.run(activities.get_tenant, TenantRef(tenant))
        # Not one of the activity's own refusals: an error Temporal retries.
        assert not isinstance(lost.value, ApplicationError), lost.value
        assert unavailable(lost.value), lost.value

        # The pool dropped the connections it had: the retry connects anew.
        found = await env.run(activities.get_tenant, TenantRef(tenant))
        assert found.found and found.tenant is not None and found.tenant.tenant_id == tenant
    finally:
        await engine.dispose()
