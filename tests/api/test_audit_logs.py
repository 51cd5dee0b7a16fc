"""GET /auth/admin/api/audit-logs: the read-only trail of who did what, newest first."""

from __future__ import annotations

import uuid

from nestauth.models import AuditEvent
from tests.support import PASSWORD, Api, Signed, assert_error, parse_time, sign_in

URL = "/auth/admin/api/audit-logs"
EVENT_FIELDS = {
    "id", "occurredAt", "action", "actorType", "actorId", "actorEmail",
    "targetType", "targetId", "userId", "ip", "userAgent", "details",
}  # fmt: skip


def logs(api: Api, who: Signed, query: str = "") -> dict:
    response = api.client.get(URL + query, headers=who.headers)
    assert response.status_code == 200, response.text
    return response.json()


def create_admin(api: Api, owner: Signed, email: str) -> str:
    body = {"email": email, "password": PASSWORD, "role": "viewer"}
    response = api.client.post("/auth/admin/admins", json=body, headers=owner.headers)
    assert response.status_code == 201, response.text
    return response.json()["admin"]["id"]


def revoke_sessions(api: Api, who: Signed, user_id: str) -> None:
    response = api.client.delete(f"/auth/admin/api/users/{user_id}/sessions", headers=who.headers)
    assert response.status_code == 200, response.text


