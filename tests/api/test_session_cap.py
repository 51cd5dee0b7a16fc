"""Issue 11 part 3: a user holds at most NESTAUTH_MAX_SESSIONS_PER_USER live sessions (the
oldest revoked first, audited), and an admin's view of a user shows the newest sessions and
their total, the rest a paginated list away."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from starlette.testclient import TestClient

from nestauth.models import AuditEvent, UserSession, utcnow
from tests.support import PASSWORD, Api, Signed, bearer, mid_step, sign_in, totp_at

USERS = "/auth/admin/api/users"


def live_sessions(api: Api, user_id: str) -> list[UserSession]:
    async def read(session: sa.ext.asyncio.AsyncSession) -> list[UserSession]:
        rows = await session.scalars(
            sa.select(UserSession)
            .where(UserSession.user_id == uuid.UUID(user_id), UserSession.revoked_at.is_(None))
            .order_by(UserSession.created_at)
        )
        return list(rows.all())

    return api.db(read)


def evictions(api: Api, user_id: str) -> list[AuditEvent]:
    async def read(session: sa.ext.asyncio.AsyncSession) -> list[AuditEvent]:
        rows = await session.scalars(
            sa.select(AuditEvent).where(
                AuditEvent.action == "user.sessions.evicted",
                AuditEvent.user_id == uuid.UUID(user_id),
            )
        )
        return list(rows.all())

    return api.db(read)


class TestSessionCap:
    def test_a_sign_in_beyond_the_cap_revokes_the_oldest(self, api: Api) -> None:
        api.configure(max_sessions_per_user=3)
        start = api.freeze(mid_step())
        signed = api.sign_up()  # session 1
        user_id, email = signed["user"]["id"], signed["user"]["email"]
        refresh = [signed["refreshToken"]]
        for n in range(1, 5):  # sessions 2..5, a second apart: the order is unambiguous
            api.freeze(start + timedelta(seconds=n))
            refresh.append(api.log_in_user(email)["refreshToken"])
        live = live_sessions(api, user_id)
        assert len(live) == 3
        assert [api.refresh(token).status_code for token in refresh[:2]] == [401, 401]
        assert all(api.refresh(token).status_code == 200 for token in refresh[2:])
        events = evictions(api, user_id)
        assert len(events) == 2
        assert {(e.actor_type, str(e.actor_id), e.actor_email) for e in events} == {
            ("user", user_id, email)
        }
        assert all(e.details == {"sessionsRevoked": 1, "maxSessions": 3} for e in events)

    def test_sign_ins_under_the_cap_revoke_nothing(self, api: Api) -> None:
        api.configure(max_sessions_per_user=3)
        signed = api.sign_up()
        for _ in range(2):
            api.log_in_user(signed["user"]["email"])
        assert len(live_sessions(api, signed["user"]["id"])) == 3
        assert evictions(api, signed["user"]["id"]) == []

    def test_ended_sessions_do_not_count(self, api: Api) -> None:
        api.configure(max_sessions_per_user=2)
        signed = api.sign_up()
        user_id = signed["user"]["id"]
        api.add_user_session(user_id, expires_at=utcnow() - timedelta(seconds=1))
        api.add_user_session(user_id, revoked_at=utcnow())
        api.log_in_user(signed["user"]["email"])
        assert api.current_user(signed["accessToken"]).status_code == 200
        assert evictions(api, user_id) == []

    def test_concurrent_sign_ins_stay_under_the_cap(self, api: Api) -> None:
        """Eight sign-ins of one user at once, each from an address of its own (one address
        would be a flood, and its shared limiter rows another race)."""
        api.configure(max_sessions_per_user=2)
        signed = api.sign_up()
        body = {"email": signed["user"]["email"], "password": PASSWORD}

        def log_in(n: int) -> Any:
            client = TestClient(api.app, client=(f"192.0.2.{n + 1}", 50000))
            client.portal = api.client.portal  # the app's loop: its lifespan runs there
            try:
                return client.post("/auth/login", json=body)
            finally:
                client.portal = None

        with ThreadPoolExecutor(max_workers=8) as pool:
            logins = list(pool.map(log_in, range(8)))
        assert [r.status_code for r in logins] == [200] * 8, [r.text for r in logins]
        assert len(live_sessions(api, signed["user"]["id"])) == 2

    def test_mfa_verify_opens_a_session_under_the_cap_too(self, api: Api) -> None:
        api.configure(max_sessions_per_user=1)
        user, now = api.mfa_user_enrolled_ago(steps=2)
        mfa_token = api.start_mfa_login(user.email)
        verified = api.verify_mfa(mfa_token, totp_at(user.devices[0].secret, now))
        assert verified.status_code == 200, verified.text
        assert api.current_user(user.access_token).status_code == 401  # the sign-up's session
        assert api.current_user(verified.json()["accessToken"]).status_code == 200
        assert len(live_sessions(api, user.id)) == 1


def user_with_sessions(api: Api, count: int) -> tuple[str, list[str]]:
    """A user with `count` live sessions a minute apart; their ids newest first."""
    user = api.create_user(verified_devices=0)
    start = utcnow() - timedelta(hours=1)
    ids = [api.add_user_session(user.id, created_at=start + timedelta(minutes=n))
           for n in range(count)]  # fmt: skip
    return user.id, ids[::-1]


class TestAdminViewsOfSessions:
    def test_user_view_shows_the_10_newest_and_the_total(self, api: Api) -> None:
        owner = sign_in(api)
        user_id, newest_first = user_with_sessions(api, 15)
        api.add_user_session(user_id, revoked_at=utcnow())  # not live: neither shown nor counted
        body = api.client.get(f"{USERS}/{user_id}", headers=owner.headers).json()
        assert [s["id"] for s in body["sessions"]] == newest_first[:10]
        assert body["sessionsTotal"] == 15

    def test_sessions_list_pages_through_all(self, api: Api) -> None:
        owner = sign_in(api)
        user_id, newest_first = user_with_sessions(api, 15)
        first = self.page(api, owner, user_id, limit=10)
        meta = first["meta"]
        assert meta == {"page": 1, "limit": 10, "total": 15, "totalPages": 2, "totalExact": True,
                        "nextCursor": meta["nextCursor"]}  # fmt: skip
        rest = self.page(api, owner, user_id, limit=10, cursor=first["meta"]["nextCursor"])
        assert [s["id"] for s in first["data"] + rest["data"]] == newest_first
        assert rest["meta"]["nextCursor"] is None and rest["meta"]["page"] == 2
        by_number = self.page(api, owner, user_id, limit=10, page=2)
        assert by_number["data"] == rest["data"]

    @staticmethod
    def page(api: Api, owner: Signed, user_id: str, **params: object) -> dict:
        response = api.client.get(f"{USERS}/{user_id}/sessions", params=params,
                                  headers=owner.headers)  # fmt: skip
        assert response.status_code == 200, response.text
        return dict(response.json())


def test_refresh_does_not_open_a_session(api: Api) -> None:
    """Rotation keeps the session: a refresh never evicts another."""
    api.configure(max_sessions_per_user=1)
    signed = api.sign_up()
    rotated = api.refresh(signed["refreshToken"])
    assert rotated.status_code == 200
    assert api.client.get("/auth/user", headers=bearer(rotated.json()["accessToken"])).is_success
    assert evictions(api, signed["user"]["id"]) == []
