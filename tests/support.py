"""Test helpers: one app per database, factories that go through the service layer."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pyotp
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from nestauth import migrations
from nestauth.config import Settings
from nestauth.models import AdminSession, Base, RecoveryCode, User, UserSession, utcnow
from nestauth.services import admins, totp_devices, users

T = TypeVar("T")
ADMIN_SECRET = "bootstrap-secret-for-tests-0123456789"
PASSWORD = "correct horse battery"
PG_URL_ENV = "NESTAUTH_TEST_DATABASE_URL"


def database_backends() -> list[str]:
    return ["sqlite", "postgresql"] if os.environ.get(PG_URL_ENV) else ["sqlite"]


@contextmanager
def fresh_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """A migrated, empty database of its own: a file, or a PostgreSQL schema per run."""
    with empty_database(backend, tmp_dir) as url:
        migrations.upgrade(url)
        yield url


@contextmanager
def empty_database(backend: str, tmp_dir: Path) -> Iterator[str]:
    """A database with no tables yet: a file, or a PostgreSQL schema dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / 'nestauth-test.db'}"
        return
    base = make_url(os.environ[PG_URL_ENV]).set(drivername="postgresql+psycopg")
    schema = f"nestauth_test_{uuid.uuid4().hex[:12]}"
    admin_engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin_engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = base.update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin_engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin_engine.dispose()


def make_settings(database_url: str, **overrides: Any) -> Settings:
    base = Settings(
        database_url=database_url,
        secret_key="test-server-key-" + "x" * 32,
        admin_secret=ADMIN_SECRET,
        cookie_secure=False,  # the test client speaks plain http
        validate_responses=True,
        password_hash_profile="test",  # argon2id at the smallest cost; production: test_services
        prune_interval_seconds=7 * 24 * 60 * 60,  # no background prune in the middle of tests
    )
    return replace(base, **overrides)


