"""What the repositories raise when a request cannot be honoured."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout


class DatabaseError(Exception):
    """Base of Ferry's database errors; `kind` names the error for Temporal."""

    kind = "DatabaseError"


class InvalidTenantId(DatabaseError, ValueError):
    kind = "InvalidTenantId"

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"not a tenant ID: {tenant_id!r}")


class NotFound(DatabaseError, LookupError):
    """A row the request depends on does not exist in the current tenant."""

    kind = "NotFound"
    what = "row"

    def __init__(self, key: str) -> None:
        super().__init__(f"{self.what} {key!r} not found")
        self.key = key


class TenantNotFound(NotFound):
    kind, what = "TenantNotFound", "tenant"


class FileNotFound(NotFound):
    kind, what = "FileNotFound", "file"


class ShareNotFound(NotFound):
    kind, what = "ShareNotFound", "share"


class MigrationNotFound(NotFound):
    kind, what = "MigrationNotFound", "file migration"


class InvalidTransition(DatabaseError):
    """A state change the row's current state does not allow."""

    kind = "InvalidTransition"


def unavailable(exc: BaseException) -> bool:
    """Whether a failure means the database is unreachable for now (down, starting up,
    shutting down, the connection lost), not that the request is wrong: waiting helps."""
    seen: set[int] = set()
    failure: BaseException | None = exc
    while failure is not None and id(failure) not in seen:
        seen.add(id(failure))
        if isinstance(failure, DBAPIError) and failure.connection_invalidated:
            return True
        if isinstance(failure, asyncpg.QueryCanceledError):
            return False  # a statement timeout: the request, not the server
        if isinstance(
            failure,
            OSError
            | TimeoutError
            | PoolTimeout
            | asyncpg.PostgresConnectionError  # class 08: connection exceptions
            | asyncpg.OperatorInterventionError,  # class 57: shutting down, starting up
        ):
            return True
        failure = getattr(failure, "orig", None) or failure.__cause__ or failure.__context__
    return False
