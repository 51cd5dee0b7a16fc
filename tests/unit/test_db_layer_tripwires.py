"""What nestauth.db's deadlines and read routing rely on in SQLAlchemy and aiosqlite.

None of it is a promise of theirs beyond the minor release pinned in pyproject.toml; a
failure here names what moved. Adapt nestauth.db, rerun tests/api/test_statement_deadline.py
and tests/api/test_reads_off_write_lock.py, then widen the bound.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import aiosqlite
import sqlalchemy as sa
from sqlalchemy.connectors import asyncio as adapt
from sqlalchemy.dialects.sqlite import aiosqlite as aiosqlite_dialect
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.orm import Session

from nestauth import db
from nestauth.models import User


def test_rows_are_fetched_inside_the_adapted_execute() -> None:
    """The deadline is armed by before_cursor_execute and disarmed by after_cursor_execute:
    it covers fetching the rows only because the adapter fetches them inside execute."""
    source = inspect.getsource(adapt.AsyncAdapt_dbapi_cursor._execute_async)
    assert "await self._cursor.execute(" in source
    assert "await self._cursor.fetchall()" in source


def test_progress_handlers_are_installed_through_run_async() -> None:
    assert callable(AdaptedConnection.run_async)
    assert inspect.iscoroutinefunction(aiosqlite.Connection.set_progress_handler)


def test_the_aiosqlite_adapter_lets_us_issue_begin_ourselves() -> None:
    """SQLAlchemy's documented recipe: isolation_level None, BEGIN in the "begin" event."""
    setter = aiosqlite_dialect.AsyncAdapt_aiosqlite_connection.isolation_level.fset
    assert setter is not None


def test_get_bind_routes_plain_selects_to_the_read_engine(tmp_path: Path) -> None:
    write = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    read = sa.create_engine(f"sqlite:///{tmp_path / 'w.db'}")
    assert "clause" in inspect.signature(Session.get_bind).parameters
    session = db.ReadRoutingSession(bind=write, info={db.READ_BIND_KEY: read})
    try:
        assert hasattr(session, "_flushing")
        assert session.get_bind(clause=sa.select(User)) is read
        assert session.get_bind(clause=sa.select(User).with_for_update()) is write
        assert session.get_bind(clause=sa.update(User).values(email="x")) is write
        assert session.get_bind(clause=sa.text("SELECT 1")) is write
    finally:
        session.close()
        write.dispose()
        read.dispose()