@dataclass
class Api:
    """The app under test with its client, and direct database access for arrange/assert."""

    app: Any
    client: Any
    base_settings: Settings

    @property
    def runtime(self) -> Any:
        return self.app.runtime

    def configure(self, **overrides: Any) -> None:
        self.runtime.settings = replace(self.base_settings, **overrides)

    def reset(self) -> None:
        self.runtime.settings = self.base_settings
        self.runtime.clock = utcnow
        self.run(self._wipe)

    def freeze(self, moment: datetime) -> datetime:
        """The server's clock stands still at `moment` until the next reset (no sleeping)."""
        self.runtime.clock = lambda: moment
        return moment

    def run(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Runs a coroutine function on the app's own event loop (one engine, one loop)."""
        return self.client.portal.call(fn, *args)

    def db(self, fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
        async def in_transaction() -> T:
            async with self.runtime.sessions() as session, session.begin():
                return await fn(session)

        return self.run(in_transaction)

    def scalar(self, statement: Any) -> Any:
        async def query(session: AsyncSession) -> Any:
            return await session.scalar(statement)

        return self.db(query)

    def count(self, model: Any, *where: Any) -> int:
        return int(self.scalar(sa.select(sa.func.count()).select_from(model).where(*where)))

    def snapshot(self) -> dict[str, list[str]]:
        """Every row of every table, to show that a request changed nothing."""

        async def read(session: AsyncSession) -> dict[str, list[str]]:
            return {
                table.name: sorted(
                    repr(tuple(row)) for row in await session.execute(sa.select(table))
                )
                for table in Base.metadata.sorted_tables
            }

        return self.db(read)

    async def _wipe(self) -> None:
        async with self.runtime.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                await conn.execute(table.delete())

    # --- factories -----------------------------------------------------------------------

    def create_admin(self, role: str = "owner", email: str | None = None) -> str:
        email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"

        async def create(session: AsyncSession) -> None:
            await admins.create_admin(session, email=email, password=PASSWORD, role=role)

        self.db(create)
        return email

    def login(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.client.post(
            "/auth/admin/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.json()

    def bearer(self, role: str = "admin") -> dict[str, str]:
        token = self.login(self.create_admin(role))["token"]
        return {"Authorization": f"Bearer {token}"}

    def create_user(
        self,
        *,
        verified_devices: int = 1,
        unverified_devices: int = 0,
        recovery_codes: int = 0,
        sessions: int = 0,
    ) -> UserFixture:
        box = self.runtime.secret_box

        async def create(session: AsyncSession) -> UserFixture:
            user = await users.create_user(session, email=f"u-{uuid.uuid4().hex[:8]}@example.com")
            user.is_mfa_enabled = verified_devices > 0
            devices = []
            for index in range(verified_devices + unverified_devices):
                device, _secret = await totp_devices.add_device(
                    session, box, user_id=user.id, device_name=f"phone {index}",
                    verified=index < verified_devices,
                )  # fmt: skip
                devices.append(str(device.id))
            for _ in range(recovery_codes):
                session.add(RecoveryCode(user_id=user.id, code_hash="argon2-hash-placeholder"))
            for _ in range(sessions):
                session.add(
                    UserSession(
                        user_id=user.id,
                        refresh_token_hash=uuid.uuid4().hex,
                        expires_at=utcnow().replace(year=utcnow().year + 1),
                    )
                )
            await session.flush()
            return UserFixture(id=str(user.id), devices=devices)

        return self.db(create)

    def get_user(self, user_id: str) -> User:
        return self.scalar(sa.select(User).where(User.id == uuid.UUID(user_id)))

    def add_user_session(
        self,
        user_id: str,
        *,
        created_at: datetime | None = None,
        expires_at: datetime | None = None,
        revoked_at: datetime | None = None,
    ) -> str:
        """One session of the user, with the moments given (default: live for a year)."""
        now = utcnow()
        row = UserSession(
            user_id=uuid.UUID(user_id),
            refresh_token_hash=uuid.uuid4().hex,
            created_at=created_at or now,
            last_used_at=created_at or now,
            expires_at=expires_at or now.replace(year=now.year + 1),
            revoked_at=revoked_at,
        )

        async def add(session: AsyncSession) -> str:
            session.add(row)
            await session.flush()
            return str(row.id)

        return self.db(add)

    def admin_session_of(self, token: str) -> AdminSession:
        from nestauth.services.tokens import digest

        return self.scalar(sa.select(AdminSession).where(AdminSession.token_hash == digest(token)))

    def shift_admin_session(self, token: str, **moments: datetime) -> None:
        """Moves a session's timestamps, instead of sleeping through its limits."""
        from nestauth.services.tokens import digest

        async def shift(session: AsyncSession) -> None:
            await session.execute(
                sa.update(AdminSession)
                .where(AdminSession.token_hash == digest(token))
                .values(**moments)
            )

        self.db(shift)

    # --- end users through the API ------------------------------------------------------

    def sign_up(self, email: str | None = None, password: str = PASSWORD) -> dict[str, Any]:
        """A new user, signed up and signed in: the 201 body (tokens and user)."""
        email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
        response = self.client.post("/auth/signup", json={"email": email, "password": password})
        assert response.status_code == 201, response.text
        return response.json()

    def log_in_user(self, email: str, password: str = PASSWORD) -> dict[str, Any]:
        response = self.client.post("/auth/login", json={"email": email, "password": password})
        assert response.status_code == 200, response.text
        return response.json()

    def enrol_device(self, token: str, name: str | None = None) -> EnrolledDevice:
        """Sets up and verifies one authenticator app with a code of the server's now."""
        headers = bearer(token)
        body = {"deviceName": name} if name else {}
        setup = self.client.post("/auth/mfa/setup-totp", json=body, headers=headers)
        assert setup.status_code == 200, setup.text
        secret = setup.json()["secret"]
        otp = totp_at(secret, self.runtime.clock())
        verified = self.client.post(
            "/auth/mfa/verify-totp-setup", json={"secret": secret, "otp": otp}, headers=headers
        )
        assert verified.status_code == 200, verified.text
        return EnrolledDevice(setup.json()["deviceId"], secret, verified.json())

    def mfa_user(self, devices: int = 1) -> MfaUser:
        """A signed-up user with `devices` verified authenticator apps (MFA on)."""
        signed = self.sign_up()
        enrolled = [self.enrol_device(signed["accessToken"], f"phone {i}") for i in range(devices)]
        return MfaUser(
            id=signed["user"]["id"],
            email=signed["user"]["email"],
            access_token=signed["accessToken"],
            refresh_token=signed["refreshToken"],
            devices=enrolled,
        )

    def mfa_user_enrolled_ago(self, steps: int, devices: int = 1) -> tuple[MfaUser, datetime]:
        """A user who enrolled `steps` TOTP steps ago, and the moment the clock now stands at."""
        start = self.freeze(mid_step())
        user = self.mfa_user(devices=devices)
        return user, self.freeze(start + timedelta(seconds=30 * steps))

    def start_mfa_login(self, email: str) -> str:
        """The password step of an MFA login: the mfaToken."""
        body = self.log_in_user(email)
        assert body["isRequiresMfa"] is True and "accessToken" not in body, body
        return str(body["mfaToken"])

    def current_user(self, access_token: str) -> Any:
        return self.client.get("/auth/user", headers=bearer(access_token))

    def refresh(self, refresh_token: str) -> Any:
        return self.client.post("/auth/refresh-token", json={"refreshToken": refresh_token})

    def deactivate_user(self, user_id: str) -> None:
        async def update(session: AsyncSession) -> None:
            await session.execute(
                sa.update(User).where(User.id == uuid.UUID(user_id)).values(is_active=False)
            )

        self.db(update)

    def setup_only_login(self) -> tuple[str, str]:
        """Under the MFA policy a user with no device logs in: (email, setup-only token)."""
        self.configure(mfa_required=True)
        email = self.sign_up()["user"]["email"]
        body = self.log_in_user(email)
        assert body == {"isRequiresMfa": True, "mfaToken": body["mfaToken"], "mfaMethods": [],
                        "isMfaSetupRequired": True}  # fmt: skip
        return email, str(body["mfaToken"])

    def recovery_codes(self, token: str) -> list[str]:
        response = self.client.post("/auth/mfa/generate-recovery-code", headers=bearer(token))
        assert response.status_code == 200, response.text
        return list(response.json()["codes"])

    def verify_recovery_code(self, mfa_token: str, code: str) -> Any:
        return self.client.post(
            "/auth/mfa/verify-recovery-code", json={"mfaToken": mfa_token, "code": code}
        )

    def verify_mfa(self, mfa_token: str, otp: str) -> Any:
        return self.client.post(
            "/auth/mfa/verify", json={"mfaToken": mfa_token, "otp": otp, "method": "totp"}
        )


@dataclass
class UserFixture:
    id: str
    devices: list[str]


@dataclass
class EnrolledDevice:
    id: str
    secret: str
    verified: dict[str, Any]  # the verify-totp-setup body


@dataclass
class MfaUser:
    id: str
    email: str
    access_token: str
    refresh_token: str
    devices: list[EnrolledDevice]


def mid_step(moment: datetime | None = None) -> datetime:
    """The middle of a 30-second TOTP step, so a frozen clock is never one second from a step
    boundary. By default an hour back, so moves of up to an hour stay in the past."""
    moment = moment or datetime.now(UTC) - timedelta(hours=1)
    start = int(moment.timestamp()) // 30 * 30
    return datetime.fromtimestamp(start + 15, UTC)


def totp_at(secret: str, moment: datetime, steps: int = 0) -> str:
    """The RFC 6238 code of `secret` at `moment`, shifted by whole 30-second steps."""
    return pyotp.TOTP(secret).at(moment + timedelta(seconds=30 * steps))


@contextmanager
def live_nestauth(
    workdir: Path,
    env: dict[str, str],
    nestauth: Sequence[str] = (sys.executable, "-m", "nestauth.cli"),
) -> Iterator[str]:
    """A real `nestauth serve` process in `workdir`; yields its base URL once healthy.
    `nestauth` is how the command is run (another install's console script, say)."""
    port = _free_port()
    full_env = {**os.environ, "NESTAUTH_VAR_DIR": str(workdir / "var"), **env}
    command = [*nestauth, "serve", "--port", str(port)]
    with (workdir / "server.log").open("w") as log:
        server = subprocess.Popen(
            command, cwd=workdir, env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            _wait_until_healthy(base_url, server)
            yield base_url
        finally:
            server.terminate()
            server.wait(timeout=15)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_healthy(
    base_url: str, server: subprocess.Popen[bytes], timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"nestauth serve exited with {server.returncode}")
        try:
            if httpx.get(f"{base_url}/auth/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("nestauth serve did not become healthy")


def assert_error(response: Any, status: int, code: str) -> None:
    """The error envelope: all four fields present, the status and the stable code."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"statusCode", "error", "message", "code"}
    assert body["statusCode"] == status
    assert body["code"] == code


def assert_admin_event(event: Any, admin_id: object, admin_email: str, **columns: object) -> None:
    """An audit event made by this admin, with these column values (ids compared as text)."""
    assert (event.actor_type, str(event.actor_id), event.actor_email) == (
        "admin", str(admin_id), admin_email,
    )  # fmt: skip
    for name, expected in columns.items():
        value = getattr(event, name)
        assert (str(value) if isinstance(value, uuid.UUID) else value) == expected, name


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def wrong_otp(moment: datetime, *secrets: str) -> str:
    """A well-formed code that none of `secrets` accepts at `moment` (drift window included)."""
    taken = {totp_at(secret, moment, steps) for secret in secrets for steps in range(-3, 4)}
    return next(c for c in (f"{d}" * 6 for d in range(10)) if c not in taken)


@dataclass
class Signed:
    id: str
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def sign_in(api: Api, role: str = "owner") -> Signed:
    """A bearer-only admin: the login cookie is dropped so it cannot stand in for the token."""
    email = api.create_admin(role)
    body = api.login(email)
    api.client.cookies.clear()
    return Signed(body["admin"]["id"], email, body["token"])
