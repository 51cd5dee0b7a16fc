"""`nestauth serve | db upgrade | db prune | admin create`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import json
import sys
import warnings
from collections.abc import Sequence

# Connexion imports Starlette's test client, which warns about httpx on every start.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from nestauth import db, http_limits, migrations  # noqa: E402
from nestauth.config import ConfigError, Settings  # noqa: E402
from nestauth.errors import ApiError  # noqa: E402
from nestauth.models import ADMIN_ROLES, utcnow  # noqa: E402
from nestauth.services import admins, housekeeping, passwords, totp_devices, users  # noqa: E402
from nestauth.services.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH  # noqa: E402
from nestauth.services.secrets import SecretBox  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        passwords.use_profile(settings.password_hash_profile)
        return int(args.run(settings, args) or 0)
    except (ConfigError, ValueError) as exc:
        print(f"nestauth: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nestauth", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.set_defaults(run=_serve)

    database = commands.add_parser("db", help="database schema").add_subparsers(required=True)
    database.add_parser("upgrade", help="apply migrations up to head").set_defaults(run=_upgrade)
    database.add_parser(
        "prune", help="delete expired sessions, MFA challenges, rate-limit buckets (counts)"
    ).set_defaults(run=_prune)

    admin = commands.add_parser("admin", help="console administrators").add_subparsers(
        required=True
    )
    create = admin.add_parser("create", help="create an admin (password from a prompt or stdin)")
    create.add_argument("--email", required=True)
    create.add_argument("--role", choices=ADMIN_ROLES, default="owner")
    create.add_argument("--name")
    create.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin"
    )
    create.set_defaults(run=_create_admin)

    user = commands.add_parser("user", help="end users").add_subparsers(required=True)
    new_user = user.add_parser(
        "create", help="create a user with enrolled TOTP devices (secrets are not shown)"
    )
    new_user.add_argument("--email", required=True)
    new_user.add_argument("--devices", type=int, default=1, help="verified TOTP devices to add")
    new_user.set_defaults(run=_create_user)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    if settings.password_hash_profile != passwords.DEFAULT_PROFILE and not _is_loopback(args.host):
        raise ConfigError(
            "NESTAUTH_PASSWORD_HASH_PROFILE", "the test profile serves on loopback addresses only"
        )
    if db.is_sqlite(db.async_url(settings.database_url)):
        migrations.upgrade(settings.database_url)  # the embedded default is ready on first run
    uvicorn.run(
        "nestauth.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        # SIGTERM: stop accepting, let in-flight requests finish, then exit within this bound.
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        # X-Forwarded-For/-Proto from NESTAUTH_TRUSTED_PROXIES only. Uvicorn's own default
        # trusts 127.0.0.1 (or FORWARDED_ALLOW_IPS): any local process could name any client.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies),
        **http_limits.uvicorn_options(settings),
        # nestauth.access writes one JSON line per request; uvicorn's own would repeat it.
        access_log=False,
        log_config=http_limits.log_config(),
    )
    return 0


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _prune(settings: Settings, _args: argparse.Namespace) -> int:
    report = asyncio.run(_run_prune(settings))
    for table, deleted in report.counts.items():
        print(f"{table}: {deleted}")
    if not report.complete:
        print("nestauth: another process is pruning; stopped early", file=sys.stderr)
        return 1
    return 0


async def _run_prune(settings: Settings) -> housekeeping.PruneReport:
    engine = db.create_engine(settings.database_url, settings)
    try:
        return await housekeeping.prune(db.session_factory(engine), settings, utcnow())
    finally:
        await engine.dispose()


def _upgrade(settings: Settings, _args: argparse.Namespace) -> int:
    migrations.upgrade(settings.database_url)
    print("database is at the latest revision")
    return 0


def _create_admin(settings: Settings, args: argparse.Namespace) -> int:
    password = _read_password(args.password_stdin)
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        print(
            f"nestauth: the password must have {MIN_PASSWORD_LENGTH} to "
            f"{MAX_PASSWORD_LENGTH} characters",
            file=sys.stderr,
        )
        return 2
    try:
        admin_id = asyncio.run(_insert_admin(settings, args, password))
    except ApiError as exc:
        print(f"nestauth: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    print(f"created {args.role} {args.email.strip().lower()} ({admin_id})")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise ValueError("the passwords do not match")
    return first


async def _insert_admin(settings: Settings, args: argparse.Namespace, password: str) -> str:
    engine = db.create_engine(settings.database_url, settings)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            admin = await admins.create_admin(
                session, email=args.email, password=password, role=args.role, name=args.name
            )
            return str(admin.id)
    finally:
        await engine.dispose()


def _create_user(settings: Settings, args: argparse.Namespace) -> int:
    try:
        created = asyncio.run(_insert_user(settings, args.email, max(0, args.devices)))
    except ApiError as exc:
        print(f"nestauth: {exc.message} ({exc.code})", file=sys.stderr)
        return 1
    print(json.dumps(created, indent=2))
    return 0


async def _insert_user(settings: Settings, email: str, devices: int) -> dict[str, object]:
    engine = db.create_engine(settings.database_url, settings)
    box = SecretBox(settings.secret_key)
    try:
        async with db.session_factory(engine)() as session, session.begin():
            user = await users.create_user(session, email=email)
            user.is_mfa_enabled = devices > 0
            added = [
                (await totp_devices.add_device(
                    session, box, user_id=user.id, device_name=f"Device {n}", verified=True
                ))[0]
                for n in range(1, devices + 1)
            ]  # fmt: skip
            return {
                "userId": str(user.id),
                "devices": [{"id": str(d.id), "deviceName": d.device_name} for d in added],
            }
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
