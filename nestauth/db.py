"""Engines, URL handling and the per-request session (commit or roll back at the edge).

SQLite has three engines per process. The write engine (nestauth.sqlite_inline) runs on
the event loop's thread through one connection, every transaction under BEGIN IMMEDIATE.
The plain SELECTs of GET requests run under BEGIN DEFERRED on `query_only` connections (a
WAL reader never takes the write lock nor waits for it): on the loop's thread too (the
inline read engine: short indexed reads, no thread hop), or, for the lists and searches,
in worker threads (SQLAlchemy's own aiosqlite driver), so that a long read never holds the
loop. Every statement has a deadline (NESTAUTH_DB_STATEMENT_TIMEOUT_MS), enforced by a
progress handler.
"""

from __future__ import annotations

import math
import sqlite3
import time
import weakref
from typing import Any

from sqlalchemy import Select, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from nestauth import sqlite_inline
from nestauth.config import Settings
from nestauth.fair_pool import FairAsyncQueuePool

SQLITE_BUSY_TIMEOUT_MS = 10_000
DEADLINE_KEY = "nestauth.deadline"
READ_BIND_KEY = "nestauth.read_bind"
THREADED_READ_BIND_KEY = "nestauth.threaded_read_bind"
THREADED_READS = "nestauth.threaded_reads"  # set in a session's info: its reads use threads
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for statement_timeout
_lock_watches: weakref.WeakKeyDictionary[Engine, sqlite_inline.LockWatch] = (
    weakref.WeakKeyDictionary()
)


class StatementTimeouts:
    """How many statements were stopped at their deadline (in this process)."""

    def __init__(self) -> None:
        self.count = 0

    def record(self) -> None:
        self.count += 1


STATEMENT_TIMEOUTS = StatementTimeouts()


def is_statement_timeout(exc: BaseException) -> bool:
    """A statement stopped at its deadline: SQLite's interrupt, PostgreSQL's QueryCanceled."""
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.OperationalError):
        return getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_INTERRUPT
    return getattr(orig, "sqlstate", None) == QUERY_CANCELED


def async_url(url: str) -> URL:
    """Users write sqlite:/// and postgresql://; nestauth picks the async driver itself."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"unsupported database {backend!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> URL:
    """The same database through a blocking driver, for Alembic."""
    parsed = async_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed  # psycopg 3 serves both modes


def is_sqlite(url: URL | str) -> bool:
    return make_url(str(url) if isinstance(url, URL) else url).get_backend_name() == "sqlite"


def create_engine(url: str, settings: Settings | None = None) -> AsyncEngine:
    """The engine for writes (and, on PostgreSQL, for everything)."""
    target = async_url(url)
    limits = settings or Settings(database_url=url, secret_key="")
    if is_sqlite(target):
        # One connection: SQLite has a single writer, and requests then queue in order on
        # the pool instead of polling the file lock (see nestauth.sqlite_inline).
        watch = sqlite_inline.LockWatch()
        engine = create_async_engine(
            target,
            async_creator=sqlite_inline.creator(
                target.database or ":memory:",
                SQLITE_BUSY_TIMEOUT_MS,
                watch,
                statement_timeout_ms=limits.db_statement_timeout_ms,
            ),
            poolclass=FairAsyncQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=limits.db_pool_timeout_seconds,
            hide_parameters=True,  # token digests in exception messages would reach the logs
        )
        _lock_watches[engine.sync_engine] = watch
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(
        target,
        pool_pre_ping=True,  # a connection lost while idle is replaced, not handed out
        pool_size=limits.db_pool_size,
        pool_timeout=limits.db_pool_timeout_seconds,
        connect_args={"connect_timeout": limits.db_connect_timeout_seconds},
        hide_parameters=True,  # token digests in exception messages would reach the logs
    )
    _configure_postgresql(engine, limits.db_statement_timeout_ms)
    return engine


def _file_database(url: str) -> URL | None:
    """None for PostgreSQL, whose reads take no lock, and for an in-memory SQLite database,
    which a second connection would not see: they get no read engines."""
    target = async_url(url)
    if not is_sqlite(target) or target.database in (None, "", ":memory:"):
        return None
    return target


def create_inline_read_engine(url: str, settings: Settings) -> AsyncEngine | None:
    """SQLite reads on the loop's thread: NESTAUTH_DB_POOL_SIZE read-only connections."""
    target = _file_database(url)
    if target is None:
        return None
    engine = create_async_engine(
        target,
        async_creator=sqlite_inline.creator(
            str(target.database),
            SQLITE_BUSY_TIMEOUT_MS,
            reads=True,
            statement_timeout_ms=settings.db_statement_timeout_ms,
        ),
        poolclass=FairAsyncQueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        hide_parameters=True,  # the security check reads by token digest on these engines
    )
    return engine


