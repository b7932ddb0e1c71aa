"""Who may do what with a file: the rules, as one pure function."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from ferry.contracts.enums import FileAction, FileState, MemberRole, SharePermission, TenantStatus


class PermissionReason(StrEnum):
    """Why a permission check came out as it did."""

    GRANTED_BY_ROLE = "granted_by_role"
    GRANTED_BY_SHARE = "granted_by_share"
    TENANT_NOT_FOUND = "tenant_not_found"
    TENANT_INACTIVE = "tenant_inactive"
    FILE_NOT_FOUND = "file_not_found"
    FILE_NOT_READY = "file_not_ready"
    FILE_NOT_CLEAN = "file_not_clean"
    NOT_MEMBER = "not_member"
    INSUFFICIENT_ROLE = "insufficient_role"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: PermissionReason
    role: MemberRole | None = None


# Actions that change or spread a file are refused while the tenant is suspended.
_WRITE_ACTIONS = frozenset({FileAction.EDIT, FileAction.SHARE})

# What each share permission lets its grantee do; a share never lets anyone re-share.
_SHARE_GRANTS: dict[SharePermission, frozenset[FileAction]] = {
    SharePermission.VIEW: frozenset({FileAction.VIEW}),
    SharePermission.DOWNLOAD: frozenset({FileAction.VIEW, FileAction.DOWNLOAD}),
    SharePermission.EDIT: frozenset({FileAction.VIEW, FileAction.DOWNLOAD, FileAction.EDIT}),
}


def role_allows(role: MemberRole, action: FileAction, *, is_uploader: bool) -> bool:
    """Owners and admins may do anything; editors edit, and share what they uploaded."""
    if role in (MemberRole.OWNER, MemberRole.ADMIN):
        return True
    if role == MemberRole.EDITOR:
        return action != FileAction.SHARE or is_uploader
    return action in (FileAction.VIEW, FileAction.DOWNLOAD)


def decide(
    action: FileAction,
    *,
    tenant_status: TenantStatus | None,
    file_state: FileState | None,
    role: MemberRole | None,
    is_uploader: bool = False,
    share_permissions: Collection[SharePermission] = (),
) -> Decision:
    """Whether a user may do `action` with a file, from the facts the database holds.

    `file_state` is None when the file does not exist in the tenant, which is
    also what a file of another tenant looks like under row-level security.
    """
    if tenant_status is None:
        return Decision(False, PermissionReason.TENANT_NOT_FOUND, role)
    if tenant_status in (TenantStatus.PROVISIONING, TenantStatus.DELETING) or (
        tenant_status == TenantStatus.SUSPENDED and action in _WRITE_ACTIONS
    ):
        return Decision(False, PermissionReason.TENANT_INACTIVE, role)
    if file_state is None:
        return Decision(False, PermissionReason.FILE_NOT_FOUND, role)
    if file_state in (FileState.REJECTED, FileState.QUARANTINED):
        return Decision(False, PermissionReason.FILE_NOT_CLEAN, role)
    if file_state != FileState.PROCESSED:
        return Decision(False, PermissionReason.FILE_NOT_READY, role)
    if role is not None and role_allows(role, action, is_uploader=is_uploader):
        return Decision(True, PermissionReason.GRANTED_BY_ROLE, role)
    if any(action in _SHARE_GRANTS[SharePermission(p)] for p in share_permissions):
        return Decision(True, PermissionReason.GRANTED_BY_SHARE, role)
    if role is None:
        return Decision(False, PermissionReason.NOT_MEMBER, role)
    return Decision(False, PermissionReason.INSUFFICIENT_ROLE, role)
