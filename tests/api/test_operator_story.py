"""An operator's walk through the admin API, over HTTP only, and the cost of opening a user."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from tests.support import Api, bearer

USERS = "/auth/admin/api/users"
AGENT = "operator-console/2.0"


def sign_in(api: Api, role: str) -> tuple[str, str, dict[str, str]]:
    email = api.create_admin(role)
    body = api.login(email)
    api.client.cookies.clear()  # bearer only, as a script would
    return body["admin"]["id"], email, bearer(body["token"]) | {"User-Agent": AGENT}


def ok(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


@contextmanager
def counted_statements(api: Api) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_rest) -> None:
        statements.append(statement)

    engine = api.runtime.engine.sync_engine
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


class TestOperatorStory:
    def test_search_open_revoke_remove_then_find_each_step_in_the_audit_log(self, api: Api) -> None:
        operator_id, operator_email, headers = sign_in(api, "admin")
        user = api.create_user(sessions=2, verified_devices=2)
        api.create_user(sessions=1)  # someone else, who must not show up
        email = api.get_user(user.id).email

        found = ok(api.client.get(USERS, params={"search": email.upper()}, headers=headers))
        assert [u["id"] for u in found["data"]] == [user.id]

        detail = ok(api.client.get(f"{USERS}/{found['data'][0]['id']}", headers=headers))
        assert (len(detail["sessions"]), len(detail["mfa"]["totpDevices"])) == (2, 2)
        session_id = detail["sessions"][0]["id"]
        device_id = detail["mfa"]["totpDevices"][0]["id"]

        revoked = api.client.delete(f"{USERS}/{user.id}/sessions/{session_id}", headers=headers)
        assert ok(revoked)["sessionId"] == session_id
        removed = api.client.delete(f"{USERS}/{user.id}/totp-devices/{device_id}", headers=headers)
        assert ok(removed)["remainingDevices"] == 1

        after = ok(api.client.get(f"{USERS}/{user.id}", headers=headers))
        assert [s["id"] for s in after["sessions"]] != [session_id]
        assert (len(after["sessions"]), len(after["mfa"]["totpDevices"])) == (1, 1)

        trail = ok(api.client.get("/auth/admin/api/audit-logs", params={"userId": user.id},
                                  headers=headers))  # fmt: skip
        assert [(e["action"], e["targetId"]) for e in trail["data"]] == [
            ("user.totp_device.removed", device_id),
            ("user.session.revoked", session_id),
        ]
        for entry in trail["data"]:
            assert entry["actorType"] == "admin"
            assert (entry["actorId"], entry["actorEmail"]) == (operator_id, operator_email)
            assert entry["userId"] == user.id
            assert entry["ip"] and entry["userAgent"] == AGENT
        by_operator = api.client.get(
            "/auth/admin/api/audit-logs", params={"actorId": operator_id}, headers=headers
        )
        assert [e["action"] for e in ok(by_operator)["data"]] == [
            "user.totp_device.removed", "user.session.revoked", "admin.login",
        ]  # fmt: skip

    def test_opening_a_user_costs_the_same_queries_for_1_or_50_devices_and_sessions(
        self, api: Api
    ) -> None:
        _, _, headers = sign_in(api, "viewer")
        small = api.create_user(verified_devices=1, sessions=1)
        large = api.create_user(verified_devices=50, sessions=50)
        counts = {}
        for label, user in (("1", small), ("50", large)):
            with counted_statements(api) as statements:
                body = ok(api.client.get(f"{USERS}/{user.id}", headers=headers))
            assert len(body["mfa"]["totpDevices"]) == body["sessionsTotal"] == int(label)
            assert len(body["sessions"]) == min(int(label), 10)  # the newest; the rest paged
            counts[label] = len(statements)
        print(f"GET {USERS}/{{id}} SQL statements: 1 device+session -> {counts['1']}, "
              f"50 devices+sessions -> {counts['50']}")  # fmt: skip
        assert counts["1"] == counts["50"]
