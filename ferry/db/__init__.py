"""Ferry's Postgres layer: models, tenant-scoped repositories, and the tenant context.

Every table with a `tenant_id` is isolated by forced row-level security; the
tenant is set per transaction by `tenant_session` / `tenant_scope`, and the
application connects as a role that neither owns the tables nor bypasses RLS.
"""

from ferry.db.errors import (
    DatabaseError,
    FileNotFound,
    InvalidTenantId,
    InvalidTransition,
    MigrationNotFound,
    NotFound,
    ShareNotFound,
    TenantNotFound,
)
from ferry.db.models import TENANT_TABLES, Base
from ferry.db.permissions import Decision, PermissionReason, decide
from ferry.db.repositories import MigrationProgress, Usage
from ferry.db.scope import TenantScope, tenant_scope
from ferry.db.session import create_engine, create_sessionmaker, tenant_session, validate_tenant_id

__all__ = [
    "TENANT_TABLES",
    "Base",
    "DatabaseError",
    "Decision",
    "FileNotFound",
    "InvalidTenantId",
    "InvalidTransition",
    "MigrationNotFound",
    "MigrationProgress",
    "NotFound",
    "PermissionReason",
    "ShareNotFound",
    "TenantNotFound",
    "TenantScope",
    "Usage",
    "create_engine",
    "create_sessionmaker",
    "decide",
    "tenant_scope",
    "tenant_session",
    "validate_tenant_id",
]
