"""GET/POST /auth/admin/admins, PATCH/DELETE /auth/admin/admins/{id}: owners manage admins."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from nestauth.models import Admin, AdminSession, AuditEvent
from tests.support import PASSWORD, Api, Signed, assert_admin_event, assert_error, sign_in

URL = "/auth/admin/admins"
NEW_PASSWORD = "a brand new admin password"


def me(api: Api, who: Signed):
    return api.client.get("/auth/admin/me", headers=who.headers)


def patch(api: Api, admin_id: str, body: dict, headers: dict[str, str]):
    return api.client.patch(f"{URL}/{admin_id}", json=body, headers=headers)


def delete(api: Api, admin_id: str, headers: dict[str, str]):
    return api.client.delete(f"{URL}/{admin_id}", headers=headers)


def admin_row(api: Api, admin_id: str) -> Admin | None:
    return api.scalar(sa.select(Admin).where(Admin.id == uuid.UUID(admin_id)))


def events(api: Api, action: str) -> list[AuditEvent]:
    query = sa.select(AuditEvent).where(AuditEvent.action == action)

    async def fetch(session):
        return list((await session.scalars(query)).all())

    return api.db(fetch)


def live_sessions(api: Api, admin_id: str) -> int:
    live = AdminSession.revoked_at.is_(None)
    return api.count(AdminSession, AdminSession.admin_id == uuid.UUID(admin_id), live)


class TestListAdmins:
    def test_200_owner_sees_a_page_with_meta(self, api: Api) -> None:
        owner = sign_in(api)
        api.create_admin("admin")
        api.create_admin("viewer")
        response = api.client.get(f"{URL}?limit=2", headers=owner.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        meta = body["meta"]
        assert meta == {"page": 1, "limit": 2, "total": 3, "totalPages": 2, "totalExact": True,
                        "nextCursor": meta["nextCursor"]}  # fmt: skip
        assert body["meta"]["nextCursor"]
        assert len(body["data"]) == 2
        assert all(set(a) == {"id", "email", "name", "role", "createdAt"} for a in body["data"])
        assert "argon2" not in response.text
        second = api.client.get(f"{URL}?limit=2&page=2", headers=owner.headers).json()
        ids = {a["id"] for a in body["data"] + second["data"]}
        assert len(ids) == 3 and owner.id in ids

    def test_403_admin_role(self, api: Api) -> None:
        response = api.client.get(URL, headers=sign_in(api, "admin").headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_403_viewer(self, api: Api) -> None:
        response = api.client.get(URL, headers=sign_in(api, "viewer").headers)
        assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")

    def test_401_no_session(self, api: Api) -> None:
        assert_error(api.client.get(URL), 401, "NO_AUTH_PROVIDED")


class TestCreateAdmin:
    def body(self, **overrides) -> dict:
        return {"email": "Support.Lead@Example.com", "password": PASSWORD, "role": "admin"} | (
            overrides
        )

    def test_201_creates_an_admin(self, api: Api) -> None:
        response = api.client.post(URL, json=self.body(name="Lead"), headers=sign_in(api).headers)
        assert response.status_code == 201, response.text
        admin = response.json()["admin"]
        assert set(admin) == {"id", "email", "name", "role", "createdAt"}
        assert (admin["email"], admin["name"], admin["role"]) == (
            "support.lead@example.com", "Lead", "admin",
        )  # fmt: skip
        assert admin_row(api, admin["id"]) is not None

    def test_201_the_new_admin_can_log_in(self, api: Api) -> None:
        api.client.post(URL, json=self.body(role="viewer"), headers=sign_in(api).headers)
        login = api.login("support.lead@example.com", PASSWORD)
        assert login["admin"]["role"] == "viewer"

    def test_409_same_email_in_another_case(self, api: Api) -> None:
        owner = sign_in(api)
        assert api.client.post(URL, json=self.body(), headers=owner.headers).status_code == 201
        again = self.body(email="SUPPORT.LEAD@example.COM")
        assert_error(
            api.client.post(URL, json=again, headers=owner.headers), 409, "EMAIL_ALREADY_EXISTS"
        )
        assert api.count(Admin) == 2

    def test_400_bad_role_short_password_extra_property(self, api: Api) -> None:
        owner = sign_in(api)
        for bad in (
            self.body(role="superuser"),
            self.body(password="short"),
            self.body(isActive=True),
            {"email": "x@example.com", "password": PASSWORD},
        ):
            response = api.client.post(URL, json=bad, headers=owner.headers)
            assert_error(response, 400, "VALIDATION_FAILED")
        assert api.count(Admin) == 1

    def test_403_admin_role_even_with_a_bad_body(self, api: Api) -> None:
        headers = sign_in(api, "admin").headers
        for body in (self.body(role="owner"), {"role": "nobody"}):
            response = api.client.post(URL, json=body, headers=headers)
            assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert api.count(Admin) == 1

    def test_audit_admin_created_without_the_password(self, api: Api) -> None:
        owner = sign_in(api)
        created = api.client.post(URL, json=self.body(), headers=owner.headers).json()["admin"]
        [event] = events(api, "admin.created")
        assert_admin_event(
            event, owner.id, owner.email, target_type="admin", target_id=created["id"]
        )
        assert event.ip and event.occurred_at
        assert event.details == {"role": "admin"}
        assert PASSWORD not in str(event.details)

    def test_audit_failure_creates_nothing(self, api: Api, monkeypatch) -> None:
        from nestauth.services import admins

        async def broken(*_args, **_kwargs):
            raise RuntimeError("audit store unavailable")

        owner = sign_in(api)
        monkeypatch.setattr(admins, "record_admin_action", broken)
        response = api.client.post(URL, json=self.body(), headers=owner.headers)
        assert_error(response, 500, "INTERNAL_ERROR")
        assert api.count(Admin) == 1


class TestUpdateAdmin:
    def test_200_role_change_revokes_their_sessions_at_once(self, api: Api) -> None:
        owner, target = sign_in(api), sign_in(api, "admin")
        response = patch(api, target.id, {"role": "viewer"}, owner.headers)
        assert response.status_code == 200, response.text
        assert response.json()["admin"]["role"] == "viewer"
        assert_error(me(api, target), 401, "SESSION_INVALID")
        assert live_sessions(api, target.id) == 0
        assert me(api, owner).status_code == 200

    def test_200_password_change_revokes_sessions_and_the_new_password_works(
        self, api: Api
    ) -> None:
        owner, target = sign_in(api), sign_in(api, "admin")
        response = patch(api, target.id, {"password": NEW_PASSWORD}, owner.headers)
        assert response.status_code == 200, response.text
        assert_error(me(api, target), 401, "SESSION_INVALID")
        old = {"email": target.email, "password": PASSWORD}
        assert_error(api.client.post("/auth/admin/login", json=old), 401, "INVALID_CREDENTIALS")
        assert api.login(target.email, NEW_PASSWORD)["admin"]["id"] == target.id

    def test_200_name_change_alone_revokes_nothing(self, api: Api) -> None:
        owner, target = sign_in(api), sign_in(api, "admin")
        response = patch(api, target.id, {"name": "Renamed"}, owner.headers)
        assert response.json()["admin"]["name"] == "Renamed"
        assert me(api, target).status_code == 200
        assert live_sessions(api, target.id) == 1

    def test_409_last_owner_cannot_be_demoted(self, api: Api) -> None:
        owner = sign_in(api)
        response = patch(api, owner.id, {"role": "admin", "name": "Changed"}, owner.headers)
        assert_error(response, 409, "LAST_OWNER")
        row = admin_row(api, owner.id)
        assert (row.role, row.name) == ("owner", None)
        assert me(api, owner).status_code == 200
        assert events(api, "admin.updated") == []

    def test_200_one_of_two_owners_may_be_demoted(self, api: Api) -> None:
        owner, other = sign_in(api), sign_in(api, "owner")
        response = patch(api, other.id, {"role": "viewer"}, owner.headers)
        assert response.status_code == 200, response.text
        assert admin_row(api, other.id).role == "viewer"
        assert_error(patch(api, owner.id, {"role": "admin"}, owner.headers), 409, "LAST_OWNER")

    def test_404_unknown_admin(self, api: Api) -> None:
        response = patch(api, str(uuid.uuid4()), {"name": "x"}, sign_in(api).headers)
        assert_error(response, 404, "ADMIN_NOT_FOUND")

    def test_400_bad_body_or_id(self, api: Api) -> None:
        owner = sign_in(api)
        for body in ({}, {"role": "root"}, {"password": "short"}, {"email": "a@example.com"}):
            assert_error(patch(api, owner.id, body, owner.headers), 400, "VALIDATION_FAILED")
        assert_error(patch(api, "nope", {"name": "x"}, owner.headers), 400, "VALIDATION_FAILED")

    def test_403_admin_role_even_on_a_nonexistent_id(self, api: Api) -> None:
        owner, admin = sign_in(api), sign_in(api, "admin")
        for target in (owner.id, admin.id, str(uuid.uuid4()), "not-a-uuid"):
            response = patch(api, target, {"role": "owner"}, admin.headers)
            assert_error(response, 403, "MISSING_REQUIRED_PERMISSIONS")
        assert admin_row(api, admin.id).role == "admin"

    def test_audit_admin_updated_names_the_changed_fields(self, api: Api) -> None:
        owner, target = sign_in(api), sign_in(api, "admin")
        patch(api, target.id, {"role": "viewer", "password": NEW_PASSWORD}, owner.headers)
        [event] = events(api, "admin.updated")
        assert (str(event.actor_id), event.actor_email) == (owner.id, owner.email)
        assert (event.target_type, str(event.target_id)) == ("admin", target.id)
        assert sorted(event.details["changedFields"]) == ["password", "role"]
        assert NEW_PASSWORD not in str(event.details)
        assert "argon2" not in str(event.details)


class TestDeleteAdmin:
    def test_200_and_the_deleted_admins_token_fails_at_once(self, api: Api) -> None:
        owner, target = sign_in(api), sign_in(api, "admin")
        response = delete(api, target.id, owner.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"message": "Admin deleted successfully", "adminId": target.id}
        assert admin_row(api, target.id) is None
        assert_error(me(api, target), 401, "SESSION_INVALID")

    def test_409_last_owner_cannot_be_removed(self, api: Api) -> None:
        owner = sign_in(api)
        assert_error(delete(api, owner.id, owner.headers), 409, "LAST_OWNER")
        assert admin_row(api, owner.id) is not None
        assert me(api, owner).status_code == 200

    def test_200_an_owner_may_delete_another_owner(self, api: Api) -> None:
        owner, other = sign_in(api), sign_in(api, "owner")
        assert delete(api, other.id, owner.headers).status_code == 200
        assert_error(delete(api, owner.id, owner.headers), 409, "LAST_OWNER")

    def test_404_unknown_admin(self, api: Api) -> None:
        assert_error(delete(api, str(uuid.uuid4()), sign_in(api).headers), 404, "ADMIN_NOT_FOUND")

    def test_403_admin_role(self, api: Api) -> None:
        owner, admin = sign_in(api), sign_in(api, "admin")
        for target in (owner.id, str(uuid.uuid4())):
            assert_error(delete(api, target, admin.headers), 403, "MISSING_REQUIRED_PERMISSIONS")
        assert admin_row(api, owner.id) is not None

    def test_audit_admin_deleted(self, api: Api) -> None:
        owner, target = sign_in(api), sign_in(api, "viewer")
        delete(api, target.id, owner.headers)
        [event] = events(api, "admin.deleted")
        assert (str(event.actor_id), event.actor_email) == (owner.id, owner.email)
        assert (event.target_type, str(event.target_id)) == ("admin", target.id)
        assert event.details == {"email": target.email, "role": "viewer"}
