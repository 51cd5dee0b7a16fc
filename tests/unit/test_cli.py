"""`nestauth` as an operator runs it: a real process, the embedded SQLite default, exit codes."""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
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


STRONG_KEY = "cli-test-server-key-0123456789abcdefgh"


def assert_one_line(result: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    """A refusal an operator can act on: one line on stderr, no traceback."""
    assert result.returncode == status, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual default umask, under which files are created group- and world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestPrivateFiles:
    def test_database_and_var_dir_are_owner_only(self, tmp_path: Path, umask_022: None) -> None:
        var_dir = tmp_path / "var"
        assert nestauth(var_dir, "db", "upgrade").returncode == 0
        assert mode(var_dir) == 0o700
        assert mode(var_dir / "nestauth.db") == 0o600
        assert mode(var_dir / "secret.key") == 0o600

    def test_wal_and_shm_files_follow_the_database(self, umask_022: None, installed: Path) -> None:
        with sqlite3.connect(installed / "nestauth.db") as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("DELETE FROM admins")  # a write: SQLite makes -wal and -shm now
            for suffix in ("-wal", "-shm"):
                assert mode(installed / f"nestauth.db{suffix}") == 0o600

    def test_an_older_world_readable_database_is_made_private(self, installed: Path) -> None:
        (installed / "nestauth.db").chmod(0o644)
        assert nestauth(installed, "db", "upgrade").returncode == 0
        assert mode(installed / "nestauth.db") == 0o600

    def test_a_world_readable_key_file_is_refused(self, installed: Path) -> None:
        (installed / "secret.key").chmod(0o644)
        result = nestauth(installed, "db", "upgrade")
        assert_one_line(result, 2, "NESTAUTH_SECRET_KEY", "chmod 600")

    def test_an_unusable_var_dir_is_one_line(self, tmp_path: Path) -> None:
        (tmp_path / "a-file").write_text("")
        result = nestauth(tmp_path / "a-file" / "var", "db", "upgrade")
        assert_one_line(result, 2, "NESTAUTH_VAR_DIR")
        result = nestauth(
            tmp_path / "a-file" / "var", "db", "upgrade", NESTAUTH_SECRET_KEY=STRONG_KEY
        )
        assert_one_line(result, 2, "cannot use")


class TestAdminCreateValidation:
    @pytest.mark.parametrize(
        "email", ["not-an-email", "ops@localhost", "ops@@example.com", "ops @example.com", ""]
    )
    def test_exit_2_email_the_api_would_refuse(self, installed: Path, email: str) -> None:
        assert_one_line(create_admin(installed, email), 2, "--email")
        assert admins_in(installed) == []

    def test_exit_2_password_too_long_and_never_echoed(self, installed: Path) -> None:
        password = "p" * 129
        line = assert_one_line(create_admin(installed, "ops@example.com", password), 2, "128")
        assert password not in line
        assert admins_in(installed) == []

    def test_exit_2_before_db_upgrade_without_hash_or_traceback(self, tmp_path: Path) -> None:
        result = create_admin(tmp_path / "var", "ops@example.com")
        line = assert_one_line(result, 2, "nestauth db upgrade")
        assert "argon2" not in result.stdout + result.stderr
        assert PASSWORD not in result.stdout + result.stderr
        assert "INSERT" not in line

    def test_exit_1_unreachable_database_is_one_line(self, tmp_path: Path) -> None:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        result = create_admin(
            tmp_path,
            "ops@example.com",
            NESTAUTH_DATABASE_URL=f"postgresql://nobody@127.0.0.1:{port}/none",
            NESTAUTH_SECRET_KEY=STRONG_KEY,
        )
        assert_one_line(result, 1, "database")


class TestServeRefuses:
    def test_shared_database_without_a_key(self, tmp_path: Path) -> None:
        url = "postgresql://nestauth@127.0.0.1:1/nestauth"
        result = nestauth(tmp_path, "serve", NESTAUTH_DATABASE_URL=url)
        assert_one_line(result, 2, "NESTAUTH_SECRET_KEY")
        assert not (tmp_path / "secret.key").exists()

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "auth.example.com"])  # noqa: S104
    def test_network_address_with_insecure_cookies(self, installed: Path, host: str) -> None:
        result = nestauth(installed, "serve", "--host", host, NESTAUTH_COOKIE_SECURE="false")
        assert_one_line(result, 2, host, "NESTAUTH_COOKIE_SECURE")

    @pytest.mark.parametrize("secret", ["x", "bootstrap", "ab" * 20])
    def test_a_weak_admin_secret(self, installed: Path, secret: str) -> None:
        result = nestauth(installed, "serve", NESTAUTH_ADMIN_SECRET=secret)
        assert_one_line(result, 2, "NESTAUTH_ADMIN_SECRET")

    def test_a_blank_server_key(self, installed: Path) -> None:
        result = nestauth(installed, "serve", NESTAUTH_SECRET_KEY=" " * 32)
        assert_one_line(result, 2, "NESTAUTH_SECRET_KEY")


@pytest.mark.postgresql_only
class TestUnmigratedSharedDatabase:
    """`db upgrade` is the operator's step on PostgreSQL; without it, one line says so."""

    @pytest.fixture
    def empty_schema(self, database_url: str, tmp_path: Path) -> Iterator[str]:
        from tests.support import empty_database

        with empty_database("postgresql", tmp_path) as url:
            yield url

    def test_serve_refuses(self, empty_schema: str, tmp_path: Path) -> None:
        result = nestauth(
            tmp_path, "serve", NESTAUTH_DATABASE_URL=empty_schema, NESTAUTH_SECRET_KEY=STRONG_KEY
        )
        assert_one_line(result, 2, "nestauth db upgrade")

    def test_admin_create_refuses_without_hash_or_traceback(
        self, empty_schema: str, tmp_path: Path
    ) -> None:
        result = create_admin(
            tmp_path,
            "ops@example.com",
            NESTAUTH_DATABASE_URL=empty_schema,
            NESTAUTH_SECRET_KEY=STRONG_KEY,
        )
        assert_one_line(result, 2, "nestauth db upgrade")
        assert "argon2" not in result.stderr


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


class TestPrivateFileKeepsLocks:
    def test_a_lock_this_process_holds_on_the_database_survives(self, installed: Path) -> None:
        """POSIX locks belong to the process: closing any descriptor of the file drops them
        all, SQLite's included, and the database is then corrupted under concurrent use (the
        housekeeping tests run `db prune` in the process that serves the same file)."""
        from nestauth.cli_support import private_sqlite_file

        database = installed / "nestauth.db"
        holder = sqlite3.connect(database, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the write lock, held by this process
            private_sqlite_file(f"sqlite:///{database}")
            probe = (
                "import sqlite3, sys\n"
                "c = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)\n"
                "try:\n    c.execute('BEGIN IMMEDIATE')\nexcept sqlite3.OperationalError:\n"
                "    sys.exit(3)\n"
            )
            other = subprocess.run(
                [sys.executable, "-c", probe, str(database)], capture_output=True, check=False
            )
            assert other.returncode == 3, "another process took the write lock this one holds"
        finally:
            holder.execute("ROLLBACK")
            holder.close()
