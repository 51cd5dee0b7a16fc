"""The floor: a bare Starlette app doing the seed operation's database work, nothing else.

Same engine setup as nestauth (nestauth.db.create_engine), same statements in the same
transaction: the admin session look-up, the user, the device delete, the remaining count,
the last-device rule, the audit row. No spec, no validation layer, no ORM: what is left of
a request when the framework costs nothing. Run: python bench/floor.py PORT (database from
NESTAUTH_DATABASE_URL, as for nestauth serve).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import uuid
from datetime import UTC, datetime

import uvicorn
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from nestauth import db

ADMIN = text(
    "SELECT a.id, a.email, s.id, s.revoked_at, s.expires_at FROM admin_sessions s "
    "JOIN admins a ON a.id = s.admin_id WHERE s.token_hash = :token_hash"
)
USER = text("SELECT id FROM users WHERE id = :id")  # FOR UPDATE on PostgreSQL
DELETE = text(
    "DELETE FROM totp_devices WHERE id = :device AND user_id = :user "
    "RETURNING device_name, verified"
)
REMAINING = text("SELECT count(*) FROM totp_devices WHERE user_id = :user AND verified")
MFA_OFF = text("UPDATE users SET is_mfa_enabled = false WHERE id = :user")
CODES_OFF = text("DELETE FROM recovery_codes WHERE user_id = :user")
AUDIT = text(
    "INSERT INTO audit_events (id, occurred_at, action, actor_type, actor_id, actor_email, "
    "target_type, target_id, user_id, ip, user_agent, details) VALUES (:id, :now, "
    "'user.totp_device.removed', 'admin', :actor, :email, 'totp_device', :device, :user, "
    ":ip, :agent, :details)"
)


def _error(status: int, code: str, message: str) -> Response:
    body = {"statusCode": status, "error": "error", "message": message, "code": code}
    return Response(json.dumps(body), status, media_type="application/json")


async def remove_device(request: Request) -> Response:
    token = request.headers.get("authorization", "").removeprefix("Bearer ")
    try:
        user_id = uuid.UUID(request.path_params["id"])
        device_id = uuid.UUID(request.path_params["deviceId"])
    except ValueError:
        return _error(400, "VALIDATION_FAILED", "malformed id")
    async with request.app.state.engine.begin() as connection:
        admin = await _admin(connection, token)
        if admin is None:
            return _error(401, "SESSION_INVALID", "Invalid or expired session")
        user_query = USER if connection.dialect.name == "sqlite" else text(f"{USER} FOR UPDATE")
        if (await connection.execute(user_query, {"id": _key(user_id)})).first() is None:
            await connection.rollback()
            return _error(404, "USER_NOT_FOUND", "User not found")
        keys = {"device": _key(device_id), "user": _key(user_id)}
        removed = (await connection.execute(DELETE, keys)).first()
        if removed is None:
            await connection.rollback()
            return _error(404, "TOTP_DEVICE_NOT_FOUND", "TOTP device not found")
        remaining = int(await connection.scalar(REMAINING, {"user": keys["user"]}) or 0)
        if not remaining:
            await connection.execute(MFA_OFF, {"user": keys["user"]})
            await connection.execute(CODES_OFF, {"user": keys["user"]})
        await connection.execute(AUDIT, _audit(request, admin, keys, tuple(removed), remaining))
    body = {
        "message": "TOTP device deleted successfully", "userId": str(user_id),
        "deviceId": str(device_id), "remainingDevices": remaining,
        "mfaDisabled": not remaining, "sessionsRevoked": 0,
    }  # fmt: skip
    return Response(json.dumps(body), 200, media_type="application/json")


async def _admin(connection: AsyncConnection, token: str) -> tuple | None:
    digest = hashlib.sha256(token.encode()).hexdigest()
    row = (await connection.execute(ADMIN, {"token_hash": digest})).first()
    if row is None or row[3] is not None or _aware(row[4]) <= datetime.now(UTC):
        return None
    return tuple(row)


def _aware(moment: datetime | str) -> datetime:
    """SQLite hands back text (naive UTC), PostgreSQL an aware datetime."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _key(value: uuid.UUID | str) -> str | uuid.UUID:
    """SQLite stores SQLAlchemy's Uuid as 32 hex digits; PostgreSQL has a uuid type."""
    if isinstance(value, str):
        return value  # read back from the database as it is stored
    return value.hex if DIALECT == "sqlite" else value


def _audit(
    request: Request, admin: tuple, keys: dict, removed: tuple[str, bool], remaining: int
) -> dict:
    name, verified = removed
    details = {"deviceName": name, "deviceVerified": bool(verified),
               "remainingDevices": remaining, "mfaDisabled": not remaining,
               "sessionsRevoked": 0}  # fmt: skip
    return {
        "id": _key(uuid.uuid4()), "now": datetime.now(UTC).replace(tzinfo=None)
        if DIALECT == "sqlite" else datetime.now(UTC),
        "actor": _key(admin[0]), "email": admin[1], "device": keys["device"],
        "user": keys["user"], "ip": request.client.host if request.client else None,
        "agent": request.headers.get("user-agent"), "details": json.dumps(details),
    }  # fmt: skip


DATABASE_URL = os.environ["NESTAUTH_DATABASE_URL"]
DIALECT = db.async_url(DATABASE_URL).get_backend_name()


def create_app() -> Starlette:
    app = Starlette(
        routes=[Route("/auth/admin/api/users/{id}/totp-devices/{deviceId}", remove_device,
                      methods=["DELETE"])],
    )  # fmt: skip
    app.state.engine = db.create_engine(DATABASE_URL)
    return app


if __name__ == "__main__":
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="info")
