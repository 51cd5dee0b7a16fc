"""Key rotation end to end, on real `nestauth serve` processes restarted with new keys and
`nestauth keys reseal` run beside them (docs/deploy.md, Keys)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.support import PASSWORD, Api, assert_error, bearer, live_nestauth, totp_at

KEY_A = "end-to-end-key-a-0123456789abcdefghijk"
KEY_B = "end-to-end-key-b-9876543210zyxwvutsrqp"
CREDENTIALS = {"email": "rot@example.com", "password": PASSWORD}


class Live:
    """One `nestauth serve` at a time on the test database, under the keys given."""

    def __init__(self, api: Api, workdir: Path) -> None:
        self.url, self.workdir, self.runs = api.base_settings.database_url, workdir, 0

    @contextmanager
    def serve(self, key: str, *previous: str) -> Iterator[httpx.Client]:
        self.runs += 1
        env = {
            "NESTAUTH_DATABASE_URL": self.url,
            "NESTAUTH_SECRET_KEY": key,
            "NESTAUTH_PREVIOUS_SECRET_KEYS": ",".join(previous),
            "NESTAUTH_COOKIE_SECURE": "false",
        }
        workdir = self.workdir / f"run{self.runs}"
        workdir.mkdir()
        with live_nestauth(workdir, env) as base_url, httpx.Client(base_url=base_url) as client:
            yield client

    def reseal(self, key: str, *previous: str) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("NESTAUTH_")}
        environ.update(
            NESTAUTH_DATABASE_URL=self.url,
            NESTAUTH_VAR_DIR=str(self.workdir / "var"),
            NESTAUTH_SECRET_KEY=key,
            NESTAUTH_PREVIOUS_SECRET_KEYS=",".join(previous),
        )
        return subprocess.run(
            [sys.executable, "-m", "nestauth.cli", "keys", "reseal"],
            capture_output=True, text=True, env=environ, timeout=120, check=False,
        )  # fmt: skip

    def log(self) -> str:
        return (self.workdir / f"run{self.runs}" / "server.log").read_text()


def enrol(client: httpx.Client, token: str) -> str:
    headers = bearer(token)
    secret = client.post("/auth/mfa/setup-totp", json={}, headers=headers).json()["secret"]
    otp = totp_at(secret, datetime.now(UTC))
    body = {"secret": secret, "otp": otp}
    assert client.post("/auth/mfa/verify-totp-setup", json=body, headers=headers).is_success
    return secret


def live_mfa_login(client: httpx.Client, email: str, secret: str) -> httpx.Response:
    """A login with a code one step ahead: the drift window accepts it, and it is newer than
    the step the enrolment claimed."""
    login = client.post("/auth/login", json={**CREDENTIALS, "email": email}).json()
    otp = totp_at(secret, datetime.now(UTC), 1)
    body = {"mfaToken": login["mfaToken"], "otp": otp, "method": "totp"}
    return client.post("/auth/mfa/verify", json=body)


def enrol_under(live: Live, key: str) -> tuple[str, list[str], str]:
    """A user with three devices (one per later login) and recovery codes: their access
    token, the device secrets and one recovery code."""
    with live.serve(key) as server:
        token = server.post("/auth/signup", json=CREDENTIALS).json()["accessToken"]
        secrets_ = [enrol(server, token) for _ in range(3)]
        codes = server.post("/auth/mfa/generate-recovery-code", headers=bearer(token))
        return token, secrets_, codes.json()["codes"][0]


def test_rotation_end_to_end_with_restarts_and_reseal(api: Api, tmp_path: Path) -> None:
    """Enrol under key A; restart with B + previous A: MFA login, old token and recovery code
    still work; reseal; restart with B alone: MFA login still works. A server left on A alone
    answers SECRET_KEY_MISMATCH, one log line, no traceback."""
    live = Live(api, tmp_path)
    old_token, secrets_, recovery = enrol_under(live, KEY_A)
    with live.serve(KEY_B, KEY_A) as server:
        assert server.get("/auth/user", headers=bearer(old_token)).status_code == 200
        verified = live_mfa_login(server, CREDENTIALS["email"], secrets_[0])
        assert verified.status_code == 200, verified.text
        new_token = verified.json()["accessToken"]
        resealed = live.reseal(KEY_B, KEY_A)
        assert resealed.returncode == 0, resealed.stderr
        assert "resealed 3 of 3" in resealed.stdout
        assert "resealed 0 of 3" in live.reseal(KEY_B, KEY_A).stdout  # idempotent
        login = server.post("/auth/login", json=CREDENTIALS)
        body = {"mfaToken": login.json()["mfaToken"], "code": recovery}
        assert server.post("/auth/mfa/verify-recovery-code", json=body).status_code == 200
    with live.serve(KEY_B) as server:
        verified = live_mfa_login(server, CREDENTIALS["email"], secrets_[1])
        assert verified.status_code == 200, verified.text
        assert server.get("/auth/user", headers=bearer(new_token)).status_code == 200
        assert_error(server.get("/auth/user", headers=bearer(old_token)), 401, "SESSION_INVALID")
    with live.serve(KEY_A) as server:
        response = live_mfa_login(server, CREDENTIALS["email"], secrets_[2])
        assert_error(response, 500, "SECRET_KEY_MISMATCH")
    log = live.log()
    assert log.count("opens under none of the configured server keys") == 1, log
    assert "Traceback" not in log and "InvalidTag" not in log
