"""SQLite for the async engine, run on the event loop's own thread.

aiosqlite hands every statement to a worker thread and back; on this machine that round
trip cost ~0.3 ms against ~6 µs for the indexed statement itself, and a request makes
several (bench/README.md has the figures). The statements of this server are indexed and
short, and the engine gives a process a single SQLite connection (SQLite has one writer
anyway), so running them inline is faster and keeps requests in arrival order.

Every write transaction starts with BEGIN IMMEDIATE, issued here before its first statement:
SQLite cannot upgrade a read transaction to a write one while another writer is active (it
fails at once with SQLITE_BUSY instead of waiting), so the write lock is taken up front.

The one wait SQLite has, a write lock held by another process (a second worker, the CLI),
must not block the loop: the connection's busy_timeout is 0 and a busy statement is retried
here with asyncio.sleep until the statement's deadline (or the patience, if sooner). That
wait ends as a statement stopped by its deadline does: SQLITE_INTERRUPT. A `LockWatch`
shared by the engine's connections tells health whether writes are waiting on such a lock.

Statement deadlines: `StatementDeadline` is the connection's progress handler, armed per
statement by nestauth.db. GET requests read through connections made with `reads=True`
(query_only, BEGIN DEFERRED: no write lock), or, for the lists, through aiosqlite in worker
threads so that a long read does not hold the loop (nestauth.db).

The objects mimic the part of aiosqlite's interface that SQLAlchemy's aiosqlite dialect uses
(passed as its `async_creator`), private attributes included;
tests/unit/test_dependency_tripwires.py fails when the dialect starts using another.

Isolation level AUTOCOMMIT (`execution_options(isolation_level="AUTOCOMMIT")`) means no
BEGIN at all: each statement commits on its own, as with sqlite3's isolation_level None.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
# SQLite VM instructions between two deadline checks: ~0.1 ms of work, so a check (one
# clock read, and for a worker thread one GIL acquisition) costs about 1 % of a long query.
PROGRESS_STEPS = 10_000
FIRST_RETRY_SECONDS = 0.001
LONGEST_RETRY_SECONDS = 0.025


def creator(
    path: str,
    busy_timeout_ms: int,
    lock_watch: LockWatch | None = None,
    *,
    reads: bool = False,
    statement_timeout_ms: int | None = None,
) -> Callable[[], Any]:
    """`reads`: a read-only connection (query_only, BEGIN DEFERRED): in WAL mode its
    transactions read a snapshot and never take or wait for the write lock.
    `statement_timeout_ms`: each statement, its rows fetched included, is stopped past it
    (armed here rather than by engine events: ~8 µs less per statement)."""

    async def connect() -> InlineConnection:
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA busy_timeout=0")  # waits happen in InlineConnection.retry
        if reads:
            connection.execute("PRAGMA query_only=ON")
        inline = InlineConnection(connection, busy_timeout_ms / 1000, lock_watch)
        inline.begin = "BEGIN DEFERRED" if reads else "BEGIN IMMEDIATE"
        if statement_timeout_ms is not None:
            inline.statement_seconds = statement_timeout_ms / 1000
            await inline.set_progress_handler(StatementDeadline(), PROGRESS_STEPS)
        return inline

    return connect


class StatementDeadline:
    """A connection's progress handler: a nonzero answer makes SQLite stop the running
    statement with SQLITE_INTERRUPT. `expires` is set before each statement and reset to
    infinity after it (InlineConnection.arm, or nestauth.db's events for aiosqlite)."""

    __slots__ = ("expires",)

    def __init__(self) -> None:
        self.expires = math.inf

    def __call__(self) -> bool:
        return time.monotonic() >= self.expires


def interrupted() -> sqlite3.OperationalError:
    """The error SQLite raises for a statement stopped by its progress handler."""
    error = sqlite3.OperationalError("interrupted")
    error.sqlite_errorcode = sqlite3.SQLITE_INTERRUPT
    return error


class LockWatch:
    """Whether this engine's writes wait on a write lock held elsewhere, for health."""

    RECENT_SECONDS = 10.0

    def __init__(self) -> None:
        self.waiting = 0
        self.gave_up_at = -math.inf

    @property
    def writes_blocked(self) -> bool:
        recent = time.monotonic() - self.gave_up_at < self.RECENT_SECONDS
        return self.waiting > 0 or recent


class InlineCursor:
    def __init__(self, cursor: sqlite3.Cursor, owner: InlineConnection) -> None:
        self._cursor, self._owner = cursor, owner

    async def _begin_if_idle(self, sql: str) -> None:
        """PRAGMAs run outside transactions (journal_mode cannot change inside one)."""
        connection = self._cursor.connection
        is_pragma = sql.lstrip()[:6].upper() == "PRAGMA"
        if self._owner.autocommit or connection.in_transaction or is_pragma:
            return
        await self._owner.retry(lambda: connection.execute(self._owner.begin))

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> InlineCursor:
        self._owner.arm()
        await self._begin_if_idle(sql)
        await self._owner.retry(lambda: self._cursor.execute(sql, parameters))
        if self._cursor.description is None:
            self._owner.disarm()  # else the rows are fetched next, under the same deadline
        return self

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> InlineCursor:
        rows = list(rows)  # a retry must see every row again
        self._owner.arm()
        await self._begin_if_idle(sql)
        await self._owner.retry(lambda: self._cursor.executemany(sql, rows))
        self._owner.disarm()
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size or self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        try:
            return self._cursor.fetchall()
        finally:
            self._owner.disarm()

    async def nextset(self) -> None:
        return None

    async def setinputsizes(self, *_sizes: Any) -> None:
        return None

    async def close(self) -> None:
        self._cursor.close()


class _RunNow:
    """aiosqlite's queue of calls for its thread: here the call runs at once, on the loop."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:  # handed to the awaiting caller, as aiosqlite does
            future.set_exception(exc)


class InlineConnection:
    def __init__(
        self,
        connection: sqlite3.Connection,
        patience_seconds: float,
        lock_watch: LockWatch | None = None,
    ) -> None:
        self._sqlite: sqlite3.Connection | None = connection
        self.patience_seconds = patience_seconds
        self.deadline = StatementDeadline()  # inert until set_progress_handler installs it
        self.begin = "BEGIN IMMEDIATE"
        self.statement_seconds = math.inf
        self.lock_watch = lock_watch or LockWatch()
        self.autocommit = False
        # SQLAlchemy's adapter sets isolation_level by queueing a call on `_tx` that sets
        # it on `_conn` (aiosqlite's thread and sqlite3 connection): both lead back here.
        self._tx = _RunNow()

    @property
    def _connection(self) -> sqlite3.Connection | None:
        """SQLAlchemy's adapter checks this before commit and rollback."""
        return self._sqlite

    @property
    def _conn(self) -> InlineConnection:
        return self

    @property
    def isolation_level(self) -> str | None:
        """sqlite3's spelling: None for autocommit, else the BEGIN this module issues."""
        self._live()
        return None if self.autocommit else self.begin.removeprefix("BEGIN ")

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        if self._live().in_transaction:
            raise sqlite3.OperationalError("cannot change isolation level inside a transaction")
        self.autocommit = value is None

    def _live(self) -> sqlite3.Connection:
        if self._sqlite is None:
            raise ValueError("no active connection")
        return self._sqlite

    def cursor(self) -> InlineCursor:
        return InlineCursor(self._live().cursor(), self)

    def arm(self) -> None:
        self.deadline.expires = time.monotonic() + self.statement_seconds

    def disarm(self) -> None:
        self.deadline.expires = math.inf

    async def commit(self) -> None:
        self.disarm()
        await self.retry(self._live().commit)

    async def retry(self, call: Callable[[], Any]) -> Any:
        """Runs `call`, retrying while another connection holds the write lock, until the
        statement's deadline or the patience runs out."""
        give_up = min(time.monotonic() + self.patience_seconds, self.deadline.expires)
        delay, watch, counted = FIRST_RETRY_SECONDS, self.lock_watch, False
        try:
            while True:
                try:
                    return call()
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode not in BUSY_CODES:
                        raise
                    if time.monotonic() >= give_up:
                        watch.gave_up_at = time.monotonic()
                        if give_up == self.deadline.expires:
                            raise interrupted() from exc
                        raise
                if not counted:
                    watch.waiting, counted = watch.waiting + 1, True
                await asyncio.sleep(delay)
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)
        finally:
            if counted:  # cancelled mid-wait included
                watch.waiting -= 1

    async def set_progress_handler(self, handler: Callable[[], Any] | None, steps: int) -> None:
        """aiosqlite's signature; a StatementDeadline also bounds the wait for the lock."""
        self._live().set_progress_handler(handler, steps)
        if isinstance(handler, StatementDeadline):
            self.deadline = handler

    async def rollback(self) -> None:
        self.disarm()
        self._live().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._sqlite is not None:
            self._sqlite.close()
            self._sqlite = None
