"""Schemathesis against the app: in-process (ASGI) and a live `nestauth serve` process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from schemathesis.config import SchemathesisConfig

from nestauth import db
from nestauth.app import create_app
from nestauth.models import Admin, AdminSession, User, UserSession, utcnow
from nestauth.services import tokens, user_tokens
from nestauth.services.passwords import _hasher
from tests.support import ADMIN_SECRET, live_nestauth, make_settings

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_ADMIN = "contract-owner@example.com"
CONTRACT_USER = "contract-user@example.com"
CASES: dict[str, int] = {}


def contract_config() -> SchemathesisConfig:
    return SchemathesisConfig.from_str((ROOT / "schemathesis.toml").read_text(), base_dir=str(ROOT))


def session_issuer(database_url: str) -> Callable[[Any], str]:
    """Issues sessions straight into the database, one per case, so that a fuzzed logout
    cannot revoke the credentials of the cases after it: an owner's for admin operations,
    a user's access token for user operations."""
    engine = sa.create_engine(db.sync_url(database_url))
    signing_key = user_tokens.signing_key(make_settings(database_url).secret_key)

    def issue(operation: Any) -> str:
        security = operation.definition.raw.get("security") or []
        with engine.begin() as conn:
            if any("access-token" in requirement for requirement in security):
                return _user_token(conn, signing_key)
            return _owner_token(conn)

    return issue


def _owner_token(conn: sa.Connection) -> str:
    token, now = tokens.new_token(), utcnow()
    admin_id = conn.scalar(sa.select(Admin.id).where(Admin.email == CONTRACT_ADMIN))
    if admin_id is None:
        admin_id = uuid.uuid4()
        conn.execute(sa.insert(Admin).values(
            id=admin_id, email=CONTRACT_ADMIN, role="owner", name=None,
            password_hash=_hasher().hash(uuid.uuid4().hex), created_at=now, updated_at=now,
        ))  # fmt: skip
    conn.execute(sa.insert(AdminSession).values(
        id=uuid.uuid4(), admin_id=admin_id, token_hash=tokens.digest(token),
        csrf_token_hash=tokens.digest(tokens.new_token()), created_at=now,
        last_seen_at=now, expires_at=now.replace(year=now.year + 1),
    ))  # fmt: skip
    return token


def _user_token(conn: sa.Connection, signing_key: bytes) -> str:
    now = utcnow()
    user_id = conn.scalar(sa.select(User.id).where(User.email == CONTRACT_USER))
    if user_id is None:
        user_id = uuid.uuid4()
        conn.execute(sa.insert(User).values(
            id=user_id, email=CONTRACT_USER, is_active=True, is_verified=True,
            is_mfa_enabled=False, created_at=now, updated_at=now,
        ))  # fmt: skip
    session_id = uuid.uuid4()
    conn.execute(sa.insert(UserSession).values(
        id=session_id, user_id=user_id, refresh_token_hash=uuid.uuid4().hex, created_at=now,
        last_used_at=now, expires_at=now.replace(year=now.year + 1),
    ))  # fmt: skip
    return user_tokens.issue_access_token(signing_key, user_id, session_id, now, 3600)


def with_bearer_auth(schema: Any, issue: Callable[[Any], str]) -> Any:
    class Bearer:
        def get(self, case: Any, ctx: Any) -> str:
            return issue(case.operation)

        def set(self, case: Any, data: str, ctx: Any) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(refresh_interval=None)(Bearer)
    return schema


@pytest.fixture(scope="session")
def asgi_schema(database_url: str) -> Any:
    # An app of its own: schemathesis runs its lifespan on its own event loop.
    app = create_app(make_settings(database_url))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=contract_config())
    return with_bearer_auth(schema, session_issuer(database_url))


@pytest.fixture(scope="session")
def live_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        "NESTAUTH_DATABASE_URL": database_url,
        "NESTAUTH_SECRET_KEY": make_settings(database_url).secret_key,
        "NESTAUTH_ADMIN_SECRET": ADMIN_SECRET,
        "NESTAUTH_COOKIE_SECURE": "false",
        "NESTAUTH_VALIDATE_RESPONSES": "true",
    }
    with live_nestauth(tmp_path_factory.mktemp("live"), env) as base_url:
        yield base_url


@pytest.fixture(scope="session")
def live_schema(live_server: str, database_url: str) -> Any:
    schema = schemathesis.openapi.from_url(f"{live_server}/openapi.json", config=contract_config())
    return with_bearer_auth(schema, session_issuer(database_url))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if CASES:
        terminalreporter.write_line(f"schemathesis cases: {CASES} (total {sum(CASES.values())})")
