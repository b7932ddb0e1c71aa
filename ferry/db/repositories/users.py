"""The tenant's users and their memberships (roles)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete

from ferry.contracts.enums import MemberRole
from ferry.db.models import Membership, User
from ferry.db.repositories.base import Repository, _table, _upsert


class UserRepository(Repository):
    """The tenant's users and their memberships."""

    async def get(self, user_id: str) -> User | None:
        return await self._one(User, User.tenant_id == self.tenant_id, User.id == user_id)

    async def upsert(
        self, user_id: str, *, email: str | None = None, display_name: str | None = None
    ) -> User:
        """Create the user, or update the fields given (None keeps what is stored)."""
        values: dict[str, Any] = {"tenant_id": self.tenant_id, "id": user_id}
        given = {
            k: v for k, v in (("email", email), ("display_name", display_name)) if v is not None
        }
        await self._execute(_upsert(User, values | given, ["tenant_id", "id"], list(given)))
        user = await self.get(user_id)
        assert user is not None
        return user

    async def set_role(self, user_id: str, role: MemberRole) -> Membership:
        """Make the (existing) user a member with `role`."""
        values = {"tenant_id": self.tenant_id, "user_id": user_id, "role": MemberRole(role)}
        await self._execute(_upsert(Membership, values, ["tenant_id", "user_id"], ["role"]))
        membership = await self.membership(user_id)
        assert membership is not None
        return membership

    async def add_member(
        self,
        user_id: str,
        role: MemberRole,
        *,
        email: str | None = None,
        display_name: str | None = None,
    ) -> Membership:
        await self.upsert(user_id, email=email, display_name=display_name)
        return await self.set_role(user_id, role)

    async def remove_member(self, user_id: str) -> bool:
        """End the membership; the user row stays for attribution."""
        table = _table(Membership)
        result = await self._execute(
            delete(table).where(table.c.tenant_id == self.tenant_id, table.c.user_id == user_id)
        )
        return result.rowcount > 0

    async def membership(self, user_id: str) -> Membership | None:
        return await self._one(
            Membership, Membership.tenant_id == self.tenant_id, Membership.user_id == user_id
        )

    async def role_of(self, user_id: str) -> MemberRole | None:
        """The user's role in the tenant, None if not a member."""
        membership = await self.membership(user_id)
        return None if membership is None else membership.role
