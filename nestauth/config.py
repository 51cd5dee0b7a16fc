"""One typed Settings object, read from the environment (NESTAUTH_*)."""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_DISTINCT_CHARACTERS = 8  # refuses "aaaa…", "abababab…", a key of spaces


class ConfigError(Exception):
    """A setting is missing or malformed; the message names it in one line."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


@dataclass(frozen=True)
class Settings:
    database_url: str
    secret_key: str
    admin_secret: str | None = None
    cookie_secure: bool = True
    mfa_required: bool = False
    admin_session_idle_seconds: int = 30 * 60
    admin_session_absolute_seconds: int = 12 * 60 * 60
    csrf_allowed_origins: tuple[str, ...] = ()
    admin_login_max_failures: int = 5
    admin_login_lock_seconds: int = 15 * 60
    max_body_bytes: int = 64 * 1024
    access_token_seconds: int = 15 * 60
    refresh_token_seconds: int = 30 * 24 * 60 * 60
    mfa_token_seconds: int = 5 * 60
    user_login_max_failures: int = 5
    user_login_lock_seconds: int = 15 * 60
    mfa_max_failures: int = 5
    mfa_lock_seconds: int = 15 * 60
    totp_issuer: str = "nestauth"
    db_connect_timeout_seconds: int = 5
    db_statement_timeout_ms: int = 10_000
    db_pool_size: int = 5
    db_pool_timeout_seconds: int = 5
    shutdown_timeout_seconds: int = 10
    validate_responses: bool = False
    var_dir: Path = field(default=Path("var"))
    previous_secret_keys: tuple[str, ...] = ()
    admin_signup_max_failures: int = 5
    admin_signup_max_failures_total: int = 20
    admin_signup_lock_seconds: int = 15 * 60

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        var_dir = Path(env.text("NESTAUTH_VAR_DIR", "var"))
        database_url = env.text("NESTAUTH_DATABASE_URL", f"sqlite:///{var_dir}/nestauth.db")
        return cls(
            database_url=database_url,
            secret_key=env.secret_key(var_dir, generate=_is_sqlite(database_url)),
            admin_secret=env.admin_secret("NESTAUTH_ADMIN_SECRET"),
            cookie_secure=env.boolean("NESTAUTH_COOKIE_SECURE", True),
            mfa_required=env.boolean("NESTAUTH_MFA_REQUIRED", False),
            admin_session_idle_seconds=env.positive_int(
                "NESTAUTH_ADMIN_SESSION_IDLE_SECONDS", 1800
            ),
            admin_session_absolute_seconds=env.positive_int(
                "NESTAUTH_ADMIN_SESSION_ABSOLUTE_SECONDS", 43200
            ),
            csrf_allowed_origins=env.origins("NESTAUTH_CSRF_ALLOWED_ORIGINS"),
            admin_login_max_failures=env.positive_int("NESTAUTH_ADMIN_LOGIN_MAX_FAILURES", 5),
            admin_login_lock_seconds=env.positive_int("NESTAUTH_ADMIN_LOGIN_LOCK_SECONDS", 900),
            max_body_bytes=env.positive_int("NESTAUTH_MAX_BODY_BYTES", 65536),
            access_token_seconds=env.positive_int("NESTAUTH_ACCESS_TOKEN_SECONDS", 900),
            refresh_token_seconds=env.positive_int("NESTAUTH_REFRESH_TOKEN_SECONDS", 2592000),
            mfa_token_seconds=env.positive_int("NESTAUTH_MFA_TOKEN_SECONDS", 300),
            user_login_max_failures=env.positive_int("NESTAUTH_USER_LOGIN_MAX_FAILURES", 5),
            user_login_lock_seconds=env.positive_int("NESTAUTH_USER_LOGIN_LOCK_SECONDS", 900),
            mfa_max_failures=env.positive_int("NESTAUTH_MFA_MAX_FAILURES", 5),
            mfa_lock_seconds=env.positive_int("NESTAUTH_MFA_LOCK_SECONDS", 900),
            totp_issuer=env.text("NESTAUTH_TOTP_ISSUER", "nestauth") or "nestauth",
            db_connect_timeout_seconds=env.positive_int("NESTAUTH_DB_CONNECT_TIMEOUT_SECONDS", 5),
            db_statement_timeout_ms=env.positive_int("NESTAUTH_DB_STATEMENT_TIMEOUT_MS", 10000),
            db_pool_size=env.positive_int("NESTAUTH_DB_POOL_SIZE", 5),
            db_pool_timeout_seconds=env.positive_int("NESTAUTH_DB_POOL_TIMEOUT_SECONDS", 5),
            shutdown_timeout_seconds=env.positive_int("NESTAUTH_SHUTDOWN_TIMEOUT_SECONDS", 10),
            validate_responses=env.boolean("NESTAUTH_VALIDATE_RESPONSES", False),
            var_dir=var_dir,
            previous_secret_keys=env.previous_keys("NESTAUTH_PREVIOUS_SECRET_KEYS"),
            admin_signup_max_failures=env.positive_int("NESTAUTH_ADMIN_SIGNUP_MAX_FAILURES", 5),
            admin_signup_max_failures_total=env.positive_int(
                "NESTAUTH_ADMIN_SIGNUP_MAX_FAILURES_TOTAL", 20
            ),
            admin_signup_lock_seconds=env.positive_int("NESTAUTH_ADMIN_SIGNUP_LOCK_SECONDS", 900),
        )


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


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class _Env:
    """Typed readers over an environment mapping; each failure names its variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        return self._environ.get(name, default).strip()

    def boolean(self, name: str, default: bool) -> bool:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        value = raw.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(name, f"expected true or false, got {raw!r}")

    def positive_int(self, name: str, default: int) -> int:
        raw = self._environ.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected a positive integer, got {raw!r}") from None
        if value <= 0:
            raise ConfigError(name, f"expected a positive integer, got {raw!r}")
        return value

    def origins(self, name: str) -> tuple[str, ...]:
        raw = self._environ.get(name, "")
        origins = tuple(o.strip().rstrip("/") for o in raw.split(",") if o.strip())
        for origin in origins:
            if not origin.startswith(("http://", "https://")):
                raise ConfigError(name, f"origin {origin!r} must start with http:// or https://")
        return origins

    def secret_key(self, var_dir: Path, *, generate: bool) -> str:
        """Empty when unset on a shared database: each process would otherwise make its own
        key; whatever needs a key then refuses to start (services.keys.Keyring.of)."""
        name = "NESTAUTH_SECRET_KEY"
        raw = self._environ.get(name)
        if raw is not None:
            return check_secret(name, raw)
        return _load_or_create_key_file(var_dir / "secret.key") if generate else ""

    def previous_keys(self, name: str) -> tuple[str, ...]:
        keys = tuple(k.strip() for k in self._environ.get(name, "").split(",") if k.strip())
        for number, key in enumerate(keys, start=1):
            check_secret(name, key, f"key {number}")
        return keys

    def admin_secret(self, name: str) -> str | None:
        raw = self.text(name, "")
        return check_secret(name, raw) if raw else None


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
