"""The schemathesis CLI against a live `nestauth serve`, all checks, every phase.

Database: NESTAUTH_CONTRACT_DATABASE_URL (a PostgreSQL URL gets a schema of its own, dropped
after), else a fresh SQLite file. Credentials come from schemathesis' own auth: it logs in
through the API (and again after a fuzzed logout), never a raw header.
Usage: python scripts/contract_cli.py [extra schemathesis options]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import fresh_database, live_nestauth, make_settings  # noqa: E402

ADMIN = ("contract-cli-owner@example.com", "a long admin password")
USER = ("contract-cli-user@example.com", "a long user password")
# Ids harvested from responses would let the fuzzer demote, re-password or deactivate the
# very accounts it signs in with, after which no token can be fetched; the stateful phase
# still chains real resources through the spec's links.
AUTH = f"""
[phases.fuzzing.extra-data-sources]
responses = false

[phases.coverage.extra-data-sources]
responses = false

[auth.dynamic.openapi.admin-bearer]
path = "/auth/admin/login"
payload = {{ email = "{ADMIN[0]}", password = "{ADMIN[1]}" }}
extract_selector = "/token"
retry_on = [401]

[auth.dynamic.openapi.access-token]
path = "/auth/login"
payload = {{ email = "{USER[0]}", password = "{USER[1]}" }}
extract_selector = "/accessToken"
retry_on = [401]
"""


def main() -> int:
    backend = "postgresql" if os.environ.get("NESTAUTH_CONTRACT_DATABASE_URL") else "sqlite"
    if backend == "postgresql":
        os.environ["NESTAUTH_TEST_DATABASE_URL"] = os.environ["NESTAUTH_CONTRACT_DATABASE_URL"]
    with tempfile.TemporaryDirectory() as tmp, fresh_database(backend, Path(tmp)) as url:
        workdir = Path(tmp)
        env = {
            "NESTAUTH_DATABASE_URL": url,
            "NESTAUTH_SECRET_KEY": make_settings(url).secret_key,  # required off SQLite
            "NESTAUTH_COOKIE_SECURE": "false",
            "NESTAUTH_PASSWORD_HASH_PROFILE": "test",  # fuzzed logins at the cheap cost
        }
        _create_admin(workdir, url)
        with live_nestauth(workdir, env) as base_url:
            signup = {"email": USER[0], "password": USER[1]}
            httpx.post(f"{base_url}/auth/signup", json=signup).raise_for_status()
            config = workdir / "schemathesis.toml"
            config.write_text((ROOT / "schemathesis.toml").read_text() + AUTH)
            command = [
                sys.executable, "-m", "schemathesis.cli", "--config-file", str(config),
                "run", f"{base_url}/openapi.json", "--max-examples", "40", *sys.argv[1:],
            ]  # fmt: skip
            print(f"contract run on {backend}: {' '.join(command[3:])}", flush=True)
            code = subprocess.run(command, cwd=workdir, check=False).returncode
        if code:
            log = (workdir / "server.log").read_text().splitlines()
            print("server log (last 400 lines):", *log[-400:], sep="\n")
        return code


def _create_admin(workdir: Path, url: str) -> None:
    env = {**os.environ, "NESTAUTH_DATABASE_URL": url, "NESTAUTH_VAR_DIR": str(workdir / "var")}
    subprocess.run(
        [sys.executable, "-m", "nestauth.cli", "admin", "create", "--email", ADMIN[0],
         "--role", "owner", "--password-stdin"],
        input=ADMIN[1] + "\n", text=True, env=env, check=True, capture_output=True,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
