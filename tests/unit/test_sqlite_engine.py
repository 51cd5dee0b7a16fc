"""The SQLite engine: one connection handed out in arrival order, lock waits off the loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.util import greenlet_spawn
from sqlalchemy.util.queue import Empty

from nestauth import db, sqlite_inline
from nestauth.fair_pool import FairAsyncQueuePool, FairQueue
from tests.support import make_settings


def _engine(path: Path, pool_timeout_seconds: int = 5) -> AsyncEngine:
    settings = make_settings(f"sqlite:///{path}", db_pool_timeout_seconds=pool_timeout_seconds)
    return db.create_engine(settings.database_url, settings)


async def _make_table(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE t (n INTEGER)"))


class TestOneConnectionInArrivalOrder:
    def test_waiting_requests_get_the_connection_in_the_order_they_asked(
        self, tmp_path: Path
    ) -> None:
        async def scenario() -> list[str]:
            engine = _engine(tmp_path / "order.db")
            served: list[str] = []
            holder_ready = asyncio.Event()

            late: list[asyncio.Task[None]] = []

            async def holder() -> None:
                async with engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
                    holder_ready.set()
                    await asyncio.sleep(0.05)  # the others queue meanwhile
                    # A request that arrives just as the connection comes back: it runs
                    # before the first waiter wakes, and must not take its turn.
                    late.append(asyncio.create_task(waiter("late")))

            async def waiter(name: str) -> None:
                async with engine.connect() as connection:
                    served.append(name)
                    await connection.execute(text("SELECT 1"))

            first = asyncio.create_task(holder())
            await holder_ready.wait()
            names = ["b", "c", "d", "e"]
            tasks = []
            for name in names:
                tasks.append(asyncio.create_task(waiter(name)))
                await asyncio.sleep(0.001)  # each one asks after the previous
            await asyncio.gather(first, *tasks)
            await asyncio.gather(*late)
            await engine.dispose()
            return served

        assert asyncio.run(scenario()) == ["b", "c", "d", "e", "late"]

    def test_a_wait_past_the_pool_timeout_fails_and_the_pool_still_serves(
        self, tmp_path: Path
    ) -> None:
        async def scenario() -> float:
            engine = _engine(tmp_path / "timeout.db", pool_timeout_seconds=1)
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
                started = time.monotonic()
                with pytest.raises(PoolTimeout):
                    async with engine.connect() as second:
                        await second.execute(text("SELECT 1"))
                waited = time.monotonic() - started
            async with engine.connect() as again:  # the one connection came back
                assert (await again.execute(text("SELECT 1"))).scalar() == 1
            await engine.dispose()
            return waited

        assert 0.9 <= asyncio.run(scenario()) < 3

    def test_a_cancelled_waiter_does_not_keep_the_connection(self, tmp_path: Path) -> None:
        async def scenario() -> int:
            engine = _engine(tmp_path / "cancel.db")
            async with engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

                async def wait_for_connection() -> None:
                    async with engine.connect() as other:
                        await other.execute(text("SELECT 1"))

                cancelled = asyncio.create_task(wait_for_connection())
                await asyncio.sleep(0.01)
                cancelled.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await cancelled
            async with engine.connect() as after:
                value = (await after.execute(text("SELECT 2"))).scalar_one()
            await engine.dispose()
            return int(value)

        assert asyncio.run(scenario()) == 2

    def test_a_returned_connection_goes_to_the_waiter_not_to_a_newcomer(self) -> None:
        async def scenario() -> tuple[object, bool]:
            queue = FairQueue(maxsize=1)
            waiting = asyncio.create_task(greenlet_spawn(queue.get, True, 5))
            await asyncio.sleep(0.01)  # the waiter is queued
            queue.put_nowait("connection")
            try:
                queue.get_nowait()  # a request arriving now, before the waiter wakes
                newcomer_served = True
            except Empty:
                newcomer_served = False
            return await waiting, newcomer_served

        assert asyncio.run(scenario()) == ("connection", False)

    def test_the_pool_is_the_fair_one(self, tmp_path: Path) -> None:
        engine = _engine(tmp_path / "kind.db")
        assert isinstance(engine.pool, FairAsyncQueuePool)
        assert engine.pool.size() == 1


def _hold_write_lock(path: Path, seconds: float, locked: threading.Event) -> None:
    """Another process's writer, as far as SQLite can tell: its own connection."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    locked.set()
    time.sleep(seconds)
    other.execute("COMMIT")
    other.close()


class TestWriteLockHeldElsewhere:
    def test_the_write_waits_without_blocking_the_event_loop(self, tmp_path: Path) -> None:
        path = tmp_path / "busy.db"

        async def scenario() -> tuple[int, int]:
            engine = _engine(path)
            await _make_table(engine)
            locked = threading.Event()
            holder = threading.Thread(target=_hold_write_lock, args=(path, 0.4, locked))
            holder.start()
            locked.wait()
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            beating = asyncio.create_task(ticker())
            async with engine.begin() as connection:  # waits ~0.4 s for the other writer
                await connection.execute(text("INSERT INTO t VALUES (1)"))
            beating.cancel()
            holder.join()
            async with engine.connect() as connection:
                stored = (await connection.execute(text("SELECT count(*) FROM t"))).scalar_one()
            await engine.dispose()
            return ticks, int(stored)

        ticks, stored = asyncio.run(scenario())
        assert stored == 1
        assert ticks >= 10  # the loop ran other work all along (a blocked loop gives ~0)

    def test_a_lock_held_past_the_patience_is_a_database_error(self, tmp_path: Path) -> None:
        path = tmp_path / "stuck.db"

        async def scenario() -> None:
            engine = create_async_engine(
                f"sqlite+aiosqlite:///{path}",
                async_creator=sqlite_inline.creator(str(path), busy_timeout_ms=200),
                poolclass=FairAsyncQueuePool,
                pool_size=1,
                max_overflow=0,
            )
            await _make_table(engine)
            locked = threading.Event()
            holder = threading.Thread(target=_hold_write_lock, args=(path, 1.0, locked))
            holder.start()
            locked.wait()
            try:
                with pytest.raises(OperationalError, match="locked"):
                    async with engine.begin() as connection:
                        await connection.execute(text("INSERT INTO t VALUES (1)"))
            finally:
                holder.join()
                await engine.dispose()

        asyncio.run(scenario())
