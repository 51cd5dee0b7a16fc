"""The requests of each benchmark case, built from the prepared data."""

from __future__ import annotations

import json
import uuid

import pyotp

from bench.harness import Load
from bench.seed import BulkUser

USERS = "/auth/admin/api/users"
ADMIN_EMAIL = "bench-admin@example.test"
ADMIN_PASSWORD = "a long bench admin password"
LOGIN_ADMINS = 32  # logins rotate over them: one account's parallel logins would be a burst
JSON = {"content-type": "application/json"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def seed_not_found(user: BulkUser, token: str) -> Load:
    """The authenticated 404 path: a real user, a device id that does not exist."""
    path = f"{USERS}/{user.id}/totp-devices/{uuid.uuid4()}"
    return Load([("DELETE", path, "")], 404, repeat=True, headers=bearer(token))


def seed_delete(owners: list[BulkUser], token: str) -> Load:
    """Each request removes a different existing device (never the same one twice)."""
    requests = [
        ("DELETE", f"{USERS}/{user.id}/totp-devices/{device_id}", "")
        for user in owners
        for device_id in user.device_ids
    ]
    return Load(requests, 200, headers=bearer(token))


def get_user(user: BulkUser, token: str) -> Load:
    return Load([("GET", f"{USERS}/{user.id}", "")], 200, repeat=True, headers=bearer(token))


def mfa_verify(users: list[BulkUser]) -> Load:
    """Each user's MFA token with a current code of their device: each code is accepted once
    per device and each token once, so every request has a user of its own. The codes are
    made now and stay valid for 30 to 60 s (one step of drift each side)."""
    requests = [
        (
            "POST",
            "/auth/mfa/verify",
            json.dumps({"mfaToken": user.mfa_token, "otp": pyotp.TOTP(user.secrets[0]).now()}),
        )
        for user in users
    ]
    return Load(requests, 200, headers=JSON)


def login_admin_email(n: int) -> str:
    return f"bench-login-{n}@example.test"


def admin_login() -> Load:
    """Logins of different admins in turn: 16 at once for one account look like an attack,
    and the failed-login limit counts an attempt before its hash is checked."""
    bodies = [
        json.dumps({"email": login_admin_email(n), "password": ADMIN_PASSWORD})
        for n in range(LOGIN_ADMINS)
    ]
    return Load([("POST", "/auth/admin/login", b) for b in bodies], 200, repeat=True,
                headers=JSON)  # fmt: skip
