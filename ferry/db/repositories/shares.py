"""Grants of access to the tenant's files."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, or_, select

from ferry.contracts.enums import GranteeType, SharePermission, ShareStatus
from ferry.db.errors import ShareNotFound
from ferry.db.models import Share
from ferry.db.repositories.base import Repository, _table, _upsert
from ferry.db.repositories.files import FileRepository


class ShareRepository(Repository):
    """Grants of access to the tenant's files."""

    async def get(self, share_id: str) -> Share | None:
        return await self._one(Share, Share.tenant_id == self.tenant_id, Share.id == share_id)

    async def require(self, share_id: str) -> Share:
        return self._found(await self.get(share_id), ShareNotFound, share_id)

    async def record(
        self,
        share_id: str,
        *,
        file_id: str,
        shared_by: str,
        grantee_type: GranteeType,
        grantee: str | None,
        permission: SharePermission,
        expires_at: datetime | None = None,
        notify: bool = False,
        message: str | None = None,
    ) -> tuple[Share, bool]:
        """Record an active grant; True if new. A known share keeps its state (no resurrection)."""
        values = {
            "tenant_id": self.tenant_id,
            "id": share_id,
            "file_id": file_id,
            "shared_by": shared_by,
            "grantee_type": GranteeType(grantee_type),
            "grantee": grantee,
            "permission": SharePermission(permission),
            "status": ShareStatus.ACTIVE,
            "expires_at": expires_at,
            "notify": notify,
            "message": message,
        }
        if await self.get(share_id) is None:
            await FileRepository(self.session, self.tenant_id).require(file_id)
        stmt = _upsert(Share, values, ["tenant_id", "id"]).returning(_table(Share).c.id)
        created = (await self._execute(stmt)).first() is not None
        return await self.require(share_id), created

    async def end(
        self, share_id: str, status: ShareStatus, ended_by: str | None = None
    ) -> tuple[Share, bool]:
        """End an active share as `revoked` or `expired`; True if this call ended it."""
        status = ShareStatus(status)
        if status == ShareStatus.ACTIVE:
            raise ValueError("a share ends as revoked or expired")
        await self.require(share_id)
        ended = await self._update(
            Share,
            [
                Share.tenant_id == self.tenant_id,
                Share.id == share_id,
                Share.status == ShareStatus.ACTIVE,
            ],
            {"status": status, "revoked_by": ended_by},
            also={"ended_at": func.now()},
        )
        return await self.require(share_id), ended > 0

    async def active_ids(self, file_id: str) -> list[str]:
        """The IDs of the file's active shares (whatever their expiry says), oldest first."""
        stmt = (
            select(Share.id)
            .where(
                Share.tenant_id == self.tenant_id,
                Share.file_id == file_id,
                Share.status == ShareStatus.ACTIVE,
            )
            .order_by(Share.created_at, Share.id)
        )
        return list((await self.session.execute(stmt)).scalars())

    async def active_permissions(self, file_id: str, user_id: str) -> list[SharePermission]:
        """Permissions that unexpired, active user shares of the file give `user_id`."""
        stmt = select(Share.permission).where(
            Share.tenant_id == self.tenant_id,
            Share.file_id == file_id,
            Share.grantee_type == GranteeType.USER,
            Share.grantee == user_id,
            Share.status == ShareStatus.ACTIVE,
            or_(Share.expires_at.is_(None), Share.expires_at > func.now()),
        )
        return list((await self.session.execute(stmt)).scalars())
