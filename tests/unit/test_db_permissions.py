"""The permission rules, as a pure function: roles, shares, file state, tenant state."""

from __future__ import annotations

import pytest

from ferry.contracts.enums import (
    FileAction,
    FileState,
    MemberRole,
    SharePermission,
    TenantPlan,
    TenantStatus,
)
from ferry.contracts.plans import PLAN_LIMITS, is_upgrade
from ferry.db import PermissionReason, decide
from ferry.db.session import validate_tenant_id

A = FileAction
R = PermissionReason


@pytest.mark.parametrize(
    ("role", "uploader", "allowed"),
    [
        (MemberRole.OWNER, False, {A.VIEW, A.DOWNLOAD, A.EDIT, A.SHARE}),
        (MemberRole.ADMIN, False, {A.VIEW, A.DOWNLOAD, A.EDIT, A.SHARE}),
        (MemberRole.EDITOR, True, {A.VIEW, A.DOWNLOAD, A.EDIT, A.SHARE}),
        (MemberRole.EDITOR, False, {A.VIEW, A.DOWNLOAD, A.EDIT}),
        (MemberRole.VIEWER, True, {A.VIEW, A.DOWNLOAD}),
    ],
)
def test_roles(role: MemberRole, uploader: bool, allowed: set[FileAction]) -> None:
    for action in FileAction:
        decision = decide(
            action,
            tenant_status=TenantStatus.ACTIVE,
            file_state=FileState.PROCESSED,
            role=role,
            is_uploader=uploader,
        )
        assert decision.allowed == (action in allowed), (role, action)
        assert decision.reason == (R.GRANTED_BY_ROLE if decision.allowed else R.INSUFFICIENT_ROLE)


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [
        (SharePermission.VIEW, {A.VIEW}),
        (SharePermission.DOWNLOAD, {A.VIEW, A.DOWNLOAD}),
        (SharePermission.EDIT, {A.VIEW, A.DOWNLOAD, A.EDIT}),
    ],
)
def test_shares_grant_but_never_reshare(permission: SharePermission, allowed: set[A]) -> None:
    for action in FileAction:
        decision = decide(
            action,
            tenant_status=TenantStatus.ACTIVE,
            file_state=FileState.PROCESSED,
            role=None,
            share_permissions=[permission],
        )
        assert decision.allowed == (action in allowed), (permission, action)
        assert decision.reason == (R.GRANTED_BY_SHARE if decision.allowed else R.NOT_MEMBER)


@pytest.mark.parametrize(
    ("tenant_status", "file_state", "action", "reason"),
    [
        (None, FileState.PROCESSED, A.VIEW, R.TENANT_NOT_FOUND),
        (TenantStatus.PROVISIONING, FileState.PROCESSED, A.VIEW, R.TENANT_INACTIVE),
        (TenantStatus.DELETING, FileState.PROCESSED, A.VIEW, R.TENANT_INACTIVE),
        (TenantStatus.SUSPENDED, FileState.PROCESSED, A.SHARE, R.TENANT_INACTIVE),
        (TenantStatus.SUSPENDED, FileState.PROCESSED, A.EDIT, R.TENANT_INACTIVE),
        (TenantStatus.SUSPENDED, FileState.PROCESSED, A.DOWNLOAD, R.GRANTED_BY_ROLE),
        (TenantStatus.ACTIVE, None, A.VIEW, R.FILE_NOT_FOUND),
        (TenantStatus.ACTIVE, FileState.PROCESSING, A.SHARE, R.FILE_NOT_READY),
        (TenantStatus.ACTIVE, FileState.REJECTED, A.VIEW, R.FILE_NOT_CLEAN),
        (TenantStatus.ACTIVE, FileState.QUARANTINED, A.DOWNLOAD, R.FILE_NOT_CLEAN),
    ],
)
def test_tenant_and_file_state_come_before_roles(
    tenant_status: TenantStatus | None, file_state: FileState | None, action: A, reason: R
) -> None:
    decision = decide(
        action, tenant_status=tenant_status, file_state=file_state, role=MemberRole.OWNER
    )
    assert decision.reason == reason
    assert decision.allowed == (reason == R.GRANTED_BY_ROLE)


def test_plans_grow_in_order() -> None:
    free, pro, enterprise = (PLAN_LIMITS[p] for p in TenantPlan)
    assert free.quota_bytes < pro.quota_bytes < enterprise.quota_bytes
    assert free.max_file_bytes >= 1024**3  # the 1 GiB upload of the file service fits
    assert is_upgrade(TenantPlan.FREE, TenantPlan.PRO)
    assert not is_upgrade(TenantPlan.ENTERPRISE, TenantPlan.PRO)


@pytest.mark.parametrize("tenant_id", ["ab", "t-1", "acme-corp", "a" * 63])
def test_slugs_are_tenant_ids(tenant_id: str) -> None:
    assert validate_tenant_id(tenant_id) == tenant_id


@pytest.mark.parametrize("tenant_id", ["a", "a" * 64, "Acme", "-acme", "a b", "a_b", "a\n"])
def test_other_strings_are_not(tenant_id: str) -> None:
    with pytest.raises(ValueError):
        validate_tenant_id(tenant_id)
