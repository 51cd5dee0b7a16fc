"""GET and POST /auth/admin/api/users: contract §4, listing and creating users."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth.models import AuditEvent, User, utcnow
from nestauth.services import users
from tests.support import Api, assert_admin_event, assert_error, bearer

URL = "/auth/admin/api/users"
USER_KEYS = {
    "id", "email", "phone", "isActive", "isVerified", "isMfaEnabled", "metadata",
    "createdAt", "updatedAt",
}  # fmt: skip


def signed_in(api: Api, role: str = "admin", agent: str = "users-test/1.0") -> tuple[dict, dict]:
    """Bearer headers and the admin; the login cookie is dropped so only the bearer counts."""
    login = api.login(api.create_admin(role))
    api.client.cookies.clear()
    return {**bearer(login["token"]), "User-Agent": agent}, login["admin"]


def make_user(api: Api, email: str, minutes_ago: int = 0, **fields: Any) -> str:
    async def create(session: AsyncSession) -> str:
        user = await users.create_user(session, email=email, **fields)
        user.created_at = utcnow() - timedelta(minutes=minutes_ago)
        await session.flush()
        return str(user.id)

    return api.db(create)


def emails(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [user["email"] for user in response.json()["data"]]


def user_row(api: Api, email: str) -> User | None:
    return api.scalar(sa.select(User).where(User.email == email))


class TestListUsers:
    def test_200_meta_and_newest_first(self, api: Api) -> None:
        for minutes in range(5):
            make_user(api, f"user{minutes}@example.com", minutes_ago=minutes)
        headers, _ = signed_in(api)
        response = api.client.get(URL, params={"limit": 2, "page": 1}, headers=headers)
        assert emails(response) == ["user0@example.com", "user1@example.com"]
        assert response.json()["meta"] == {"page": 1, "limit": 2, "total": 5, "totalPages": 3,
                                           "totalExact": True, "nextCursor": ANY}  # fmt: skip
        last = api.client.get(URL, params={"limit": 2, "page": 3}, headers=headers)
        assert emails(last) == ["user4@example.com"]
        assert last.json()["meta"] == {"page": 3, "limit": 2, "total": 5, "totalPages": 3,
                                       "totalExact": True, "nextCursor": None}  # fmt: skip
        beyond = api.client.get(URL, params={"limit": 2, "page": 4}, headers=headers)
        assert emails(beyond) == []

    def test_200_defaults_and_user_shape(self, api: Api) -> None:
        make_user(api, "alice@example.com", phone="+15550100", metadata={"team": "support"})
        response = api.client.get(URL, headers=signed_in(api)[0])
        body = response.json()
        assert body["meta"] == {"page": 1, "limit": 20, "total": 1, "totalPages": 1,
                                "totalExact": True, "nextCursor": None}  # fmt: skip
        (user,) = body["data"]
        assert set(user) == USER_KEYS
        assert (user["phone"], user["metadata"]) == ("+15550100", {"team": "support"})

    def test_200_empty_list(self, api: Api) -> None:
        response = api.client.get(URL, headers=signed_in(api)[0])
        assert response.json() == {
            "data": [],
            "meta": {
                "page": 1,
                "limit": 20,
                "total": 0,
                "totalPages": 0,
                "totalExact": True,
                "nextCursor": None,
            },  # fmt: skip
        }

    def test_200_limit_bounds_accepted(self, api: Api) -> None:
        make_user(api, "alice@example.com")
        headers, _ = signed_in(api)
        for limit in (1, 100):
            response = api.client.get(URL, params={"limit": limit}, headers=headers)
            assert response.json()["meta"]["limit"] == limit

    def test_400_limit_page_out_of_bounds(self, api: Api) -> None:
        headers, _ = signed_in(api)
        for query in ({"limit": 0}, {"limit": 101}, {"page": 0}, {"page": -1}, {"limit": "x"}):
            response = api.client.get(URL, params=query, headers=headers)
            assert_error(response, 400, "VALIDATION_FAILED")

    def test_200_search_is_case_insensitive(self, api: Api) -> None:
        make_user(api, "Alice.Smith@Example.com")
        make_user(api, "bob@example.com")
        headers, _ = signed_in(api)
        for term in ("ALICE", " alice.SMITH@ex", "alice.smith@example.com"):
            response = api.client.get(URL, params={"search": term}, headers=headers)
            assert emails(response) == ["alice.smith@example.com"]
            assert response.json()["meta"]["total"] == 1

    def test_200_search_matches_percent_and_underscore_literally(self, api: Api) -> None:
        make_user(api, "a_b@example.com", minutes_ago=1)
        make_user(api, "axb@example.com", minutes_ago=2)
        make_user(api, "50%off@example.com", minutes_ago=3)
        make_user(api, "5x_off@example.com", minutes_ago=4)
        headers, _ = signed_in(api)

        def search(term: str) -> list[str]:
            return emails(api.client.get(URL, params={"search": term}, headers=headers))

        assert search("a_") == ["a_b@example.com"]
        assert search("a_b") == ["a_b@example.com"]
        assert search("a") == ["a_b@example.com", "axb@example.com"]  # in email order
        assert search("_") == []
        assert search("%") == []
        assert search("50%") == ["50%off@example.com"]
        assert search("5_") == []
        assert search("a%") == []
        assert search("axb") == ["axb@example.com"]

    def test_200_status_filters(self, api: Api) -> None:
        make_user(api, "active-verified@example.com", minutes_ago=1, is_verified=True)
        make_user(api, "active-unverified@example.com", minutes_ago=2)
        make_user(api, "inactive-verified@example.com", 3, is_active=False, is_verified=True)
        make_user(api, "inactive-unverified@example.com", minutes_ago=4, is_active=False)
        headers, _ = signed_in(api)

        def status(value: str) -> list[str]:
            return emails(api.client.get(URL, params={"status": value}, headers=headers))

        assert status("active") == ["active-verified@example.com", "active-unverified@example.com"]
        assert status("inactive") == [
            "inactive-verified@example.com",
            "inactive-unverified@example.com",
        ]
        assert status("verified") == [
            "active-verified@example.com",
            "inactive-verified@example.com",
        ]
        assert status("unverified") == [
            "active-unverified@example.com",
            "inactive-unverified@example.com",
        ]
        both = api.client.get(
            URL, params={"status": "inactive", "search": "inactive-unv"}, headers=headers
        )
        assert emails(both) == ["inactive-unverified@example.com"]

    def test_400_unknown_status(self, api: Api) -> None:
        response = api.client.get(URL, params={"status": "deleted"}, headers=signed_in(api)[0])
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_400_unknown_query_parameter(self, api: Api) -> None:
        response = api.client.get(URL, params={"sort": "email"}, headers=signed_in(api)[0])
        assert_error(response, 400, "VALIDATION_FAILED")

    def test_200_viewer_may_list(self, api: Api) -> None:
        make_user(api, "alice@example.com")
        response = api.client.get(URL, headers=signed_in(api, "viewer")[0])
        assert emails(response) == ["alice@example.com"]

    def test_401_without_auth(self, api: Api) -> None:
        assert_error(api.client.get(URL), 401, "NO_AUTH_PROVIDED")
        response = api.client.get(URL, headers={"Authorization": "Bearer garbage"})
        assert_error(response, 401, "SESSION_INVALID")


class TestCreateUser:
    def test_201_returns_the_user(self, api: Api) -> None:
        body = {
            "email": "alice@example.com",
            "phone": "+1 555 0100",
            "isActive": False,
            "isVerified": True,
            "metadata": {"team": "support", "seats": 3, "trial": False, "note": None},
        }
        response = api.client.post(URL, json=body, headers=signed_in(api)[0])
        assert response.status_code == 201, response.text
        user = response.json()["user"]
        assert set(response.json()) == {"user"}
        assert set(user) == USER_KEYS
        assert {key: user[key] for key in body} == body
        assert user["isMfaEnabled"] is False
        row = user_row(api, "alice@example.com")
        assert str(row.id) == user["id"]
        assert (row.is_active, row.is_verified, row.password_hash) == (False, True, None)

    def test_201_defaults(self, api: Api) -> None:
        response = api.client.post(
            URL, json={"email": "bob@example.com"}, headers=signed_in(api)[0]
        )
        user = response.json()["user"]
        assert (user["isActive"], user["isVerified"], user["phone"], user["metadata"]) == (
            True, False, None, None,
        )  # fmt: skip

    def test_201_email_normalised_to_lower_case(self, api: Api) -> None:
        response = api.client.post(
            URL, json={"email": "Alice@Example.COM"}, headers=signed_in(api)[0]
        )
        assert response.status_code == 201, response.text
        assert response.json()["user"]["email"] == "alice@example.com"
        assert user_row(api, "alice@example.com") is not None

    def test_201_password_hashed_with_argon2id_and_never_returned(self, api: Api) -> None:
        password = "a long user password"
        body = {"email": "alice@example.com", "password": password}
        response = api.client.post(URL, json=body, headers=signed_in(api)[0])
        assert response.status_code == 201, response.text
        assert password not in response.text
        assert "password" not in response.text.lower()
        stored = user_row(api, "alice@example.com").password_hash
        assert stored.startswith("$argon2id$")
        assert password not in stored

    def test_409_email_taken_in_another_case(self, api: Api) -> None:
        make_user(api, "bob@example.com")
        headers, _ = signed_in(api)
        response = api.client.post(URL, json={"email": "BOB@Example.com"}, headers=headers)
        assert_error(response, 409, "EMAIL_ALREADY_EXISTS")
        assert api.count(User) == 1
        assert api.count(AuditEvent, AuditEvent.action == "user.created") == 0

    def test_400_invalid_bodies_create_nothing(self, api: Api) -> None:
        headers, _ = signed_in(api)
        bad_bodies = [
            {"email": "not-an-email"},
            {"email": "alice@localhost"},
            {},
            {"email": "alice@example.com", "role": "admin"},
            {"email": "alice@example.com", "password": "short"},
            {"email": "alice@example.com", "metadata": {"address": {"city": "Paris"}}},
            {"email": "alice@example.com", "metadata": {"tags": ["a", "b"]}},
            {"email": "alice@example.com", "isActive": "yes"},
            {"email": "alice@example.com", "phone": "call me"},
        ]
        for body in bad_bodies:
            response = api.client.post(URL, json=body, headers=headers)
            assert_error(response, 400, "VALIDATION_FAILED")
        assert api.count(User) == 0

    def test_403_viewer_creates_nothing(self, api: Api) -> None:
        headers, _ = signed_in(api, "viewer")
        response = api.client.post(URL, json={"email": "alice@example.com"}, headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert api.count(User) == 0

    def test_403_viewer_before_400(self, api: Api) -> None:
        headers, _ = signed_in(api, "viewer")
        response = api.client.post(URL, json={"email": "nope"}, headers=headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_403_cookie_without_csrf_header(self, api: Api) -> None:
        login = api.login(api.create_admin("admin"))
        response = api.client.post(URL, json={"email": "alice@example.com"})
        assert_error(response, 403, "CSRF_TOKEN_INVALID")
        assert api.count(User) == 0
        headers = {"X-CSRF-Token": login["csrfToken"]}
        response = api.client.post(URL, json={"email": "alice@example.com"}, headers=headers)
        assert response.status_code == 201, response.text

    def test_401_without_auth(self, api: Api) -> None:
        response = api.client.post(URL, json={"email": "alice@example.com"})
        assert_error(response, 401, "NO_AUTH_PROVIDED")
        assert api.count(User) == 0

    def test_201_writes_audit_event_without_the_password(self, api: Api) -> None:
        password = "a long user password"
        headers, admin = signed_in(api, agent="audit-test/2.0")
        body = {"email": "alice@example.com", "password": password, "isVerified": True}
        user = api.client.post(URL, json=body, headers=headers).json()["user"]
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "user.created"))
        assert_admin_event(
            event, admin["id"], admin["email"], target_type="user", target_id=user["id"],
            user_id=user["id"], user_agent="audit-test/2.0",
        )  # fmt: skip
        assert event.ip
        assert event.occurred_at is not None
        assert sorted(event.details["fields"]) == ["email", "isVerified", "password"]
        assert password not in json.dumps(event.details)
        assert "$argon2" not in json.dumps(event.details)
        assert api.count(AuditEvent, AuditEvent.user_id == uuid.UUID(user["id"])) == 1

    def test_concurrent_creates_of_one_address_give_one_201(self, api: Api) -> None:
        headers, _ = signed_in(api)
        spellings = ["carol@example.com", "Carol@example.com", "CAROL@EXAMPLE.COM"] * 4
        with ThreadPoolExecutor(max_workers=len(spellings)) as pool:
            responses = list(
                pool.map(
                    lambda e: api.client.post(URL, json={"email": e}, headers=headers), spellings
                )
            )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [409] * (len(spellings) - 1), [r.text for r in responses]
        for response in responses:
            if response.status_code == 409:
                assert_error(response, 409, "EMAIL_ALREADY_EXISTS")
        assert api.count(User) == 1
        assert api.count(AuditEvent, AuditEvent.action == "user.created") == 1
