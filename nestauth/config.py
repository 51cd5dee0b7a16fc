"""One typed Settings object, read from the environment (NESTAUTH_*)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_DISTINCT_CHARACTERS = 8  # refuses "aaaa…", "abababab…", a key of spaces


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


# Parsers take the variable's name (for the error) and its raw, non-blank value.
def _text(_name: str, raw: str) -> str:
    return raw.strip()


def _boolean(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(name, f"expected true or false, got {raw!r}")


def _positive_int(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected a positive integer, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(name, f"expected a positive integer, got {raw!r}")
    return value


def _origins(name: str, raw: str) -> tuple[str, ...]:
    origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
    for origin in origins:
        if not origin.startswith(("http://", "https://")):
            raise ConfigError(name, f"origin {origin!r} must start with http:// or https://")
    return origins


def _networks(name: str, raw: str) -> tuple[str, ...]:
    """IP addresses and CIDR networks, normalised: uvicorn would take a malformed entry
    (or `10.0.0.1/8`, host bits set) for a literal host name and silently never match."""
    try:
        return tuple(
            str(ipaddress.ip_network(entry.strip(), strict=False))
            for entry in raw.split(",")
            if entry.strip()
        )
    except ValueError as exc:
        raise ConfigError(name, f"expected IP addresses or CIDR networks: {exc}") from None


def _one_of(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip()
        if value not in allowed:
            raise ConfigError(name, f"expected one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def _secret(name: str, raw: str) -> str:
    return check_secret(name, raw)


def _previous_keys(name: str, raw: str) -> tuple[str, ...]:
    keys = tuple(k.strip() for k in raw.split(",") if k.strip())
    for number, key in enumerate(keys, start=1):
        check_secret(name, key, f"key {number}")
    return keys


def _path(_name: str, raw: str) -> Path:
    return Path(raw.strip())


def env(name: str, default: Any, parse: Callable[[str, str], Any] = _text) -> Any:
    """A setting read from the variable `name`: its default is written here, once; an
    absent or blank variable means the default."""
    return field(default=default, metadata={"env": name, "parse": parse})


@dataclass(frozen=True)
class Settings:
    # Both defaults depend on var_dir: from_env reads them itself.
    database_url: str
    secret_key: str
    previous_secret_keys: tuple[str, ...] = env("NESTAUTH_PREVIOUS_SECRET_KEYS", (), _previous_keys)
    admin_secret: str | None = env("NESTAUTH_ADMIN_SECRET", None, _secret)
    admin_signup_max_failures: int = env("NESTAUTH_ADMIN_SIGNUP_MAX_FAILURES", 5, _positive_int)
    admin_signup_max_failures_total: int = env(
        "NESTAUTH_ADMIN_SIGNUP_MAX_FAILURES_TOTAL", 20, _positive_int
    )
    admin_signup_lock_seconds: int = env(
        "NESTAUTH_ADMIN_SIGNUP_LOCK_SECONDS", 15 * 60, _positive_int
    )
    cookie_secure: bool = env("NESTAUTH_COOKIE_SECURE", True, _boolean)
    mfa_required: bool = env("NESTAUTH_MFA_REQUIRED", False, _boolean)
    admin_session_idle_seconds: int = env(
        "NESTAUTH_ADMIN_SESSION_IDLE_SECONDS", 30 * 60, _positive_int
    )
    admin_session_absolute_seconds: int = env(
        "NESTAUTH_ADMIN_SESSION_ABSOLUTE_SECONDS", 12 * 60 * 60, _positive_int
    )
    csrf_allowed_origins: tuple[str, ...] = env("NESTAUTH_CSRF_ALLOWED_ORIGINS", (), _origins)
    trusted_proxies: tuple[str, ...] = env("NESTAUTH_TRUSTED_PROXIES", (), _networks)
    admin_login_max_failures: int = env("NESTAUTH_ADMIN_LOGIN_MAX_FAILURES", 5, _positive_int)
    admin_login_lock_seconds: int = env("NESTAUTH_ADMIN_LOGIN_LOCK_SECONDS", 15 * 60, _positive_int)
    max_body_bytes: int = env("NESTAUTH_MAX_BODY_BYTES", 64 * 1024, _positive_int)
    access_token_seconds: int = env("NESTAUTH_ACCESS_TOKEN_SECONDS", 15 * 60, _positive_int)
    refresh_token_seconds: int = env(
        "NESTAUTH_REFRESH_TOKEN_SECONDS", 30 * 24 * 60 * 60, _positive_int
    )
    mfa_token_seconds: int = env("NESTAUTH_MFA_TOKEN_SECONDS", 5 * 60, _positive_int)
    max_sessions_per_user: int = env("NESTAUTH_MAX_SESSIONS_PER_USER", 50, _positive_int)
    user_login_max_failures: int = env("NESTAUTH_USER_LOGIN_MAX_FAILURES", 5, _positive_int)
    user_login_lock_seconds: int = env("NESTAUTH_USER_LOGIN_LOCK_SECONDS", 15 * 60, _positive_int)
    mfa_max_failures: int = env("NESTAUTH_MFA_MAX_FAILURES", 5, _positive_int)
    mfa_lock_seconds: int = env("NESTAUTH_MFA_LOCK_SECONDS", 15 * 60, _positive_int)
    totp_issuer: str = env("NESTAUTH_TOTP_ISSUER", "nestauth")
    totp_setup_seconds: int = env("NESTAUTH_TOTP_SETUP_SECONDS", 10 * 60, _positive_int)
    reauth_window_seconds: int = env("NESTAUTH_REAUTH_WINDOW_SECONDS", 5 * 60, _positive_int)
    db_connect_timeout_seconds: int = env("NESTAUTH_DB_CONNECT_TIMEOUT_SECONDS", 5, _positive_int)
    db_statement_timeout_ms: int = env("NESTAUTH_DB_STATEMENT_TIMEOUT_MS", 10_000, _positive_int)
    db_pool_size: int = env("NESTAUTH_DB_POOL_SIZE", 5, _positive_int)
    db_pool_timeout_seconds: int = env("NESTAUTH_DB_POOL_TIMEOUT_SECONDS", 5, _positive_int)
    shutdown_timeout_seconds: int = env("NESTAUTH_SHUTDOWN_TIMEOUT_SECONDS", 10, _positive_int)
    validate_responses: bool = env("NESTAUTH_VALIDATE_RESPONSES", False, _boolean)
    password_hash_profile: str = env(
        "NESTAUTH_PASSWORD_HASH_PROFILE", "default", _one_of("default", "test")
    )
    http_header_timeout_seconds: int = env(
        "NESTAUTH_HTTP_HEADER_TIMEOUT_SECONDS", 10, _positive_int
    )
    http_keep_alive_seconds: int = env("NESTAUTH_HTTP_KEEP_ALIVE_SECONDS", 5, _positive_int)
    http_max_concurrency: int = env("NESTAUTH_HTTP_MAX_CONCURRENCY", 1000, _positive_int)
    http_max_header_bytes: int = env("NESTAUTH_HTTP_MAX_HEADER_BYTES", 16 * 1024, _positive_int)
    # Per worker process; addresses in NESTAUTH_TRUSTED_PROXIES are not capped.
    http_max_connections_per_client: int = env(
        "NESTAUTH_HTTP_MAX_CONNECTIONS_PER_CLIENT", 64, _positive_int
    )
    prune_interval_seconds: int = env("NESTAUTH_PRUNE_INTERVAL_SECONDS", 15 * 60, _positive_int)
    prune_grace_seconds: int = env("NESTAUTH_PRUNE_GRACE_SECONDS", 24 * 60 * 60, _positive_int)
    # None: audit events are kept forever.
    audit_retention_days: int | None = env("NESTAUTH_AUDIT_RETENTION_DAYS", None, _positive_int)
    metrics_token: str | None = env("NESTAUTH_METRICS_TOKEN", None)  # None: /metrics is a 404
    # uvicorn's own choice (uvloop when installed) until the benchmark weighs the flood case
    # against the others: asyncio measured ~9% fewer health requests/s, uvloop starved new
    # connections under a 400-connection flood (bench/README.md).
    event_loop: str = env("NESTAUTH_EVENT_LOOP", "auto", _one_of("auto", "asyncio", "uvloop"))
    hash_queue_size: int = env("NESTAUTH_HASH_QUEUE_SIZE", 16, _positive_int)
    hash_max_in_flight_per_client: int = env(
        "NESTAUTH_HASH_MAX_IN_FLIGHT_PER_CLIENT", 2, _positive_int
    )
    ip_max_failures: int = env("NESTAUTH_IP_MAX_FAILURES", 50, _positive_int)
    account_slow_after_failures: int = env(
        "NESTAUTH_ACCOUNT_SLOW_AFTER_FAILURES", 10, _positive_int
    )
    account_slow_max_seconds: int = env("NESTAUTH_ACCOUNT_SLOW_MAX_SECONDS", 60, _positive_int)
    signup_max_per_ip: int = env("NESTAUTH_SIGNUP_MAX_PER_IP", 20, _positive_int)
    signup_max_per_email_ip: int = env("NESTAUTH_SIGNUP_MAX_PER_EMAIL_IP", 5, _positive_int)
    signup_window_seconds: int = env("NESTAUTH_SIGNUP_WINDOW_SECONDS", 60 * 60, _positive_int)
    var_dir: Path = env("NESTAUTH_VAR_DIR", Path("var"), _path)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values = {
            spec.name: _read(environ, spec.metadata["env"], spec.default, spec.metadata["parse"])
            for spec in fields(cls)
            if "env" in spec.metadata
        }
        var_dir = values["var_dir"]
        database_url = _read(
            environ, "NESTAUTH_DATABASE_URL", f"sqlite:///{var_dir}/nestauth.db", _text
        )
        return cls(
            database_url=database_url,
            secret_key=_secret_key(environ, var_dir, generate=_is_sqlite(database_url)),
            **values,
        )


def _read(
    environ: Mapping[str, str], name: str, default: Any, parse: Callable[[str, str], Any]
) -> Any:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return parse(name, raw)


def _secret_key(environ: Mapping[str, str], var_dir: Path, *, generate: bool) -> str:
    """Empty when unset on a shared database: each process would otherwise make its own
    key; whatever needs a key then refuses to start (services.keys.Keyring.of)."""
    name = "NESTAUTH_SECRET_KEY"
    raw = environ.get(name)
    if raw is not None:
        return check_secret(name, raw)
    return _load_or_create_key_file(var_dir / "secret.key") if generate else ""


def _is_sqlite(database_url: str) -> bool:
    try:
        return make_url(database_url).get_backend_name() == "sqlite"
    except ArgumentError:
        raise ConfigError("NESTAUTH_DATABASE_URL", "not a database URL") from None


def check_secret(name: str, value: str, what: str = "") -> str:
    """Long and varied enough to resist guessing; the message never shows the value."""
    subject = f"{what} " if what else ""
    if len(value) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError(name, f"{subject}must be at least {MIN_SECRET_KEY_LENGTH} characters")
    if len({c for c in value if not c.isspace()}) < MIN_SECRET_DISTINCT_CHARACTERS:
        raise ConfigError(
            name,
            f"{subject}is too uniform: use at least {MIN_SECRET_DISTINCT_CHARACTERS} different "
            "non-blank characters (generate one: python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))')",
        )
    return value


def _load_or_create_key_file(path: Path) -> str:
    """The embedded default: a key generated on first run, readable by the owner only.

    Several processes may start at once (`serve --workers N`): the key is written to a
    private temporary file and linked into place atomically; a loser reads the winner's.
    """
    try:
        if not path.exists():
            _create_key_file(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        key = path.read_text().strip()
    except OSError as exc:
        raise ConfigError("NESTAUTH_VAR_DIR", f"cannot use {path}: {exc.strerror}") from None
    if mode & 0o077:
        raise ConfigError(
            "NESTAUTH_SECRET_KEY",
            f"key file {path} is readable by others (mode {mode:o}): chmod 600 {path}",
        )
    return check_secret("NESTAUTH_SECRET_KEY", key, f"key file {path}")


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(temporary)
