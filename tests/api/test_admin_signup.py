"""POST /auth/admin/signup: the secret-gated bootstrap of the first admin (contract §2)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from starlette.testclient import TestClient

from nestauth.models import Admin, AuditEvent, utcnow
from tests.support import ADMIN_SECRET, PASSWORD, Api, assert_error

URL = "/auth/admin/signup"
SECRET_HEADER = "x-nest-auth-admin-secret"


def signup(api: Api, body: dict | None = None, headers: dict[str, str] | None = None, **fields):
    payload = {"email": "first@example.com", "password": PASSWORD, "secretKey": ADMIN_SECRET}
    payload.update(fields)
    return api.client.post(URL, json=body if body is not None else payload, headers=headers)


def admin_row(api: Api, admin_id: str) -> Admin:
    return api.scalar(sa.select(Admin).where(Admin.id == uuid.UUID(admin_id)))


class TestBootstrapAdmin:
    def test_201_secret_in_body_creates_owner(self, api: Api) -> None:
        response = signup(api, email="First.Admin@Example.COM", name="First Admin")
        assert response.status_code == 201, response.text
        body = response.json()
        assert set(body) == {"admin"}
        admin = body["admin"]
        assert set(admin) == {"id", "email", "name", "role", "createdAt"}
        assert admin["email"] == "first.admin@example.com"
        assert admin["name"] == "First Admin"
        assert admin["role"] == "owner"
        datetime.fromisoformat(admin["createdAt"].replace("Z", "+00:00"))
        row = admin_row(api, admin["id"])
        assert (row.email, row.role, row.name) == (admin["email"], "owner", "First Admin")

    def test_201_response_never_carries_the_password_or_its_hash(self, api: Api) -> None:
        response = signup(api)
        assert response.status_code == 201, response.text
        row = admin_row(api, response.json()["admin"]["id"])
        assert row.password_hash.startswith("$argon2id$")
        assert row.password_hash not in response.text
        assert "argon2" not in response.text
        assert PASSWORD not in response.text

    def test_201_name_is_optional(self, api: Api) -> None:
        response = signup(api)
        assert response.status_code == 201, response.text
        assert response.json()["admin"]["name"] is None

    def test_201_writes_audit_event(self, api: Api) -> None:
        response = signup(api, headers={"User-Agent": "bootstrap-test/1.0"})
        admin = response.json()["admin"]
        event = api.scalar(sa.select(AuditEvent).where(AuditEvent.action == "admin.bootstrapped"))
        assert event is not None
        assert str(event.actor_id) == admin["id"]
        assert str(event.target_id) == admin["id"]
        assert event.actor_email == admin["email"]
        assert event.target_type == "admin"
        assert event.user_agent == "bootstrap-test/1.0"
        assert api.count(AuditEvent, AuditEvent.action == "admin.bootstrapped") == 1

    def test_201_new_owner_can_log_in(self, api: Api) -> None:
        signup(api, email="first@example.com")
        assert api.login("first@example.com")["admin"]["role"] == "owner"

    def test_201_secret_in_header(self, api: Api) -> None:
        body = {"email": "header@example.com", "password": PASSWORD}
        response = signup(api, body, headers={SECRET_HEADER: ADMIN_SECRET})
        assert response.status_code == 201, response.text
        assert response.json()["admin"]["role"] == "owner"
        assert api.count(Admin) == 1

    def test_401_wrong_secret_in_body(self, api: Api) -> None:
        assert_error(signup(api, secretKey="not-the-secret"), 401, "ADMIN_SECRET_INVALID")
        assert api.count(Admin) == 0
        assert api.count(AuditEvent) == 0

    def test_401_wrong_secret_in_header(self, api: Api) -> None:
        body = {"email": "header@example.com", "password": PASSWORD}
        response = signup(api, body, headers={SECRET_HEADER: ADMIN_SECRET + "x"})
        assert_error(response, 401, "ADMIN_SECRET_INVALID")
        assert api.count(Admin) == 0

    def test_401_missing_secret(self, api: Api) -> None:
        response = signup(api, {"email": "nosecret@example.com", "password": PASSWORD})
        assert_error(response, 401, "ADMIN_SECRET_INVALID")
        assert api.count(Admin) == 0

    def test_401_empty_secret(self, api: Api) -> None:
        assert_error(signup(api, secretKey=""), 401, "ADMIN_SECRET_INVALID")
        assert api.count(Admin) == 0

    def test_403_closed_once_an_admin_exists(self, api: Api) -> None:
        existing = api.create_admin("viewer")
        response = signup(api, email="second@example.com")
        assert_error(response, 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert api.count(Admin) == 1
        assert api.scalar(sa.select(Admin.email)) == existing

    def test_403_second_signup_after_bootstrap(self, api: Api) -> None:
        assert signup(api, email="first@example.com").status_code == 201
        assert_error(signup(api, email="second@example.com"), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert_error(signup(api, email="first@example.com"), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert api.count(Admin) == 1
        assert api.count(AuditEvent, AuditEvent.action == "admin.bootstrapped") == 1

    def test_403_closed_whatever_the_secret(self, api: Api) -> None:
        """Once closed, a wrong or missing secret gets the same answer as the right one:
        the secret is no longer checked, so it can no longer be probed."""
        api.create_admin("viewer")
        assert_error(signup(api, secretKey="not-the-secret"), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert_error(signup(api, secretKey=""), 403, "ADMIN_BOOTSTRAP_CLOSED")
        nosecret = {"email": "second@example.com", "password": PASSWORD}
        assert_error(signup(api, nosecret), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert api.count(Admin) == 1

    def test_403_closed_when_no_secret_is_configured(self, api: Api) -> None:
        api.configure(admin_secret=None)
        assert_error(signup(api), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert_error(signup(api, secretKey="anything"), 403, "ADMIN_BOOTSTRAP_CLOSED")
        assert api.count(Admin) == 0

    def test_400_short_password(self, api: Api) -> None:
        assert_error(signup(api, password="short"), 400, "VALIDATION_FAILED")
        assert api.count(Admin) == 0

    def test_400_bad_email(self, api: Api) -> None:
        assert_error(signup(api, email="not-an-email"), 400, "VALIDATION_FAILED")
        assert api.count(Admin) == 0

    def test_400_unknown_body_property(self, api: Api) -> None:
        assert_error(signup(api, role="viewer"), 400, "VALIDATION_FAILED")
        assert api.count(Admin) == 0

    def test_400_missing_email(self, api: Api) -> None:
        body = {"password": PASSWORD, "secretKey": ADMIN_SECRET}
        assert_error(signup(api, body), 400, "VALIDATION_FAILED")

    def test_400_missing_body(self, api: Api) -> None:
        response = api.client.post(URL, content=b"", headers={"Content-Type": "application/json"})
        assert_error(response, 400, "VALIDATION_FAILED")
        assert api.count(Admin) == 0

    def test_concurrent_signups_create_exactly_one_admin(self, api: Api) -> None:
        emails = [f"racer-{index}@example.com" for index in range(5)]
        with ThreadPoolExecutor(max_workers=5) as pool:
            responses = list(pool.map(lambda email: signup(api, email=email), emails))
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201] + [403] * 4, [r.text for r in responses]
        assert {r.json()["code"] for r in responses if r.status_code == 403} == {
            "ADMIN_BOOTSTRAP_CLOSED"
        }
        assert api.count(Admin) == 1
        assert api.count(AuditEvent, AuditEvent.action == "admin.bootstrapped") == 1


@contextmanager
def client_at(api: Api, ip: str) -> Iterator[TestClient]:
    """A client at another address on the running app (same event loop, same database)."""
    client = TestClient(api.app, client=(ip, 50000))
    client.portal = api.client.portal  # the app's loop: its lifespan already runs there
    try:
        yield client
    finally:
        client.portal = None


def payload(secret: str = ADMIN_SECRET) -> dict[str, str]:
    return {"email": "first@example.com", "password": PASSWORD, "secretKey": secret}


class TestBootstrapRateLimit:
    def test_429_per_client_after_wrong_secrets_even_with_the_right_one(self, api: Api) -> None:
        api.configure(admin_signup_max_failures=3, admin_signup_max_failures_total=100)
        for _ in range(3):
            assert_error(signup(api, secretKey="guess"), 401, "ADMIN_SECRET_INVALID")
        response = signup(api)
        assert_error(response, 429, "RATE_LIMITED")
        assert int(response.headers["retry-after"]) > 0
        assert response.json()["details"]["retryAfter"] > 0
        assert api.count(Admin) == 0

    def test_another_client_is_not_blocked_by_one_clients_guesses(self, api: Api) -> None:
        api.configure(admin_signup_max_failures=3, admin_signup_max_failures_total=100)
        for _ in range(3):
            assert_error(signup(api, secretKey="guess"), 401, "ADMIN_SECRET_INVALID")
        assert_error(signup(api), 429, "RATE_LIMITED")
        with client_at(api, "198.51.100.7") as other:
            response = other.post(URL, json=payload())
        assert response.status_code == 201, response.text
        assert api.count(Admin) == 1

    def test_429_in_all_after_wrong_secrets_from_many_clients(self, api: Api) -> None:
        api.configure(admin_signup_max_failures=100, admin_signup_max_failures_total=3)
        for n in range(3):
            with client_at(api, f"198.51.100.{n + 1}") as guesser:
                response = guesser.post(URL, json=payload("guess"))
            assert_error(response, 401, "ADMIN_SECRET_INVALID")
        with client_at(api, "203.0.113.9") as newcomer:
            assert_error(newcomer.post(URL, json=payload()), 429, "RATE_LIMITED")
        assert api.count(Admin) == 0

    def test_the_block_ends_after_the_window(self, api: Api) -> None:
        api.configure(admin_signup_max_failures=2, admin_signup_lock_seconds=600)
        start = api.freeze(utcnow())
        for _ in range(2):
            assert_error(signup(api, secretKey="guess"), 401, "ADMIN_SECRET_INVALID")
        assert_error(signup(api), 429, "RATE_LIMITED")
        api.freeze(start + timedelta(seconds=601))
        assert signup(api).status_code == 201
        assert api.count(Admin) == 1
