"""What every database activity class shares: the sessionmaker and the error translation."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio.exceptions import ApplicationError

from ferry.contracts.errors import INTEGRITY_ERROR, INVALID_INPUT
from ferry.db import DatabaseError, TenantScope, tenant_scope


class TenantScopedActivities:
    """Activities over Postgres, one tenant-scoped transaction per call."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker

    @asynccontextmanager
    async def _scope(self, tenant_id: str) -> AsyncIterator[TenantScope]:
        """The tenant's scope; permanent failures become non-retryable errors."""
        try:
            async with tenant_scope(self._sessionmaker, tenant_id) as scope:
                yield scope
        except DatabaseError as exc:
            raise ApplicationError(str(exc), type=exc.kind, non_retryable=True) from exc
        except IntegrityError as exc:
            raise INTEGRITY_ERROR(f"integrity error: {exc.orig}") from exc
        except ValueError as exc:
            raise INVALID_INPUT(str(exc)) from exc

    def activities(self) -> list[Callable[..., Any]]:
        """Every activity of this instance, for `Worker(activities=...)`."""
        return [
            getattr(self, name)
            for name in dir(type(self))
            if hasattr(getattr(type(self), name), "__temporal_activity_definition")
        ]
