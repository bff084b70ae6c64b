"""Leasing rows to one claimer at a time: the outbox and the due tasks use the same mechanism."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from storage.db import dialect_name

RowT = TypeVar("RowT")


async def claim(
    s: AsyncSession,
    model: type[RowT],
    id_column: InstrumentedAttribute[int],
    *,
    where: ColumnElement[bool],
    order_by: tuple[Any, ...],
    limit: int,
    values: Mapping[str, Any],
    sort_key: Callable[[RowT], Any],
) -> list[RowT]:
    """Set `values` (the lease) on up to `limit` rows matching `where`, first by `order_by`, and
    return them sorted by `sort_key`. No concurrent claimer gets the same row.

    PostgreSQL: SELECT .. FOR UPDATE SKIP LOCKED, then UPDATE in the same transaction, so
    claimers in other processes pass over each other's rows instead of waiting. SQLite: a single
    UPDATE .. WHERE id IN (SELECT .. LIMIT n), atomic under the database write lock."""
    target = await _target(s, id_column, where, order_by, limit)
    if target is None:
        return []
    stmt = (
        update(model)
        .where(target)
        .values(**values)
        .returning(model)
        .execution_options(populate_existing=True, synchronize_session=False)
    )
    rows: list[RowT] = list(await s.scalars(stmt))
    rows.sort(key=sort_key)
    return rows


async def _target(
    s: AsyncSession,
    id_column: Any,
    where: ColumnElement[bool],
    order_by: tuple[Any, ...],
    limit: int,
) -> ColumnElement[bool] | None:
    candidates = select(id_column).where(where).order_by(*order_by).limit(limit)
    if dialect_name(s) == "postgresql":
        ids = list(await s.scalars(candidates.with_for_update(skip_locked=True)))
        if not ids:
            return None
        target: ColumnElement[bool] = id_column.in_(ids)
        return target
    in_subquery: ColumnElement[bool] = id_column.in_(candidates.scalar_subquery())
    return in_subquery
