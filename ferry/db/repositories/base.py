"""What every repository shares: the base class and the upsert and update helpers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, cast

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CursorResult,
    ReturnsRows,
    Table,
    Update,
    and_,
    bindparam,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from ferry.db.errors import NotFound
from ferry.db.models import Base

M = TypeVar("M", bound=Base)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


def _changed(table: Table, values: Mapping[str, Any]) -> ColumnElement[bool]:
    """True for a row where any of `values` differs (NULL-safe)."""
    return or_(*(table.c[name].is_distinct_from(value) for name, value in values.items()))


def _bound(table: Table, columns: Sequence[str]) -> dict[str, BindParameter[Any]]:
    """Each column's parameter (`p_{column}`, of the column's type), for a statement built
    once and run with `_params`: building one per call cost the worker more CPU than
    running it."""
    return {c: bindparam(f"p_{c}", type_=table.c[c].type) for c in columns}


def _params(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as the parameters of a statement built with `_bound`."""
    return {f"p_{column}": value for column, value in values.items()}


def _upsert(
    model: type[Base],
    values: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    key: Sequence[str],
    update_columns: Sequence[str] = (),
    only_if: ColumnElement[bool] | None = None,
) -> Insert:
    """INSERT (one row, or several in one statement), or on a key conflict update
    `update_columns` where they changed. Without `values`, the rows are the parameters
    it runs with (several: one statement for all)."""
    stmt = pg_insert(_table(model))
    if values is not None:
        stmt = stmt.values(
            dict(values) if isinstance(values, Mapping) else [dict(r) for r in values]
        )
    if not update_columns:
        return stmt.on_conflict_do_nothing(index_elements=list(key))
    table = _table(model)
    changed = or_(*(table.c[c].is_distinct_from(stmt.excluded[c]) for c in update_columns))
    set_: dict[str, Any] = {c: stmt.excluded[c] for c in update_columns}
    if "updated_at" in table.c:
        set_["updated_at"] = func.now()
    condition = changed if only_if is None else and_(changed, only_if)
    return stmt.on_conflict_do_update(index_elements=list(key), set_=set_, where=condition)


def _update_statement(
    model: type[Base],
    where: Sequence[ColumnElement[bool]],
    values: Mapping[str, Any],
    also: Mapping[str, Any] | None = None,
) -> Update:
    """UPDATE rows where one of `values` differs; `also` is set alongside, not compared."""
    table = _table(model)
    new: dict[str, Any] = {**values, **(also or {})}
    if "updated_at" in table.c:
        new["updated_at"] = func.now()
    return update(table).where(*where, _changed(table, values)).values(new)


class Repository:
    """One tenant's rows of one kind, inside the caller's transaction."""

    def __init__(self, session: AsyncSession, tenant_id: str) -> None:
        self.session = session
        self.tenant_id = tenant_id

    async def _one(self, model: type[M], *where: ColumnElement[bool]) -> M | None:
        stmt = select(model).where(*where).execution_options(populate_existing=True)
        return (await self.session.execute(stmt)).scalar_one_or_none()

    @staticmethod
    def _found(row: M | None, missing: type[NotFound], key: str) -> M:
        """`row`, or `missing(key)` raised when there is none."""
        if row is None:
            raise missing(key)
        return row

    async def _update(
        self,
        model: type[Base],
        where: Sequence[ColumnElement[bool]],
        values: Mapping[str, Any],
        also: Mapping[str, Any] | None = None,
    ) -> int:
        """UPDATE rows where one of `values` differs; `also` is set alongside, not compared."""
        stmt = _update_statement(model, where, values, also)
        result = cast(CursorResult[Any], await self.session.execute(stmt))
        return result.rowcount

    async def _returned(
        self, model: type[M], stmt: ReturnsRows, params: Mapping[str, Any] | None = None
    ) -> M | None:
        """The row an INSERT or UPDATE `... RETURNING` every column wrote, as the session's
        object (None when it wrote none): no SELECT after the write."""
        orm = select(model).from_statement(stmt).execution_options(populate_existing=True)
        return (await self.session.execute(orm, params)).scalar_one_or_none()

    async def _execute(
        self, stmt: Any, params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None
    ) -> CursorResult[Any]:
        return cast(CursorResult[Any], await self.session.execute(stmt, params))