def create_read_engine(url: str, settings: Settings) -> AsyncEngine | None:
    """SQLite reads in worker threads (aiosqlite): NESTAUTH_DB_POOL_SIZE connections."""
    target = _file_database(url)
    if target is None:
        return None
    engine = create_async_engine(
        target,
        poolclass=FairAsyncQueuePool,
        pool_size=settings.db_pool_size,
        max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        hide_parameters=True,
    )
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the BEGIN is ours (below), not sqlite3's
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA query_only=ON")  # a write sent here fails, it never locks
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # DEFERRED: a WAL snapshot for the request's reads, never the write lock.
        connection.exec_driver_sql("BEGIN")

    _add_deadlines(engine, settings.db_statement_timeout_ms)
    return engine


def writes_blocked(engine: AsyncEngine) -> bool:
    """SQLite: writes wait (or recently gave up) on a write lock held by another process."""
    watch = _lock_watches.get(engine.sync_engine)
    return watch is not None and watch.writes_blocked


def _add_deadlines(engine: AsyncEngine, timeout_ms: int) -> None:
    """aiosqlite: each statement (its rows fetched included) is stopped once it has run
    `timeout_ms` (nestauth.sqlite_inline arms its own connections itself).

    The progress handler is installed once per connection; the events arm it before each
    statement and disarm it after, so a commit or an idle connection is never stopped."""
    sync_engine, seconds = engine.sync_engine, timeout_ms / 1000

    @event.listens_for(sync_engine, "connect")
    def _install(dbapi_connection: Any, record: Any) -> None:
        deadline = record.info[DEADLINE_KEY] = sqlite_inline.StatementDeadline()
        dbapi_connection.run_async(
            lambda raw: raw.set_progress_handler(deadline, sqlite_inline.PROGRESS_STEPS)
        )

    @event.listens_for(sync_engine, "before_cursor_execute")
    def _arm(connection: Any, *_args: Any) -> None:
        connection.connection.info[DEADLINE_KEY].expires = time.monotonic() + seconds

    @event.listens_for(sync_engine, "after_cursor_execute")
    def _disarm(connection: Any, *_args: Any) -> None:
        connection.connection.info[DEADLINE_KEY].expires = math.inf

    @event.listens_for(sync_engine, "handle_error")
    def _disarm_after_error(context: Any) -> None:
        record = getattr(context.connection, "_dbapi_connection", None)
        deadline = record.info.get(DEADLINE_KEY) if record is not None else None
        if deadline is not None:
            deadline.expires = math.inf


def _configure_postgresql(engine: AsyncEngine, statement_timeout_ms: int) -> None:
    """No statement may hold a connection (and a request) longer than the limit."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"SET statement_timeout = {int(statement_timeout_ms)}")
        cursor.close()
        dbapi_connection.commit()


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL and foreign keys; autocommit, BEGIN IMMEDIATE and busy handling live in
    nestauth.sqlite_inline."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


class ReadRoutingSession(Session):
    """A GET request's session on SQLite: plain SELECTs go to a read engine (the threaded
    one once THREADED_READS is set in the session's info); anything else goes to the write
    engine, so the rare write of a GET (the admin session's touch, an audit event for a
    refused action) still works and commits with the session."""

    def get_bind(self, mapper: Any = None, *, clause: Any = None, **kw: Any) -> Any:
        threaded = self.info.get(THREADED_READS, False)
        read_bind = self.info.get(THREADED_READ_BIND_KEY if threaded else READ_BIND_KEY)
        plain_read = isinstance(clause, Select) and clause._for_update_arg is None
        if read_bind is not None and plain_read and not self._flushing:
            return read_bind
        return super().get_bind(mapper, clause=clause, **kw)


def session_factory(
    engine: AsyncEngine,
    read_engine: AsyncEngine | None = None,
    threaded_read_engine: AsyncEngine | None = None,
) -> async_sessionmaker[AsyncSession]:
    if read_engine is None or threaded_read_engine is None:
        return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
    return async_sessionmaker(
        engine,
        sync_session_class=ReadRoutingSession,
        info={
            READ_BIND_KEY: read_engine.sync_engine,
            THREADED_READ_BIND_KEY: threaded_read_engine.sync_engine,
        },
        expire_on_commit=False,
        autoflush=True,
    )
