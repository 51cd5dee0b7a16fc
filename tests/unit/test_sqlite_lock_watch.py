"""What health reads about SQLite's write lock: a write waiting on a lock held by another
connection is counted while it waits, and no longer once it is cancelled or served."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import text

from nestauth import db
from tests.support import make_settings


async def _waiting_write(path: Path, outcome: str) -> tuple[bool, bool]:
    """(blocked while waiting, blocked afterwards) for a write cancelled or served."""
    settings = make_settings(f"sqlite:///{path}")
    engine = db.create_engine(settings.database_url, settings)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (n INTEGER)"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with engine.begin() as connection:
            await connection.execute(text("INSERT INTO t VALUES (1)"))

    task = asyncio.create_task(write())
    for _ in range(500):  # until the write is waiting (synchronisation, not a limit)
        if db.writes_blocked(engine):
            break
        await asyncio.sleep(0.01)
    while_waiting = db.writes_blocked(engine)
    if outcome == "cancelled":
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        holder.rollback()
    else:
        holder.rollback()
        await task
    afterwards = db.writes_blocked(engine)
    holder.close()
    await engine.dispose()
    return while_waiting, afterwards


def test_a_cancelled_write_is_no_longer_counted(tmp_path: Path) -> None:
    assert asyncio.run(_waiting_write(tmp_path / "cancel.db", "cancelled")) == (True, False)


def test_a_served_write_is_no_longer_counted(tmp_path: Path) -> None:
    assert asyncio.run(_waiting_write(tmp_path / "served.db", "served")) == (True, False)
