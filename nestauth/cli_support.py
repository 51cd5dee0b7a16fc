"""What the CLI checks before it acts: a safe start, private files, a migrated database,
and admin input held to the API's own rules (the spec's schemas)."""

from __future__ import annotations

import ipaddress
import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from nestauth import db, migrations
from nestauth.config import ConfigError, Settings
from nestauth.services import passwords

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


class StartupError(Exception):
    """A reason not to go on, in one line for the operator."""


def check_listen_address(settings: Settings, host: str) -> None:
    """Admin session cookies without Secure would cross the network in clear; test-cost
    password hashes must never guard a reachable server."""
    if _is_loopback(host):
        return
    if settings.password_hash_profile != passwords.DEFAULT_PROFILE:
        raise ConfigError(
            "NESTAUTH_PASSWORD_HASH_PROFILE", "the test profile serves on loopback addresses only"
        )
    if settings.cookie_secure:
        return
    raise StartupError(
        f"refusing to serve on {host} with NESTAUTH_COOKIE_SECURE=false: session cookies "
        "would cross the network in clear. Serve on 127.0.0.1, or set "
        "NESTAUTH_COOKIE_SECURE=true (browsers accept Secure cookies from http://localhost)"
    )


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may resolve to any interface


def private_sqlite_file(database_url: str) -> None:
    """The database file (and so its -wal and -shm files, which SQLite creates with the
    database's mode) readable by the owner only, in a directory of the owner only."""
    database = db.async_url(database_url).database
    if not db.is_sqlite(database_url) or not database or database == ":memory:":
        return
    path = Path(database)
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True)
    # Never open an existing file: closing any descriptor of a database drops every POSIX lock
    # this process holds on it, SQLite's included, and corrupts it under concurrent use
    # (sqlite.org/howtocorrupt.html, 2.2). A file that does not exist yet is no one's.
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass
    for companion in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if companion.exists() and stat.S_IMODE(companion.stat().st_mode) & 0o077:
            companion.chmod(0o600)  # made by an earlier release with the umask's mode


def check_migrated(settings: Settings) -> None:
    """One line instead of a failing first request (or a traceback) on an old schema."""
    url = settings.database_url
    heads = set(ScriptDirectory.from_config(migrations.alembic_config(url)).get_heads())
    timeout = settings.db_connect_timeout_seconds
    connect_args = {} if db.is_sqlite(url) else {"connect_timeout": timeout}
    engine = sa.create_engine(
        db.sync_url(url), poolclass=sa.NullPool, connect_args=connect_args, hide_parameters=True
    )
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
    finally:
        engine.dispose()
    if current != heads:
        at = ", ".join(sorted(current)) or "no schema"
        raise StartupError(
            f"the database is not migrated (at {at}, this release needs "
            f"{', '.join(sorted(heads))}): run `nestauth db upgrade` first"
        )


@lru_cache(maxsize=1)
def _admin_validator() -> Draft202012Validator:
    from nestauth.app import load_spec

    spec = load_spec()
    schema = {"$ref": "#/components/schemas/CreateDashboardAdminDto"}
    return Draft202012Validator({**schema, "components": spec["components"]})


def invalid_admin_input(fields: dict[str, Any]) -> str | None:
    """What POST /auth/admin/admins would refuse in these fields, without echoing a value
    (the password must never reach a terminal or a log)."""
    error = best_match(_admin_validator().iter_errors(fields))
    if error is None:
        return None
    name = str(error.path[0]) if error.path else "input"
    rules = _admin_validator().schema["components"]["schemas"]["CreateDashboardAdminDto"]
    rule = rules["properties"].get(name, {})
    if name == "email":
        return "invalid --email: not an email address the API accepts"
    if "minLength" in rule:
        return (
            f"invalid {name}: must have {rule['minLength']} to {rule['maxLength']} characters, "
            "no NUL character"
        )
    return f"invalid {name}"
