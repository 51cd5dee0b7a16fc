"""Issue 11 part 2: reads do not take the write lock. GET requests (their security check
included) are served while another connection holds the write lock; writes wait for it,
and health says so; a long read does not hold the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from nestauth import db
from nestauth.models import User
from tests.support import Api, bearer, make_settings
from tests.write_lock import held_write_lock

USERS = "/auth/admin/api/users"


def signed_in(api: Api, role: str = "admin") -> dict[str, str]:
    headers = bearer(api.login(api.create_admin(role))["token"])
    api.client.cookies.clear()  # the bearer alone counts
    return headers


def until(condition: Callable[[], bool], attempts: int = 500) -> None:
    """Waits for another thread to reach a state (synchronisation, not a time limit)."""
    for _ in range(attempts):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the other thread never got there")


def write_is_waiting(api: Api, database_url: str) -> bool:
    if db.is_sqlite(database_url):
        return bool(api.client.get("/auth/health").json()["writes"] == "blocked")
    waiting = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
    return int(api.scalar(sa.text(waiting))) > 0


class TestReadsWhileAWriteLockIsHeld:
    def test_get_requests_and_health_are_served(self, api: Api, database_url: str) -> None:
        headers = signed_in(api)
        email = f"reader-{uuid.uuid4().hex[:8]}@example.com"
        user_id = api.client.post(USERS, json={"email": email}, headers=headers).json()["user"][
            "id"
        ]
        with held_write_lock(database_url):
            me = api.client.get("/auth/admin/me", headers=headers)
            listed = api.client.get(USERS, headers=headers, params={"search": email})
            item = api.client.get(f"{USERS}/{user_id}", headers=headers)
            health = api.client.get("/auth/health")
        assert me.status_code == 200, me.text
        assert [row["id"] for row in listed.json()["data"]] == [user_id], listed.text
        assert item.json()["user"]["email"] == email, item.text
        assert health.status_code == 200, health.text
        assert health.json()["database"] == "ok"

    def test_a_write_waits_for_the_lock_and_goes_through_once_it_is_released(
        self, api: Api, database_url: str
    ) -> None:
        headers = signed_in(api)
        email = f"waiter-{uuid.uuid4().hex[:8]}@example.com"
        answers: list[httpx.Response] = []
        with held_write_lock(database_url):
            writer = threading.Thread(
                target=lambda: answers.append(
                    api.client.post(USERS, json={"email": email}, headers=headers)
                )
            )
            writer.start()
            until(lambda: write_is_waiting(api, database_url))
            assert api.client.get(USERS, headers=headers).status_code == 200  # reads go on
            assert answers == []  # the write is still waiting
        writer.join()
        assert answers[0].status_code == 201, answers[0].text
        assert api.count(User, User.email == email) == 1
        assert api.client.get("/auth/health").json()["writes"] == "ok"


class TestTheReadEngine:
    def test_a_long_read_leaves_the_event_loop_free(self, database_url: str) -> None:
        """The loop keeps turning while a read runs: on the write engine (on the loop's
        thread) it would not turn once until the statement ends."""
        settings = make_settings(database_url, db_statement_timeout_ms=300)
        slow = (
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
            "WHERE i < 1000000000) SELECT count(*) FROM n"
            if db.is_sqlite(database_url)
            else "SELECT pg_sleep(0.3)"
        )

        async def scenario() -> int:
            engine = db.create_read_engine(database_url, settings) or db.create_engine(
                database_url, settings
            )
            turns = 0

            async def read() -> None:
                async with engine.connect() as connection:
                    try:
                        await connection.execute(sa.text(slow))
                    except DBAPIError as exc:
                        assert db.is_statement_timeout(exc)

            task = asyncio.create_task(read())
            while not task.done():
                turns += 1
                await asyncio.sleep(0)
            await task
            await engine.dispose()
            return turns

        assert asyncio.run(scenario()) > 10

    def test_a_write_on_a_read_connection_fails_and_takes_no_lock(
        self, api: Api, database_url: str
    ) -> None:
        settings = make_settings(database_url)

        async def scenario() -> Any:
            engine = db.create_read_engine(database_url, settings)
            if engine is None:  # PostgreSQL: reads and writes share one engine
                return None
            try:
                async with engine.connect() as connection:
                    with pytest.raises(DBAPIError) as refused:
                        await connection.execute(
                            sa.insert(User).values(id=uuid.uuid4(), email="no@example.com")
                        )
                    return refused.value
            finally:
                await engine.dispose()

        refused = asyncio.run(scenario())
        assert refused is None or "readonly" in str(refused).replace("-", "")
        assert api.count(User) == 0


class TestWhereGetRequestsRead:
    """SQLite: a list's reads run in worker threads, a single item's on the loop's thread;
    PostgreSQL has one engine for everything."""

    @staticmethod
    def statements_on(engine: Any, request: Callable[[], httpx.Response]) -> int:
        if engine is None:
            assert request().status_code == 200
            return 0
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(args[2])

        sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            assert request().status_code == 200
        finally:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
        return sum(1 for sql in seen if sql.lstrip().upper().startswith("SELECT"))

    def test_lists_read_in_threads_and_items_on_the_loop(self, api: Api) -> None:
        headers = signed_in(api)
        user_id = api.client.post(USERS, json={"email": "where@example.com"}, headers=headers)
        item = f"{USERS}/{user_id.json()['user']['id']}"
        runtime = api.runtime
        threaded, inline = runtime.threaded_read_engine, runtime.read_engine

        def listing() -> httpx.Response:
            return api.client.get(USERS, headers=headers, params={"search": "where"})

        def one() -> httpx.Response:
            return api.client.get(item, headers=headers)

        if threaded is None:  # PostgreSQL
            assert inline is None
            assert listing().status_code == one().status_code == 200
            return
        assert self.statements_on(threaded, listing) >= 2  # the admin's session, the page
        assert self.statements_on(inline, listing) == 0
        assert self.statements_on(inline, one) >= 2
        assert self.statements_on(threaded, one) == 0
