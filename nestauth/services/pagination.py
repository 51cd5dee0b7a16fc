"""Pages of a list: by number for the first rows, by keyset cursor beyond.

Every list is ordered by a key that ends in a unique column and that an index holds in
that order, so a page, and the one after a cursor, is a short range of the index whatever
the size of the table. Page numbers reach only the first MAX_DEPTH rows (OFFSET walks
every row it skips); `meta.nextCursor` reaches the rest. The total is counted up to
TOTAL_CAP rows: beyond that it is reported as TOTAL_CAP with `totalExact: false`.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, TypeDecorator, func, literal, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from nestauth.errors import CursorInvalid, PageTooDeep

T = TypeVar("T")
MAX_DEPTH = 10_000  # rows reachable by page number: page × limit at most this
TOTAL_CAP = 1_000  # rows counted for meta.total: ~0.07 ms on SQLite, 10,000 took ~0.7
_CURSOR_TEXT_MAX = 1024


@dataclass(frozen=True)
class Order:
    """A list's sort key: model attributes, the last one unique, all in one direction.
    `kind` names the list and key, so that one list's cursor is refused by another."""

    kind: str
    keys: tuple[InstrumentedAttribute[Any], ...]
    descending: bool = True


@dataclass(frozen=True)
class PageRequest:
    page: int = 1
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    page: int
    limit: int
    total: int
    total_exact: bool = True
    next_cursor: str | None = None

    @property
    def total_pages(self) -> int:
        return math.ceil(self.total / self.limit) if self.limit else 0


async def paginate(
    session: AsyncSession,
    query: Select[*tuple[Any, ...]],
    order: Order,
    request: PageRequest,
) -> Page[Any]:
    """One page of `query` (Core columns, filtered, not yet ordered) in `order`: rows, not
    ORM objects (loading entities cost more than the statement)."""
    page, after = _position(order, request)
    rows_query = query.order_by(*(k.desc() if order.descending else k for k in order.keys))
    if after is not None:
        rows_query = rows_query.where(_beyond(order, after))
    offset = 0 if after is not None else (page - 1) * request.limit
    rows = list((await session.execute(rows_query.limit(request.limit + 1).offset(offset))).all())
    more = len(rows) > request.limit
    items = rows[: request.limit]
    next_cursor = encode_cursor(order, page + 1, items[-1]) if more and items else None
    total, exact = await count_capped(session, query)
    return Page(items, page, request.limit, total, exact, next_cursor)


async def count_capped(session: AsyncSession, query: Select[*tuple[Any, ...]]) -> tuple[int, bool]:
    """The number of rows up to TOTAL_CAP, and whether that is all of them: a count that
    stops early costs at most TOTAL_CAP index entries, never the whole table."""
    capped = (
        query.with_only_columns(literal(1), maintain_column_froms=True)
        .order_by(None)
        .limit(TOTAL_CAP + 1)
    )
    found = int(await session.scalar(select(func.count()).select_from(capped.subquery())) or 0)
    return min(found, TOTAL_CAP), found <= TOTAL_CAP


def _position(order: Order, request: PageRequest) -> tuple[int, list[Any] | None]:
    if request.cursor is not None:
        return decode_cursor(order, request.cursor)
    if request.page * request.limit > MAX_DEPTH:
        raise PageTooDeep(details={"maxDepth": MAX_DEPTH})
    return request.page, None


def _beyond(order: Order, values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows after the cursor's in `order`: one row-value comparison, which both databases
    read as a range of the index (SQLite's "scrolling window" query)."""
    keys = tuple_(*order.keys)
    bound = tuple_(*(literal(v, type_=k.type) for k, v in zip(order.keys, values, strict=True)))
    return keys < bound if order.descending else keys > bound


# --- cursors: opaque to clients, base64url of JSON {k: kind, p: page, v: key values} ----


def encode_cursor(order: Order, page: int, row: Any) -> str:
    values = [_to_json(getattr(row, key.key)) for key in order.keys]
    raw = json.dumps({"k": order.kind, "p": page, "v": values}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(order: Order, cursor: str) -> tuple[int, list[Any]]:
    """A cursor this list did not issue is a 400, whatever is wrong with it."""
    try:
        if len(cursor) > _CURSOR_TEXT_MAX:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        body = json.loads(raw)
        if body["k"] != order.kind or len(body["v"]) != len(order.keys):
            raise ValueError("another list's cursor")
        page = body["p"]
        if type(page) is not int or page < 2:
            raise ValueError("page")
        values = [_from_json(key, v) for key, v in zip(order.keys, body["v"], strict=True)]
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error) as exc:
        raise CursorInvalid() from exc
    return page, values


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _from_json(key: InstrumentedAttribute[Any], value: Any) -> Any:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("key value")
    value.encode()  # a lone surrogate (JSON allows "\ud800") fails here, not in the driver
    parse = _PARSERS.get(_python_type(key), str)
    return parse(value)


def _python_type(key: InstrumentedAttribute[Any]) -> type:
    column_type = key.type
    if isinstance(column_type, TypeDecorator):  # UTCDateTime says `object`; its impl knows
        column_type = column_type.impl
    return column_type.python_type


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("naive time")
    return moment.astimezone(UTC)  # here, not in the driver: year 1 at +01:00 overflows


_PARSERS: dict[type, Callable[[str], Any]] = {datetime: _aware, uuid.UUID: uuid.UUID}
