"""Engine, URL handling and the per-request session (commit or roll back at the edge)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from nestauth import sqlite_inline
from nestauth.config import Settings
from nestauth.fair_pool import FairAsyncQueuePool

SQLITE_BUSY_TIMEOUT_MS = 10_000


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
    target = async_url(url)
    limits = settings or Settings(database_url=url, secret_key="")
    if is_sqlite(target):
        # One connection: SQLite has a single writer, and requests then queue in order on
        # the pool instead of polling the file lock (see nestauth.sqlite_inline).
        engine = create_async_engine(
            target,
            async_creator=sqlite_inline.creator(
                target.database or ":memory:", SQLITE_BUSY_TIMEOUT_MS
            ),
            poolclass=FairAsyncQueuePool,
            pool_size=1,
            max_overflow=0,
            pool_timeout=limits.db_pool_timeout_seconds,
            hide_parameters=True,  # token digests in exception messages would reach the logs
        )
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


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=True)
