"""Housekeeping: `nestauth db prune` and the server's own periodic prune delete exactly the
rows no request can use any more, in batches, one process at a time, audit kept by default."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth import cli
from nestauth.app import create_app
from nestauth.models import (
    Admin,
    AdminSession,
    AuditEvent,
    MfaChallenge,
    RateLimitBucket,
    UsedRefreshToken,
    UserSession,
    core_table,
    utcnow,
)
from nestauth.services import housekeeping
from tests.support import Api, make_settings

HOUR, DAY = timedelta(hours=1), timedelta(days=1)


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str) -> None:
    monkeypatch.setenv("NESTAUTH_DATABASE_URL", database_url)
    monkeypatch.setenv("NESTAUTH_SECRET_KEY", make_settings(database_url).secret_key)
    monkeypatch.delenv("NESTAUTH_AUDIT_RETENTION_DAYS", raising=False)
    monkeypatch.delenv("NESTAUTH_PRUNE_GRACE_SECONDS", raising=False)


def insert(api: Api, model: Any, rows: list[dict[str, Any]]) -> None:
    async def run(session: AsyncSession) -> None:
        await session.execute(sa.insert(core_table(model)), rows)

    api.db(run)


def remaining(api: Api, model: Any, column: str) -> set[str]:
    async def run(session: AsyncSession) -> set[str]:
        return {str(v) for v in (await session.scalars(sa.select(getattr(model, column)))).all()}

    return api.db(run)


def user_session(user_id: str, name: str, now: datetime, **moments: datetime) -> dict[str, Any]:
    return {
        "id": uuid.uuid5(uuid.NAMESPACE_DNS, name), "user_id": uuid.UUID(user_id),
        "refresh_token_hash": name, "created_at": now - 40 * DAY, "last_used_at": now,
        "expires_at": now + DAY, "revoked_at": None, **moments,
    }  # fmt: skip


def sid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, name))


def arrange_user_sessions(api: Api, now: datetime) -> None:
    user = api.create_user(verified_devices=0)
    insert(api, UserSession, [
        user_session(user.id, "live", now),
        user_session(user.id, "revoked-long-ago", now, revoked_at=now - 2 * DAY),
        user_session(user.id, "revoked-lately", now, revoked_at=now - HOUR),
        user_session(user.id, "expired-long-ago", now, expires_at=now - 2 * DAY),
        user_session(user.id, "expired-lately", now, expires_at=now - HOUR),
    ])  # fmt: skip
    insert(api, UsedRefreshToken, [
        # A live session keeps every token it exchanged: replaying one still revokes it.
        {"token_hash": "of-live", "session_id": uuid.UUID(sid("live")), "used_at": now - 39 * DAY},
        {"token_hash": "of-revoked-lately", "session_id": uuid.UUID(sid("revoked-lately")),
         "used_at": now - 2 * DAY},
        {"token_hash": "of-revoked-long-ago", "session_id": uuid.UUID(sid("revoked-long-ago")),
         "used_at": now - 3 * DAY},
    ])  # fmt: skip


def arrange_admin_sessions(api: Api, now: datetime) -> None:
    email = api.create_admin("admin")
    admin_id = api.scalar(sa.select(Admin.id).where(Admin.email == email))
    idle = timedelta(seconds=api.runtime.settings.admin_session_idle_seconds)

    def row(name: str, **moments: datetime) -> dict[str, Any]:
        return {
            "id": uuid.UUID(sid(name)), "admin_id": admin_id, "token_hash": name,
            "csrf_token_hash": name, "created_at": now - 3 * DAY, "last_seen_at": now,
            "expires_at": now + HOUR, "revoked_at": None, **moments,
        }  # fmt: skip

    insert(api, AdminSession, [
        row("admin-live"),
        row("admin-revoked-long-ago", revoked_at=now - 2 * DAY),
        row("admin-expired-long-ago", expires_at=now - 2 * DAY),
        row("admin-idle-long-ago", last_seen_at=now - 2 * DAY - idle),
        row("admin-idle-lately", last_seen_at=now - idle - HOUR),
    ])  # fmt: skip


def arrange_challenges(api: Api, now: datetime) -> None:
    user = api.create_user(verified_devices=0)

    def row(name: str, **moments: datetime) -> dict[str, Any]:
        return {
            "id": uuid.UUID(sid(name)), "user_id": uuid.UUID(user.id), "token_hash": name,
            "purpose": "login", "created_at": now - 3 * DAY, "expires_at": now + HOUR,
            "used_at": None, **moments,
        }  # fmt: skip

    insert(api, MfaChallenge, [
        row("open"),
        row("used-long-ago", used_at=now - 2 * DAY),
        row("used-lately", used_at=now - HOUR),
        row("expired-long-ago", expires_at=now - 2 * DAY),
        row("expired-lately", expires_at=now - HOUR),
    ])  # fmt: skip


def arrange_buckets(api: Api, now: datetime) -> None:
    window = timedelta(seconds=api.runtime.settings.admin_login_lock_seconds)

    def row(key: str, started: datetime, blocked_until: datetime | None = None) -> dict[str, Any]:
        return {"key": key, "failures": 1, "window_started_at": started,
                "blocked_until": blocked_until}  # fmt: skip

    insert(api, RateLimitBucket, [
        row("admin-login:window-over", now - window - HOUR),
        row("admin-login:window-open", now - window + HOUR),
        row("user-login:blocked", now - 2 * window, blocked_until=now + HOUR),
        row("mfa:block-over", now - 2 * window, blocked_until=now - HOUR),
        row("someone-else:old", now - 30 * DAY),
    ])  # fmt: skip


def arrange_audit(api: Api, now: datetime) -> None:
    def row(name: str, age: timedelta) -> dict[str, Any]:
        return {"id": uuid.UUID(sid(name)), "occurred_at": now - age, "action": name,
                "actor_type": "system"}  # fmt: skip

    insert(api, AuditEvent, [row("a-year-ago", 365 * DAY), row("last-week", 7 * DAY)])


class TestPruneCommand:
    def test_deletes_exactly_the_rows_no_request_can_use(
        self, api: Api, cli_env: None, capsys: pytest.CaptureFixture[str]
    ) -> None:
        now = utcnow()
        for arrange in (arrange_user_sessions, arrange_admin_sessions, arrange_challenges,
                        arrange_buckets, arrange_audit):  # fmt: skip
            arrange(api, now)

        assert cli.main(["db", "prune"]) == 0

        assert remaining(api, UserSession, "refresh_token_hash") == {
            "live", "revoked-lately", "expired-lately"
        }  # fmt: skip
        assert remaining(api, UsedRefreshToken, "token_hash") == {"of-live", "of-revoked-lately"}
        assert remaining(api, AdminSession, "token_hash") == {"admin-live", "admin-idle-lately"}
        assert remaining(api, MfaChallenge, "token_hash") == {
            "open", "used-lately", "expired-lately"
        }  # fmt: skip
        assert remaining(api, RateLimitBucket, "key") == {
            "admin-login:window-open", "user-login:blocked", "someone-else:old"
        }  # fmt: skip
        assert remaining(api, AuditEvent, "action") == {"a-year-ago", "last-week"}  # kept
        printed = dict(line.split(": ") for line in capsys.readouterr().out.splitlines())
        assert printed == {
            "used_refresh_tokens": "1", "user_sessions": "2", "admin_sessions": "3",
            "mfa_challenges": "2", "rate_limit_buckets": "2", "audit_events": "0",
        }  # fmt: skip

    def test_audit_events_older_than_the_retention_go(
        self, api: Api, cli_env: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        arrange_audit(api, utcnow())
        monkeypatch.setenv("NESTAUTH_AUDIT_RETENTION_DAYS", "30")

        assert cli.main(["db", "prune"]) == 0

        assert remaining(api, AuditEvent, "action") == {"last-week"}

    def test_the_grace_is_a_setting(
        self, api: Api, cli_env: None, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        arrange_user_sessions(api, utcnow())
        monkeypatch.setenv("NESTAUTH_PRUNE_GRACE_SECONDS", "60")

        assert cli.main(["db", "prune"]) == 0

        assert remaining(api, UserSession, "refresh_token_hash") == {"live"}
        assert remaining(api, UsedRefreshToken, "token_hash") == {"of-live"}

    def test_more_rows_than_a_batch_are_all_deleted(self, api: Api) -> None:
        now = utcnow()
        count = housekeeping.BATCH_SIZE * 2 + 7
        insert(api, RateLimitBucket, [
            {"key": f"mfa:{n}", "failures": 1, "window_started_at": now - 2 * DAY}
            for n in range(count)
        ])  # fmt: skip

        report = api.run(housekeeping.prune, api.runtime.sessions, api.runtime.settings, now)

        assert report.complete and report.counts["rate_limit_buckets"] == count
        assert api.count(RateLimitBucket) == 0


@contextmanager
def prune_lock_held_elsewhere(database_url: str) -> Iterator[None]:
    url = make_url(database_url).set(drivername="postgresql")
    with psycopg.connect(url.render_as_string(hide_password=False)) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (housekeeping.PRUNE_LOCK_KEY,))
        yield


@pytest.mark.postgresql_only
def test_a_second_process_skips_while_one_prunes(
    api: Api, database_url: str, cli_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    arrange_buckets(api, utcnow())

    with prune_lock_held_elsewhere(database_url):
        assert cli.main(["db", "prune"]) == 1

    assert "another process is pruning" in capsys.readouterr().err
    assert api.count(RateLimitBucket) == 5


def test_the_server_prunes_on_its_own_and_counts_it(api: Api, database_url: str) -> None:
    now = utcnow()
    arrange_challenges(api, now)
    app = create_app(make_settings(database_url, prune_interval_seconds=1))

    registry = app.metrics.registry  # type: ignore[attr-defined]
    sample = ("nestauth_pruned_rows_total", {"table": "mfa_challenges"})
    with app.test_client():
        # A bounded wait for the background task's first turn, not a measure of its speed.
        deadline = time.monotonic() + 20
        while registry.get_sample_value(*sample) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        pruned = registry.get_sample_value(*sample)

    assert remaining(api, MfaChallenge, "token_hash") == {"open", "used-lately", "expired-lately"}
    assert pruned == 2
