"""Bulk data for the benchmark, built with the service layer's own pieces.

Rows are inserted in batches through SQLAlchemy Core (a million users one ORM flush at a
time would take hours), but every stored value comes from the services: emails normalised
by services.emails, TOTP secrets sealed by services.totp_devices, session and MFA tokens
digested by services.tokens, the password hashed once by services.passwords (argon2id).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from nestauth import db
from nestauth.models import MfaChallenge, TotpDevice, User, UserSession, core_table
from nestauth.services import admins, passwords, tokens
from nestauth.services.emails import normalize_email
from nestauth.services.secrets import SecretBox
from nestauth.services.totp_devices import seal_device_secret

BATCH = 5_000
USER_PASSWORD = "a long bench password"  # one argon2 hash shared by every bench user


@dataclass
class BulkUser:
    id: uuid.UUID
    email: str
    device_ids: list[uuid.UUID] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    mfa_token: str | None = None


@dataclass
class Loader:
    engine: AsyncEngine
    box: SecretBox
    password_hash: str = ""
    made: int = 0  # users made so far: keeps emails unique across calls

    async def users(
        self,
        count: int,
        *,
        devices: int = 1,
        sessions: int = 1,
        mfa_challenges: bool = False,
        keep: bool = True,
    ) -> list[BulkUser]:
        """`count` users, each with verified devices and live sessions; with `keep` their
        ids, device secrets and (with `mfa_challenges`) an MFA login token are returned."""
        if not self.password_hash:
            self.password_hash = await passwords.hash_password(USER_PASSWORD)
        kept: list[BulkUser] = []
        for start in range(0, count, BATCH):
            size = min(BATCH, count - start)
            batch = [self._new_user() for _ in range(size)]
            await self._insert(batch, devices, sessions, mfa_challenges)
            if keep:
                kept.extend(batch)
        return kept

    def _new_user(self) -> BulkUser:
        self.made += 1
        return BulkUser(uuid.uuid4(), normalize_email(f"Bench-{self.made}@Example.test"))

    async def _insert(
        self, batch: list[BulkUser], devices: int, sessions: int, mfa_challenges: bool
    ) -> None:
        now = datetime.now(UTC)
        user_rows: list[dict[str, object]] = []
        device_rows: list[dict[str, object]] = []
        for user in batch:
            user_rows.append(self._user_row(user, now, devices > 0))
            device_rows.extend(self._device_rows(user, devices, now))
        session_rows = [_session_row(u.id, now) for u in batch for _ in range(sessions)]
        async with self.engine.begin() as connection:
            for model, rows in (
                (User, user_rows),
                (TotpDevice, device_rows),
                (UserSession, session_rows),
                (MfaChallenge, _challenge_rows(batch, now) if mfa_challenges else []),
            ):
                if rows:  # Core inserts: the ORM's unit of work is far slower in bulk
                    await connection.execute(insert(core_table(model)), rows)

    def _user_row(self, user: BulkUser, now: datetime, mfa: bool) -> dict[str, object]:
        return {
            "id": user.id, "email": user.email, "password_hash": self.password_hash,
            "is_active": True, "is_verified": True, "is_mfa_enabled": mfa,
            "created_at": now, "updated_at": now,
        }  # fmt: skip

    def _device_rows(self, user: BulkUser, devices: int, now: datetime) -> Iterator[dict]:
        for n in range(devices):
            device_id, secret = uuid.uuid4(), pyotp.random_base32()
            user.device_ids.append(device_id)
            user.secrets.append(secret)
            yield {
                "id": device_id, "user_id": user.id, "device_name": f"Authenticator {n + 1}",
                "secret_encrypted": seal_device_secret(self.box, device_id, secret),
                "verified": True, "created_at": now,
            }  # fmt: skip


def _session_row(user_id: uuid.UUID, now: datetime) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "user_id": user_id,
        "refresh_token_hash": tokens.digest(tokens.new_token()),
        "created_at": now, "last_used_at": now, "expires_at": now + timedelta(days=30),
        "ip": "127.0.0.1", "user_agent": "nestauth-bench",
    }  # fmt: skip


def _challenge_rows(batch: list[BulkUser], now: datetime) -> list[dict[str, object]]:
    rows = []
    for user in batch:
        user.mfa_token = tokens.new_token()
        rows.append({
            "id": uuid.uuid4(), "user_id": user.id, "token_hash": tokens.digest(user.mfa_token),
            "purpose": "login", "created_at": now, "expires_at": now + timedelta(minutes=5),
        })  # fmt: skip
    return rows


async def create_admin(engine: AsyncEngine, email: str, password: str) -> None:
    async with db.session_factory(engine)() as session, session.begin():
        await admins.create_admin(session, email=email, password=password, role="owner")


async def count_users(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.scalar(select(func.count()).select_from(User))) or 0)


async def count_devices(engine: AsyncEngine, device_ids: list[uuid.UUID]) -> int:
    """How many of these devices still exist (a delete case checks its 200s against it)."""
    found = 0
    async with engine.connect() as connection:
        for start in range(0, len(device_ids), 500):
            chunk = device_ids[start : start + 500]
            query = select(func.count()).select_from(TotpDevice).where(TotpDevice.id.in_(chunk))
            found += int((await connection.scalar(query)) or 0)
    return found
