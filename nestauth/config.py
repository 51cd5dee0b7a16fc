"""One typed Settings object, read from the environment (NESTAUTH_*)."""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

MIN_SECRET_KEY_LENGTH = 32


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
    trusted_proxies: tuple[str, ...] = ()
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
    password_hash_profile: str = "default"  # noqa: S105 (a cost profile, not a password)
    http_header_timeout_seconds: int = 10
    http_keep_alive_seconds: int = 5
    http_max_concurrency: int = 1000
    http_max_header_bytes: int = 16 * 1024
    prune_interval_seconds: int = 15 * 60
    prune_grace_seconds: int = 24 * 60 * 60
    audit_retention_days: int | None = None  # None: audit events are kept forever
    metrics_token: str | None = None  # None: /metrics answers 404
    var_dir: Path = field(default=Path("var"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Env(os.environ if environ is None else environ)
        var_dir = Path(env.text("NESTAUTH_VAR_DIR", "var"))
        return cls(
            database_url=env.text("NESTAUTH_DATABASE_URL", f"sqlite:///{var_dir}/nestauth.db"),
            secret_key=env.secret_key(var_dir),
            admin_secret=env.text("NESTAUTH_ADMIN_SECRET", "") or None,
            cookie_secure=env.boolean("NESTAUTH_COOKIE_SECURE", True),
            mfa_required=env.boolean("NESTAUTH_MFA_REQUIRED", False),
            admin_session_idle_seconds=env.positive_int(
                "NESTAUTH_ADMIN_SESSION_IDLE_SECONDS", 1800
            ),
            admin_session_absolute_seconds=env.positive_int(
                "NESTAUTH_ADMIN_SESSION_ABSOLUTE_SECONDS", 43200
            ),
            csrf_allowed_origins=env.origins("NESTAUTH_CSRF_ALLOWED_ORIGINS"),
            trusted_proxies=env.networks("NESTAUTH_TRUSTED_PROXIES"),
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
            password_hash_profile=env.choice(
                "NESTAUTH_PASSWORD_HASH_PROFILE", "default", ("default", "test")
            ),
            http_header_timeout_seconds=env.positive_int(
                "NESTAUTH_HTTP_HEADER_TIMEOUT_SECONDS", 10
            ),
            http_keep_alive_seconds=env.positive_int("NESTAUTH_HTTP_KEEP_ALIVE_SECONDS", 5),
            http_max_concurrency=env.positive_int("NESTAUTH_HTTP_MAX_CONCURRENCY", 1000),
            http_max_header_bytes=env.positive_int("NESTAUTH_HTTP_MAX_HEADER_BYTES", 16384),
            prune_interval_seconds=env.positive_int("NESTAUTH_PRUNE_INTERVAL_SECONDS", 900),
            prune_grace_seconds=env.positive_int("NESTAUTH_PRUNE_GRACE_SECONDS", 86400),
            audit_retention_days=env.positive_int("NESTAUTH_AUDIT_RETENTION_DAYS", 0) or None,
            metrics_token=env.text("NESTAUTH_METRICS_TOKEN", "") or None,
            var_dir=var_dir,
        )


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

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self.text(name, default) or default
        if value not in allowed:
            raise ConfigError(name, f"expected one of {', '.join(allowed)}, got {value!r}")
        return value

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

    def networks(self, name: str) -> tuple[str, ...]:
        """IP addresses and CIDR networks, normalised: uvicorn would take a malformed entry
        (or `10.0.0.1/8`, host bits set) for a literal host name and silently never match."""
        raw = self._environ.get(name, "")
        try:
            return tuple(
                str(ipaddress.ip_network(entry.strip(), strict=False))
                for entry in raw.split(",")
                if entry.strip()
            )
        except ValueError as exc:
            raise ConfigError(name, f"expected IP addresses or CIDR networks: {exc}") from None

    def secret_key(self, var_dir: Path) -> str:
        name = "NESTAUTH_SECRET_KEY"
        raw = self._environ.get(name)
        if raw is not None:
            if len(raw) < MIN_SECRET_KEY_LENGTH:
                raise ConfigError(name, f"must be at least {MIN_SECRET_KEY_LENGTH} characters")
            return raw
        return _load_or_create_key_file(var_dir / "secret.key")


def _load_or_create_key_file(path: Path) -> str:
    """The embedded default: a key generated on first run, readable by the owner only.

    Several processes may start at once (`serve --workers N`): the key is written to a
    private temporary file and linked into place atomically; a loser reads the winner's.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".secret-")  # mode 0600
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(48))
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise ConfigError("NESTAUTH_SECRET_KEY", f"key file {path} is too short")
    return key
