"""Ferry's Postgres layer: models, tenant-scoped repositories, and the tenant context.

Every table with a `tenant_id` is isolated by forced row-level security; the
tenant is set per transaction by `tenant_session` / `tenant_scope`, and the
application connects as a role that neither owns the tables nor bypasses RLS.
"""

from ferry.db.enums import (
    FileAction,
    FileState,
    GranteeType,
    MemberRole,
    MigrationItemState,
    MigrationState,
    RejectionReason,
    SharePermission,
    ShareStatus,
    StorageProvider,
    TenantPlan,
    TenantStatus,
)
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
from ferry.db.plans import PLAN_LIMITS, PlanLimits, is_upgrade, limits_for
from ferry.db.repositories import (
    Location,
    MigrationItemData,
    MigrationProgress,
    ThumbnailData,
    Usage,
)
from ferry.db.scope import TenantScope, tenant_scope
from ferry.db.session import create_engine, create_sessionmaker, tenant_session, validate_tenant_id

__all__ = [
    "PLAN_LIMITS",
    "TENANT_TABLES",
    "Base",
    "DatabaseError",
    "Decision",
    "FileAction",
    "FileNotFound",
    "FileState",
    "GranteeType",
    "InvalidTenantId",
    "InvalidTransition",
    "Location",
    "MemberRole",
    "MigrationItemData",
    "MigrationItemState",
    "MigrationNotFound",
    "MigrationProgress",
    "MigrationState",
    "NotFound",
    "PermissionReason",
    "PlanLimits",
    "RejectionReason",
    "ShareNotFound",
    "SharePermission",
    "ShareStatus",
    "StorageProvider",
    "TenantNotFound",
    "TenantPlan",
    "TenantScope",
    "TenantStatus",
    "ThumbnailData",
    "Usage",
    "create_engine",
    "create_sessionmaker",
    "decide",
    "is_upgrade",
    "limits_for",
    "tenant_scope",
    "tenant_session",
    "validate_tenant_id",
]
