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


def create_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> AsyncEngine:
    """An asyncpg engine for `url` (`postgresql+asyncpg://...`)."""
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
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
