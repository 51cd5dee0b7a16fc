"""0003 gives every existing session an authenticated_at (its created_at) and keeps its rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from nestauth import db, migrations
from nestauth.models import UsedRefreshToken, User, UserSession
from tests.support import database_backends, empty_database

OPENED = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def as_of_0002(model: type) -> sa.TableClause:
    """The model's table without the column 0003 adds (typed as the app writes them)."""
    table = model.__table__  # type: ignore[attr-defined]
    columns = (sa.column(c.name, c.type) for c in table.c if c.name != "authenticated_at")
    return sa.table(table.name, *columns)


@pytest.mark.parametrize("backend", database_backends())
def test_existing_sessions_count_as_signed_in_when_opened(backend: str, tmp_path: Path) -> None:
    with empty_database(backend, tmp_path) as url:
        migrations.upgrade(url, "0002")
        engine = sa.create_engine(db.sync_url(url))
        users, sessions, used = (as_of_0002(m) for m in (User, UserSession, UsedRefreshToken))
        user_id, session_id = uuid.uuid4(), uuid.uuid4()
        with engine.begin() as conn:
            conn.execute(sa.insert(users).values(
                id=user_id, email="old@example.com", is_active=True, is_verified=False,
                is_mfa_enabled=False, created_at=OPENED, updated_at=OPENED,
            ))  # fmt: skip
            conn.execute(sa.insert(sessions).values(
                id=session_id, user_id=user_id, refresh_token_hash="h" * 64, created_at=OPENED,
                last_used_at=OPENED, expires_at=OPENED.replace(year=2027),
            ))  # fmt: skip
            conn.execute(
                sa.insert(used).values(token_hash="u" * 64, session_id=session_id, used_at=OPENED)
            )
        migrations.upgrade(url)
        with engine.connect() as conn:
            stored = conn.scalar(sa.text("SELECT authenticated_at FROM user_sessions"))
            kept = conn.scalar(sa.text("SELECT count(*) FROM used_refresh_tokens"))
        engine.dispose()
    if isinstance(stored, str):  # SQLite hands the text back
        stored = datetime.fromisoformat(stored)
    assert stored.replace(tzinfo=UTC) == OPENED and kept == 1
