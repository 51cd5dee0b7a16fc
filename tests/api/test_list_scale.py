"""Issue 11 part 3: every list pages by cursor at any depth, refuses deep page numbers,
counts cheaply, and reads a short range of an index (EXPLAIN on both databases)."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import AuditEvent, User, core_table, utcnow
from nestauth.services.emails import normalize_email
from tests.support import Api, Signed, assert_error, sign_in

USERS, AUDIT, ADMINS = "/auth/admin/api/users", "/auth/admin/api/audit-logs", "/auth/admin/admins"
T0 = utcnow().replace(microsecond=0) - timedelta(days=1)


def insert_users(api: Api, moments: list[datetime], prefix: str = "u") -> list[str]:
    """Users created at these moments, inserted in one Core statement (fast in bulk)."""
    rows = [
        {"id": uuid.uuid4(), "email": normalize_email(f"{prefix}{n}@example.com"),
         "is_active": True, "is_verified": False, "is_mfa_enabled": False,
         "created_at": moment, "updated_at": moment}
        for n, moment in enumerate(moments)
    ]  # fmt: skip

    async def insert(session: AsyncSession) -> None:
        await session.execute(sa.insert(core_table(User)), rows)

    api.db(insert)
    return [str(row["id"]) for row in rows]


def insert_events(api: Api, count: int, *, at: datetime = T0, action: str = "bench.event") -> None:
    rows = [
        {"id": uuid.uuid4(), "occurred_at": at, "action": action, "actor_type": "anonymous"}
        for _ in range(count)
    ]

    async def insert(session: AsyncSession) -> None:
        await session.execute(sa.insert(core_table(AuditEvent)), rows)

    api.db(insert)


def get(api: Api, owner: Signed, url: str, **params: Any) -> dict[str, Any]:
    response = api.client.get(url, params=params, headers=owner.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def walk(api: Api, owner: Signed, url: str, between: Any = None, **params: Any) -> list[str]:
    """Every id of a list, page by page through meta.nextCursor; `between` runs between
    pages (rows added meanwhile)."""
    seen, body = [], get(api, owner, url, **params)
    while True:
        seen += [row["id"] for row in body["data"]]
        cursor = body["meta"]["nextCursor"]
        if cursor is None:
            return seen
        if between:
            between()
        body = get(api, owner, url, cursor=cursor, **params)


class TestCursorPagination:
    def test_no_user_skipped_or_repeated_while_users_are_added(self, api: Api) -> None:
        owner = sign_in(api)
        # Ties on created_at: the id decides, in both databases the same way.
        moments = [T0 - timedelta(minutes=n // 3) for n in range(13)]
        ids = insert_users(api, moments)
        expected = sorted(zip(moments, map(uuid.UUID, ids), strict=True), reverse=True)
        added: list[str] = []

        def add_newest_and_oldest() -> None:
            newest = insert_users(api, [utcnow()], prefix=f"new{len(added)}-")
            added.extend(newest + insert_users(api, [T0 - timedelta(days=9 + len(added))],
                                               prefix=f"old{len(added)}-"))  # fmt: skip

        seen = walk(api, owner, USERS, add_newest_and_oldest, limit=4)
        assert len(seen) == len(set(seen))
        assert [i for i in seen if i in ids] == [str(i) for _, i in expected]
        assert added[0] not in seen  # newer than the first page: not in a walk begun before
        assert added[1] in seen  # older than the cursor: reached

    def test_meta_page_counts_on_through_cursors(self, api: Api) -> None:
        owner = sign_in(api)
        insert_users(api, [T0 - timedelta(seconds=n) for n in range(5)])
        first = get(api, owner, USERS, limit=2)
        second = get(api, owner, USERS, limit=2, cursor=first["meta"]["nextCursor"])
        third = get(api, owner, USERS, limit=2, cursor=second["meta"]["nextCursor"])
        assert [b["meta"]["page"] for b in (first, second, third)] == [1, 2, 3]
        assert third["meta"]["nextCursor"] is None and len(third["data"]) == 1
        by_number = get(api, owner, USERS, limit=2, page=2)
        assert by_number["data"] == second["data"]

    def test_audit_walk_with_ties_and_a_filter(self, api: Api) -> None:
        owner = sign_in(api)
        insert_events(api, 7, action="test.tied")  # all at one moment
        insert_events(api, 3, action="test.other")
        added = []

        def add_older() -> None:  # beyond every cursor: the walk must reach each
            added.append(1)
            insert_events(api, 1, at=T0 - timedelta(days=len(added)), action="test.tied")

        walked = walk(api, owner, AUDIT, add_older, limit=3, action="test.tied")
        assert len(added) >= 2
        assert len(walked) == len(set(walked)) == 7 + len(added)

    def test_search_walks_in_email_order(self, api: Api) -> None:
        owner = sign_in(api)
        insert_users(api, [T0] * 7, prefix="match-")
        insert_users(api, [T0] * 3, prefix="other-")
        seen = walk(api, owner, USERS, limit=2, search="MATCH-")
        emails = [api.scalar(sa.select(User.email).where(User.id == uuid.UUID(i))) for i in seen]
        assert emails == sorted(f"match-{n}@example.com" for n in range(7))

    def test_admins_walk(self, api: Api) -> None:
        owner = sign_in(api)
        for _ in range(4):
            api.create_admin("viewer")
        assert len(set(walk(api, owner, ADMINS, limit=2))) == 5


class TestPageDepth:
    @pytest.mark.parametrize("url", [USERS, AUDIT, ADMINS, USERS + "/{user}/sessions"])
    def test_page_numbers_reach_10000_rows_then_400(self, api: Api, url: str) -> None:
        owner = sign_in(api)
        url = url.format(user=api.create_user().id)
        for page, limit in ((500, 20), (100, 100), (10_000, 1)):
            assert get(api, owner, url, page=page, limit=limit)["data"] == []
        for page, limit in ((501, 20), (101, 100), (1_000_000, 1)):
            response = api.client.get(url, params={"page": page, "limit": limit},
                                      headers=owner.headers)  # fmt: skip
            assert_error(response, 400, "PAGE_TOO_DEEP")
            assert response.json()["details"] == {"maxDepth": 10_000}


def forged(kind: str, page: Any, values: list[Any]) -> str:
    raw = json.dumps({"k": kind, "p": page, "v": values}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class TestBadCursors:
    def test_400_for_any_cursor_the_list_did_not_issue(self, api: Api) -> None:
        owner = sign_in(api)
        insert_users(api, [T0, T0])
        users_cursor = get(api, owner, USERS, limit=1)["meta"]["nextCursor"]
        search_cursor = get(api, owner, USERS, limit=1, search="u")["meta"]["nextCursor"]
        moment, some_id = T0.isoformat(), str(uuid.uuid4())
        refused = [
            (AUDIT, users_cursor), (USERS, search_cursor), (USERS, users_cursor, {"search": "u"}),
            (USERS, "abc"), (USERS, "A" * 1024), (USERS, forged("users", 1, [moment, some_id])),
            (USERS, forged("users", "2", [moment, some_id])),
            (USERS, forged("users", 2, ["yesterday", some_id])),
            (USERS, forged("users", 2, [T0.replace(tzinfo=None).isoformat(), some_id])),
            (USERS, forged("users", 2, [moment, "not-a-uuid"])),
            (USERS, forged("users", 2, ["0001-01-01T00:00:00+01:00", some_id])),
            (USERS, forged("users", 2, [moment + "\u0000", some_id])),
            (USERS, forged("users-search", 2, ["\ud800"]), {"search": "u"}),
            (USERS, forged("users", 2, [moment])), (USERS, forged("users", 2, [1, 2])),
            (USERS, base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=")),
        ]  # fmt: skip
        before = api.snapshot()
        for url, cursor, *search in refused:
            params = {"cursor": cursor, **(search[0] if search else {})}
            response = api.client.get(url, params=params, headers=owner.headers)
            assert_error(response, 400, "CURSOR_INVALID")
        assert api.snapshot() == before

    def test_400_validation_for_characters_outside_base64url(self, api: Api) -> None:
        owner = sign_in(api)
        for cursor in ("a b", "a=", "é", "A" * 1025):
            response = api.client.get(USERS, params={"cursor": cursor}, headers=owner.headers)
            assert_error(response, 400, "VALIDATION_FAILED")


class TestTotals:
    def test_exact_up_to_1000_then_capped_and_flagged(self, api: Api) -> None:
        owner = sign_in(api)
        insert_events(api, 1_000, action="test.bulk")
        exact = get(api, owner, AUDIT, action="test.bulk")["meta"]
        assert (exact["total"], exact["totalExact"], exact["totalPages"]) == (1_000, True, 50)
        insert_events(api, 1, action="test.bulk")
        capped = get(api, owner, AUDIT, action="test.bulk")["meta"]
        assert (capped["total"], capped["totalExact"], capped["totalPages"]) == (1_000, False, 50)
        beyond = get(api, owner, AUDIT, action="test.bulk", page=51)  # still reachable
        assert len(beyond["data"]) == 1
        few = get(api, owner, AUDIT, action="admin.login")["meta"]  # the owner's sign-in
        assert (few["total"], few["totalExact"]) == (1, True)


# --- the queries use an index: EXPLAIN every statement a list request runs ---------------


@contextmanager
def statements(api: Api) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    # On SQLite, GETs read through read-only engines of their own (lists in threads).
    names = ("engine", "read_engine", "threaded_read_engine")
    engines = [e.sync_engine for n in names if (e := getattr(api.runtime, n, None)) is not None]
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", record)


def plans(api: Api, captured: list[tuple[str, Any]]) -> list[str]:
    async def explain(session: AsyncSession) -> list[str]:
        conn = await session.connection()
        postgresql = conn.dialect.name == "postgresql"
        if postgresql:  # tables of a few rows: the costs would prefer reading them whole.
            # Discouraged, these remain only when no index can serve the order and filter.
            for method in ("seqscan", "bitmapscan", "sort"):
                await conn.exec_driver_sql(f"SET LOCAL enable_{method} = off")
        prefix = "EXPLAIN " if postgresql else "EXPLAIN QUERY PLAN "
        found = []
        for statement, parameters in captured:
            rows = await conn.exec_driver_sql(prefix + statement, parameters)
            found.append("\n".join(str(row[-1]) for row in rows))
        return found

    return api.db(explain)


LISTED = ("users", "audit_events", "admins", "user_sessions")


def assert_indexed(plan: str) -> None:
    """No table read whole, no sort of the matches: a range of an index, in its order."""
    for line in plan.splitlines():
        assert "Seq Scan" not in line and "TEMP B-TREE" not in line, plan
        step = line.strip().removeprefix("->").strip()
        assert not step.startswith(("Sort", "Incremental Sort")), plan
        for table in LISTED:
            assert not step.endswith(f"SCAN {table}"), plan


class TestListsUseIndexes:
    def test_every_list_query_is_an_index_range(self, api: Api) -> None:
        owner = sign_in(api)
        user = api.create_user(sessions=3)
        insert_users(api, [T0, T0, T0])
        first = get(api, owner, USERS, limit=1)
        requests = [
            (USERS, {}), (USERS, {"cursor": first["meta"]["nextCursor"]}),
            (USERS, {"search": "u1"}), (USERS, {"status": "inactive"}),
            (USERS, {"status": "unverified", "limit": 1, "cursor": first["meta"]["nextCursor"]}),
            (AUDIT, {}), (AUDIT, {"userId": user.id}), (AUDIT, {"actorId": owner.id}),
            (AUDIT, {"action": "admin.login"}), (ADMINS, {}),
            (f"{USERS}/{user.id}/sessions", {}), (f"{USERS}/{user.id}", {}),
        ]  # fmt: skip
        for url, params in requests:
            with statements(api) as captured:
                get(api, owner, url, **params)
            listing = [(s, p) for s, p in captured if any(t in s for t in LISTED)]
            assert len(listing) >= 2, (url, captured)  # the page and its count, at least
            for plan in plans(api, listing):
                assert_indexed(plan)
