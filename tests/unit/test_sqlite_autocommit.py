"""Isolation level AUTOCOMMIT on the SQLite engine: no BEGIN, each statement stands alone.

SQLAlchemy's aiosqlite dialect sets the level through aiosqlite internals; the inline
driver used to answer with an AttributeError.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from nestauth import db
from tests.support import make_settings


def _engine(path: Path) -> AsyncEngine:
    settings = make_settings(f"sqlite:///{path}")
    return db.create_engine(settings.database_url, settings)


async def _count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM t")))


def _other_process_can_write(path: Path) -> bool:
    """A second connection, as another process would have: is the write lock free?"""
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        other.close()


def test_autocommit_statements_commit_alone_and_hold_no_lock(tmp_path: Path) -> None:
    path = tmp_path / "autocommit.db"

    async def scenario() -> tuple[bool, int]:
        engine = _engine(path)
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (n INTEGER)"))
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("INSERT INTO t VALUES (1)"))
            lock_free = _other_process_can_write(path)
            await autocommit.rollback()  # nothing to roll back: the insert stands
        count = await _count(engine)
        await engine.dispose()
        return lock_free, count

    assert asyncio.run(scenario()) == (True, 1)


def test_the_next_checkout_is_transactional_again(tmp_path: Path) -> None:
    path = tmp_path / "reset.db"

    async def scenario() -> tuple[bool, int]:
        engine = _engine(path)
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (n INTEGER)"))
        async with engine.connect() as connection:
            autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
            await autocommit.execute(text("SELECT 1"))
        async with engine.connect() as connection:  # the pool's one connection, reset
            await connection.execute(text("INSERT INTO t VALUES (1)"))
            lock_free = _other_process_can_write(path)  # BEGIN IMMEDIATE took the lock
            await connection.rollback()
        count = await _count(engine)
        await engine.dispose()
        return lock_free, count

    assert asyncio.run(scenario()) == (False, 0)