class TestListAuditLogs:
    def test_200_newest_first_with_the_full_event_shape(self, api: Api) -> None:
        owner = sign_in(api)
        created = [create_admin(api, owner, f"a{i}@example.com") for i in range(3)]
        body = logs(api, owner, "?action=admin.created")
        assert [e["targetId"] for e in body["data"]] == created[::-1]
        moments = [parse_time(e["occurredAt"]) for e in body["data"]]
        assert moments == sorted(moments, reverse=True)
        event = body["data"][0]
        assert set(event) == EVENT_FIELDS
        assert (event["actorType"], event["actorId"], event["actorEmail"]) == (
            "admin", owner.id, owner.email,
        )  # fmt: skip
        assert event["targetType"] == "admin" and event["ip"]

    def test_200_filter_by_user_id(self, api: Api) -> None:
        operator = sign_in(api, "admin")
        first, second = api.create_user(sessions=1), api.create_user(sessions=1)
        revoke_sessions(api, operator, first.id)
        revoke_sessions(api, operator, second.id)
        body = logs(api, operator, f"?userId={first.id}")
        assert [(e["action"], e["userId"]) for e in body["data"]] == [
            ("user.sessions.revoked", first.id)
        ]
        assert body["meta"]["total"] == 1

    def test_200_filter_by_actor_id(self, api: Api) -> None:
        one, two = sign_in(api, "admin"), sign_in(api, "admin")
        user = api.create_user()
        revoke_sessions(api, one, user.id)
        revoke_sessions(api, two, user.id)
        revoke_sessions(api, two, user.id)
        body = logs(api, one, f"?actorId={two.id}")
        assert [e["actorId"] for e in body["data"]] == [two.id] * 3
        assert [e["action"] for e in body["data"]][-1] == "admin.login"
        assert logs(api, one, f"?actorId={uuid.uuid4()}")["data"] == []

    def test_200_filter_by_action_and_combined(self, api: Api) -> None:
        owner = sign_in(api)
        user = api.create_user()
        create_admin(api, owner, "new@example.com")
        revoke_sessions(api, owner, user.id)
        body = logs(api, owner, "?action=user.sessions.revoked")
        assert [e["action"] for e in body["data"]] == ["user.sessions.revoked"]
        both = logs(api, owner, f"?action=admin.created&userId={user.id}")
        assert both["data"] == [] and both["meta"]["total"] == 0

    def test_200_pagination_meta(self, api: Api) -> None:
        owner = sign_in(api)
        for i in range(5):
            create_admin(api, owner, f"p{i}@example.com")
        only = "&action=admin.created"  # the owner's login is an event too
        page_two = logs(api, owner, f"?limit=2&page=2{only}")
        meta = page_two["meta"]
        assert meta == {"page": 2, "limit": 2, "total": 5, "totalPages": 3, "totalExact": True,
                        "nextCursor": meta["nextCursor"]}  # fmt: skip
        assert page_two["meta"]["nextCursor"]
        pages = [logs(api, owner, f"?limit=2&page={n}{only}")["data"] for n in (1, 2, 3)]
        assert [len(p) for p in pages] == [2, 2, 1]
        assert len({e["id"] for p in pages for e in p}) == 5
        assert logs(api, owner, f"?limit=2&page=4{only}")["data"] == []

    def test_400_bad_filters(self, api: Api) -> None:
        headers = sign_in(api, "viewer").headers
        for query in (
            "?userId=not-a-uuid", "?actorId=123", "?action=Admin.Created",
            "?action=admin..created", "?action=admin.created;drop", "?limit=101", "?page=0",
        ):  # fmt: skip
            response = api.client.get(URL + query, headers=headers)
            assert_error(response, 400, "VALIDATION_FAILED")

    def test_200_viewer_can_read(self, api: Api) -> None:
        owner, viewer = sign_in(api), sign_in(api, "viewer")
        create_admin(api, owner, "seen@example.com")
        assert logs(api, viewer, "?action=admin.created")["meta"]["total"] == 1

    def test_401_no_session(self, api: Api) -> None:
        assert_error(api.client.get(URL), 401, "NO_AUTH_PROVIDED")

    def test_failed_logins_are_recorded_as_anonymous(self, api: Api) -> None:
        target = api.create_admin("admin")
        for email, password in ((target, "wrong password"), ("nobody@example.com", PASSWORD)):
            response = api.client.post(
                "/auth/admin/login", json={"email": email, "password": password}
            )
            assert_error(response, 401, "INVALID_CREDENTIALS")
        body = logs(api, sign_in(api), "?action=admin.login_failed")
        assert [(e["actorType"], e["actorId"], e["actorEmail"]) for e in body["data"]] == [
            ("anonymous", None, "nobody@example.com"),
            ("anonymous", None, target),
        ]
        assert all(e["ip"] for e in body["data"])
        assert PASSWORD not in str(body) and "wrong password" not in str(body)

    def test_a_viewers_denied_write_is_recorded_and_still_403(self, api: Api) -> None:
        viewer = sign_in(api, "viewer")
        user = api.create_user(sessions=1)
        for path in (
            f"/auth/admin/api/users/{user.id}/sessions",
            f"/auth/admin/admins/{uuid.uuid4()}",
        ):
            response = api.client.delete(path, headers=viewer.headers | {"User-Agent": "probe/1"})
            assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        body = logs(api, viewer, "?action=admin.access_denied")
        assert body["meta"]["total"] == 2
        for event in body["data"]:
            assert (event["actorType"], event["actorId"], event["actorEmail"]) == (
                "admin", viewer.id, viewer.email,
            )  # fmt: skip
            assert event["details"]["reason"] == "MISSING_REQUIRED_PERMISSIONS"
            assert event["details"]["method"] == "DELETE"
            assert event["userAgent"] == "probe/1"
        assert api.count(AuditEvent, AuditEvent.action == "user.sessions.revoked") == 0

    def test_a_csrf_failure_is_recorded(self, api: Api) -> None:
        email = api.create_admin("admin")
        admin_id = api.login(email)["admin"]["id"]  # the client now holds the session cookie
        user = api.create_user(sessions=1)
        response = api.client.delete(f"/auth/admin/api/users/{user.id}/sessions")
        assert_error(response, 403, "CSRF_TOKEN_INVALID")
        api.client.cookies.clear()
        [event] = logs(api, sign_in(api), "?action=admin.access_denied")["data"]
        assert (event["actorId"], event["actorEmail"]) == (admin_id, email)
        assert event["details"]["reason"] == "CSRF_TOKEN_INVALID"

    def test_405_no_method_changes_or_deletes_events(self, api: Api) -> None:
        owner = sign_in(api)
        create_admin(api, owner, "kept@example.com")
        [event] = logs(api, owner, "?action=admin.created")["data"]
        for method in ("PUT", "PATCH", "DELETE", "POST"):
            response = api.client.request(method, URL, json={}, headers=owner.headers)
            assert_error(response, 405, "METHOD_NOT_ALLOWED")
        for method in ("PUT", "PATCH", "DELETE"):
            response = api.client.request(method, f"{URL}/{event['id']}", headers=owner.headers)
            assert_error(response, 404, "NOT_FOUND")
        assert logs(api, owner, "?action=admin.created")["data"] == [event]
