"""The unit of work: one tenant, one transaction, all repositories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ferry.contracts.enums import FileAction
from ferry.db.permissions import Decision, decide
from ferry.db.repositories import (
    FileMigrationRepository,
    FileRepository,
    ProcessedEventRepository,
    ShareRepository,
    TenantRepository,
    UsageRepository,
    UserRepository,
)
from ferry.db.session import tenant_session


class TenantScope:
    """One tenant's repositories, sharing one session and its transaction."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id
        self.tenants = TenantRepository(session, tenant_id)
        self.users = UserRepository(session, tenant_id)
        self.files = FileRepository(session, tenant_id)
        self.shares = ShareRepository(session, tenant_id)
        self.migrations = FileMigrationRepository(session, tenant_id)
        self.events = ProcessedEventRepository(session, tenant_id)
        self.usage = UsageRepository(session, tenant_id)

    async def file_belongs(self, file_id: str) -> bool:
        """True if the file exists in this tenant (another tenant's file is invisible)."""
        return await self.files.get(file_id) is not None

    async def check_permission(self, user_id: str, file_id: str, action: FileAction) -> Decision:
        """May `user_id` do `action` with the file, by role or by a share to them?"""
        tenant = await self.tenants.get()
        file = await self.files.get(file_id)
        role = await self.users.role_of(user_id)
        shared = await self.shares.active_permissions(file_id, user_id) if file else []
        return decide(
            FileAction(action),
            tenant_status=None if tenant is None else tenant.status,
            file_state=None if file is None else file.state,
            role=role,
            is_uploader=file is not None and file.uploaded_by == user_id,
            share_permissions=shared,
        )


@asynccontextmanager
async def tenant_scope(
    sessionmaker: async_sessionmaker[AsyncSession], tenant_id: str
) -> AsyncIterator[TenantScope]:
    """`TenantScope` over `tenant_session`: commits at the end, rolls back on error."""
    async with tenant_session(sessionmaker, tenant_id) as session:
        yield TenantScope(session, tenant_id)
