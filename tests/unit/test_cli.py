"""`nestauth` as an operator runs it: a real process, the embedded SQLite default, exit codes."""

from __future__ import annotations

import os
import re
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

PASSWORD = "correct horse battery"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def nestauth(
    var_dir: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("NESTAUTH_")}
    environ.update(NESTAUTH_VAR_DIR=str(var_dir), **env)
    return subprocess.run(
        [sys.executable, "-m", "nestauth.cli", *args],
        input=stdin, capture_output=True, text=True, env=environ, timeout=120, check=False,
    )  # fmt: skip


def create_admin(var_dir: Path, email: str, password: str = PASSWORD, **env: str):
    args = ("admin", "create", "--email", email, "--role", "viewer", "--password-stdin")
    return nestauth(var_dir, *args, stdin=password + "\n", **env)


def admins_in(var_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(var_dir / "nestauth.db") as conn:
        return conn.execute("SELECT email, role FROM admins ORDER BY email").fetchall()


@pytest.fixture
def installed(tmp_path: Path) -> Path:
    var_dir = tmp_path / "var"
    result = nestauth(var_dir, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    return var_dir


class TestDbUpgrade:
    def test_exit_0_creates_sqlite_file_and_key(self, installed: Path) -> None:
        assert (installed / "nestauth.db").is_file()
        assert stat.S_IMODE((installed / "secret.key").stat().st_mode) == 0o600
        assert admins_in(installed) == []

    def test_second_run_is_a_no_op(self, installed: Path) -> None:
        key = (installed / "secret.key").read_text()
        assert nestauth(installed, "db", "upgrade").returncode == 0
        assert (installed / "secret.key").read_text() == key


class TestAdminCreate:
    def test_exit_0_prints_the_id(self, installed: Path) -> None:
        result = create_admin(installed, "Ops@Example.com")
        assert result.returncode == 0, result.stderr
        assert UUID_RE.search(result.stdout), result.stdout
        assert "ops@example.com" in result.stdout
        assert PASSWORD not in result.stdout + result.stderr
        assert admins_in(installed) == [("ops@example.com", "viewer")]

    def test_exit_1_same_email_other_case(self, installed: Path) -> None:
        assert create_admin(installed, "ops@example.com").returncode == 0
        result = create_admin(installed, "OPS@example.COM")
        assert result.returncode == 1
        assert "EMAIL_ALREADY_EXISTS" in result.stderr
        assert len(admins_in(installed)) == 1

    def test_exit_2_password_too_short(self, installed: Path) -> None:
        result = create_admin(installed, "ops@example.com", password="short")
        assert result.returncode == 2
        assert "password" in result.stderr
        assert admins_in(installed) == []


class TestBadConfiguration:
    @pytest.mark.parametrize(
        "command",
        [("db", "upgrade"), ("admin", "create", "--email", "a@example.com", "--password-stdin")],
    )
    def test_exit_2_one_line_naming_the_variable(self, tmp_path: Path, command) -> None:
        result = nestauth(tmp_path, *command, stdin=PASSWORD + "\n", NESTAUTH_COOKIE_SECURE="maybe")
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert "NESTAUTH_COOKIE_SECURE" in lines[0]
        assert not (tmp_path / "nestauth.db").exists()


class TestServeHashProfile:
    def test_exit_2_when_the_test_profile_would_serve_beyond_loopback(self, tmp_path: Path) -> None:
        result = nestauth(
            tmp_path / "var", "serve", "--host", "0.0.0.0",  # noqa: S104 (refused, never bound)
            NESTAUTH_PASSWORD_HASH_PROFILE="test",
        )  # fmt: skip
        assert result.returncode == 2
        assert "NESTAUTH_PASSWORD_HASH_PROFILE" in result.stderr
        assert "Traceback" not in result.stderr

    def test_exit_2_on_an_unknown_profile(self, tmp_path: Path) -> None:
        result = nestauth(tmp_path / "var", "db", "upgrade", NESTAUTH_PASSWORD_HASH_PROFILE="x")
        assert result.returncode == 2
        assert "NESTAUTH_PASSWORD_HASH_PROFILE" in result.stderr
