"""How long a login with MFA takes end to end: POST /auth/login, then POST /auth/mfa/verify.

Starts `nestauth serve` on a fresh SQLite file (or NESTAUTH_DATABASE_URL), enrols devices,
then times 20 logins from this process over loopback.
Usage: .venv/bin/python -m bench.mfa_login_time
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pyotp

from bench.harness import Server

LOGINS = 20
DEVICES_PER_USER = 10  # each code is accepted once per device, so each login uses its own
PORT = int(os.environ.get("BENCH_PORT", "8765"))
BASE = f"http://127.0.0.1:{PORT}"
PASSWORD = "a long user password"


def enrol_user(client: httpx.Client, email: str) -> list[str]:
    token = client.post("/auth/signup", json={"email": email, "password": PASSWORD}).json()[
        "accessToken"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    secrets = []
    for n in range(DEVICES_PER_USER):
        secret = client.post(
            "/auth/mfa/setup-totp", json={"deviceName": f"d{n}"}, headers=headers
        ).json()["secret"]
        code = pyotp.TOTP(secret).now()
        response = client.post(
            "/auth/mfa/verify-totp-setup", json={"secret": secret, "otp": code}, headers=headers
        )
        response.raise_for_status()
        secrets.append(secret)
    return secrets


def timed_login(client: httpx.Client, email: str, secret: str) -> float:
    started = time.perf_counter()
    pending = client.post("/auth/login", json={"email": email, "password": PASSWORD}).json()
    # The code that verified a device counts as used: take the next step's (drift +1).
    code = pyotp.TOTP(secret).at(time.time() + 30)
    body = {"mfaToken": pending["mfaToken"], "otp": code, "method": "totp"}
    response = client.post("/auth/mfa/verify", json=body)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        env = {
            **os.environ,
            "NESTAUTH_VAR_DIR": f"{workdir}/var",
            "NESTAUTH_COOKIE_SECURE": "false",
        }
        command = [sys.executable, "-m", "nestauth.cli", "serve", "--port", str(PORT)]
        with (
            Server("nestauth", command, env, PORT, Path(workdir) / "nestauth.log"),
            httpx.Client(base_url=BASE, timeout=10) as client,
        ):
            users = {
                f"bench{u}@example.com": enrol_user(client, f"bench{u}@example.com")
                for u in range(2)
            }
            pairs = [(email, secret) for email, secrets in users.items() for secret in secrets]
            times = [timed_login(client, email, secret) * 1000 for email, secret in pairs[:LOGINS]]
    print(
        f"login with MFA, {len(times)} runs: median {statistics.median(times):.1f} ms, "
        f"min {min(times):.1f} ms, max {max(times):.1f} ms"
    )


if __name__ == "__main__":
    main()
