"""Issue 11 part 1: every statement has a deadline (NESTAUTH_DB_STATEMENT_TIMEOUT_MS), on
SQLite too; a statement stopped at it rolls its transaction back and the request is
answered 503 STATEMENT_TIMEOUT, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from nestauth import db
from nestauth.app import create_app
from nestauth.models import AuditEvent, User
from tests.support import PASSWORD, Api, assert_error, bearer, make_settings
from tests.write_lock import held_write_lock

# Runs for minutes unless stopped: the tests finish only because the deadline stops it.
SLOW = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 1000000000) SELECT count(*) FROM n",
    "postgresql": "SELECT pg_sleep(600)",
}
# The same, its cost in fetching the rows rather than in the first step.
SLOW_ROWS = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
    "WHERE i < 1000000000) SELECT i FROM n",
    "postgresql": "SELECT pg_sleep(0.001) FROM generate_series(1, 600000)",
}


def backend(url: str) -> str:
    return "sqlite" if db.is_sqlite(url) else "postgresql"


async def write_then_run(engine: AsyncEngine, email: str, statement: str) -> BaseException:
    """Inserts a user, then runs `statement` in the same transaction; returns its error."""
    async with engine.connect() as connection:
        await connection.execute(sa.insert(User).values(id=uuid.uuid4(), email=email))
        try:
            await connection.execute(sa.text(statement))
        except DBAPIError as exc:
            await connection.rollback()
            return exc
        raise AssertionError("the statement was not stopped")


class TestSessionLayer:
    @pytest.mark.parametrize("kind", ["first step", "rows"])
    def test_a_runaway_statement_is_stopped_and_its_transaction_rolled_back(
        self, api: Api, database_url: str, kind: str
    ) -> None:
        settings = make_settings(database_url, db_statement_timeout_ms=200)
        statement = (SLOW if kind == "first step" else SLOW_ROWS)[backend(database_url)]
        email = f"half-written-{uuid.uuid4().hex[:8]}@example.com"

        async def scenario() -> BaseException:
            engine = db.create_engine(database_url, settings)
            try:
                return await write_then_run(engine, email, statement)
            finally:
                await engine.dispose()

        error = asyncio.run(scenario())
        assert db.is_statement_timeout(error), error
        assert api.count(User, User.email == email) == 0

    def test_the_engine_still_serves_after_a_stopped_statement(self, database_url: str) -> None:
        """The deadline is disarmed after each statement: the next ones are not stopped."""
        settings = make_settings(database_url, db_statement_timeout_ms=200)

        async def scenario() -> int:
            engine = db.create_engine(database_url, settings)
            try:
                async with engine.connect() as connection:
                    with pytest.raises(DBAPIError) as stopped:
                        await connection.execute(sa.text(SLOW[backend(database_url)]))
                    assert db.is_statement_timeout(stopped.value)
                    await connection.rollback()
                    return int((await connection.execute(sa.text("SELECT 7"))).scalar_one())
            finally:
                await engine.dispose()

        assert asyncio.run(scenario()) == 7

    @pytest.mark.parametrize(
        "make_read_engine", [db.create_inline_read_engine, db.create_read_engine]
    )
    def test_reads_of_get_requests_have_the_deadline_too(
        self, database_url: str, make_read_engine: Any
    ) -> None:
        """SQLite's read engines (inline, worker threads); PostgreSQL reads on its one engine."""
        settings = make_settings(database_url, db_statement_timeout_ms=200)

        async def scenario() -> BaseException:
            read_engine = make_read_engine(database_url, settings)
            engine = read_engine or db.create_engine(database_url, settings)
            assert (read_engine is None) == (backend(database_url) == "postgresql")
            try:
                async with engine.connect() as connection:
                    with pytest.raises(DBAPIError) as stopped:
                        await connection.execute(sa.text(SLOW["sqlite"]))
                    return stopped.value
            finally:
                await engine.dispose()

        assert db.is_statement_timeout(asyncio.run(scenario()))


@contextmanager
def app_with_deadline(database_url: str, timeout_ms: int) -> Iterator[Any]:
    settings = make_settings(database_url, db_statement_timeout_ms=timeout_ms)
    with create_app(settings).test_client() as client:
        yield client


class TestThroughARequest:
    def test_a_write_stopped_at_its_deadline_is_a_503_statement_timeout_with_nothing_stored(
        self, api: Api, database_url: str
    ) -> None:
        before = db.STATEMENT_TIMEOUTS.count
        email = f"never-{uuid.uuid4().hex[:8]}@example.com"
        with app_with_deadline(database_url, 300) as client:
            token = client.post(
                "/auth/admin/login", json={"email": api.create_admin("admin"), "password": PASSWORD}
            ).json()["token"]
            client.cookies.clear()
            with held_write_lock(database_url):
                response = client.post(
                    "/auth/admin/api/users", json={"email": email}, headers=bearer(token)
                )
                assert_error(response, 503, "STATEMENT_TIMEOUT")
                # Reads go on meanwhile, and health stays 200.
                health = client.get("/auth/health")
                assert health.status_code == 200, health.text
                if db.is_sqlite(database_url):  # PostgreSQL has no file-wide write lock
                    assert health.json()["writes"] == "blocked"
        assert api.count(User, User.email == email) == 0
        assert api.count(AuditEvent, AuditEvent.action == "user.created") == 0
        assert db.STATEMENT_TIMEOUTS.count == before + 1
