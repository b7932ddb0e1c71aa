"""Share and permission activities: grants of access to files, and who may do what."""

# No `from __future__ import annotations`: workflows decode these dataclasses inside the
# Temporal sandbox, whose `sys.modules` holds this package but not this submodule, so
# string annotations there would not resolve. Evaluated annotations need no lookup.

from dataclasses import dataclass
from datetime import datetime

from temporalio import activity

from ferry.activities.database.base import TenantScopedActivities
from ferry.contracts.convert import build
from ferry.contracts.enums import (
    FileAction,
    GranteeType,
    MemberRole,
    SharePermission,
    ShareStatus,
)
from ferry.db import PermissionReason
from ferry.db import models as m


@dataclass
class PermissionQuery:
    tenant_id: str
    user_id: str
    file_id: str
    action: FileAction


@dataclass
class PermissionResult:
    allowed: bool
    reason: PermissionReason
    role: MemberRole | None = None


@dataclass
class ShareInput:
    tenant_id: str
    share_id: str
    file_id: str
    shared_by: str
    grantee_type: GranteeType
    permission: SharePermission
    grantee: str | None = None
    expires_at: datetime | None = None
    notify: bool = False
    message: str | None = None


@dataclass
class ShareRecord:
    tenant_id: str
    share_id: str
    file_id: str
    shared_by: str
    grantee_type: GranteeType
    permission: SharePermission
    status: ShareStatus
    grantee: str | None = None
    expires_at: datetime | None = None
    revoked_by: str | None = None


@dataclass
class ShareResult:
    """The share after the call; `changed` if this call created or ended it."""

    share: ShareRecord
    changed: bool


@dataclass
class RevokeShareInput:
    """End a share: revoked by someone, or `expired` when its timer fired."""

    tenant_id: str
    share_id: str
    revoked_by: str | None = None
    expired: bool = False


@dataclass
class ShareRef:
    tenant_id: str
    share_id: str


@dataclass
class ActiveSharesQuery:
    tenant_id: str
    file_id: str


@dataclass
class ActiveShares:
    """The IDs of a file's active shares, oldest first."""

    share_ids: list[str]


@dataclass
class ShareLookup:
    found: bool
    share: ShareRecord | None = None


def _share(row: m.Share) -> ShareRecord:
    return build(ShareRecord, row, share_id=row.id)


class ShareActivities(TenantScopedActivities):
    """Permission checks (role, uploader, shares) and the shares themselves."""

    @activity.defn(name="check_permission")
    async def check_permission(self, request: PermissionQuery) -> PermissionResult:
        """May the user do the action with the file, and why (membership, role, shares)."""
        async with self._scope(request.tenant_id) as db:
            decision = await db.check_permission(request.user_id, request.file_id, request.action)
            return PermissionResult(decision.allowed, decision.reason, decision.role)

    @activity.defn(name="record_share")
    async def record_share(self, request: ShareInput) -> ShareResult:
        """Record the grant as active; a known share keeps its state (never resurrected)."""
        async with self._scope(request.tenant_id) as db:
            row, created = await db.shares.record(
                request.share_id,
                file_id=request.file_id,
                shared_by=request.shared_by,
                grantee_type=request.grantee_type,
                grantee=request.grantee,
                permission=request.permission,
                expires_at=request.expires_at,
                notify=request.notify,
                message=request.message,
            )
            return ShareResult(_share(row), created)

    @activity.defn(name="revoke_share")
    async def revoke_share(self, request: RevokeShareInput) -> ShareResult:
        """End an active share as `revoked` (or `expired`); an ended share stays as it ended."""
        status = ShareStatus.EXPIRED if request.expired else ShareStatus.REVOKED
        async with self._scope(request.tenant_id) as db:
            row, ended = await db.shares.end(request.share_id, status, request.revoked_by)
            return ShareResult(_share(row), ended)

    @activity.defn(name="get_share")
    async def get_share(self, request: ShareRef) -> ShareLookup:
        async with self._scope(request.tenant_id) as db:
            row = await db.shares.get(request.share_id)
            return ShareLookup(row is not None, None if row is None else _share(row))

    @activity.defn(name="list_active_shares")
    async def list_active_shares(self, request: ActiveSharesQuery) -> ActiveShares:
        """The IDs of the file's active shares: the ones whose workflows still hold a grant."""
        async with self._scope(request.tenant_id) as db:
            return ActiveShares(await db.shares.active_ids(request.file_id))
