"""Engines, sessions, and the tenant context that row-level security keys on."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from ferry.db.errors import InvalidTenantId

TENANT_SETTING = "app.tenant_id"
TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")

# is_local=true: the setting lasts until the transaction ends, so a pooled
# connection can never carry one tenant's ID into the next checkout.
SET_TENANT = text(f"SELECT set_config('{TENANT_SETTING}', :tenant_id, true)")


def create_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, pre_ping: bool = True
) -> AsyncEngine:
    """An asyncpg engine for `url` (`postgresql+asyncpg://...`).

    With `pre_ping`, each checkout first asks the connection whether it still works (a
    transaction begun and rolled back around an empty query: three round trips). Without
    it, a connection lost meanwhile fails its first statement instead; the pool then
    drops every connection it had before, so only callers that retry should go without
    (Temporal's activities): the pings were 12 of a small upload's 31 round trips.
    """
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        # Without the ping, no connection is used past half an hour either: a firewall or
        # a proxy may drop one that sat idle, unseen until its next statement.
        pool_recycle=-1 if pre_ping else 1800,
        echo=echo,
        connect_args={"server_settings": {"application_name": "ferry"}},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (they leave the transaction)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def validate_tenant_id(tenant_id: str) -> str:
    """The tenant ID if it is a contract slug; `InvalidTenantId` otherwise."""
    if not isinstance(tenant_id, str) or TENANT_ID.fullmatch(tenant_id) is None:
        raise InvalidTenantId(tenant_id)
    return tenant_id


@asynccontextmanager
async def tenant_session(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> AsyncIterator[AsyncSession]:
    """A session in ONE transaction that row-level security scopes to `tenant_id`.

    The transaction commits when the block ends and rolls back if it raises.
    """
    validate_tenant_id(tenant_id)
    async with sessionmaker() as session, session.begin():
        await session.execute(SET_TENANT, {"tenant_id": tenant_id})
        yield session
