"""`nestauth serve | db upgrade | db prune | admin create | user create | keys reseal`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import warnings
from collections.abc import Sequence

# Connexion imports Starlette's test client, which warns about httpx on every start.
warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")

from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from nestauth import cli_support, db, http_limits, migrations  # noqa: E402
from nestauth.cli_support import StartupError  # noqa: E402
from nestauth.config import ConfigError, Settings  # noqa: E402
from nestauth.errors import ApiError  # noqa: E402
from nestauth.models import ADMIN_ROLES, utcnow  # noqa: E402
from nestauth.services import (  # noqa: E402
    admins,
    housekeeping,
    keys,
    passwords,
    reseal,
    totp_devices,
    users,
)
from nestauth.services.secrets import SecretBox  # noqa: E402


def main(argv: Sequence[str] | None = None) -> int:
    """Every failure an operator can cause is one line on stderr, never a traceback (which
    could show SQL parameters such as a password hash)."""
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        passwords.use_profile(settings.password_hash_profile)
        cli_support.private_sqlite_file(settings.database_url)
        return int(args.run(settings, args) or 0)
    except (ConfigError, StartupError, ValueError) as exc:
        return _fail(str(exc), 2)
    except OSError as exc:
        return _fail(f"cannot use {exc.filename or 'a file'}: {exc.strerror}", 2)
    except SQLAlchemyError as exc:
        return _fail(f"database: {_first_line(getattr(exc, 'orig', None) or exc)}", 1)


def _fail(message: str, status: int) -> int:
    print(f"nestauth: {message}", file=sys.stderr)
    return status


def _first_line(error: object) -> str:
    """The driver's own message, first line: PostgreSQL's DETAIL line can quote a whole row."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


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

    key_commands = commands.add_parser("keys", help="server keys").add_subparsers(required=True)
    key_commands.add_parser(
        "reseal", help="re-encrypt every TOTP secret under the current NESTAUTH_SECRET_KEY"
    ).set_defaults(run=_reseal)
    return parser


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    keys.Keyring.of(settings)  # on a shared database each process would make its own key
    cli_support.check_listen_address(settings, args.host)
    if db.is_sqlite(db.async_url(settings.database_url)):
        migrations.upgrade(settings.database_url)  # the embedded default is ready on first run
    else:
        cli_support.check_migrated(settings)
    uvicorn.run(
        "nestauth.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        # SIGTERM: stop accepting, let in-flight requests finish, then exit within this bound.
        timeout_graceful_shutdown=settings.shutdown_timeout_seconds,
        loop=settings.event_loop,
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
    fields = {"email": args.email, "password": password, "role": args.role}
    problem = cli_support.invalid_admin_input(
        {**fields, "name": args.name} if args.name is not None else fields
    )
    if problem:
        return _fail(problem, 2)
    cli_support.check_migrated(settings)
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
    box = SecretBox.for_settings(settings)
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


def _reseal(settings: Settings, _args: argparse.Namespace) -> int:
    box = SecretBox.for_settings(settings)
    cli_support.check_migrated(settings)
    report = asyncio.run(_run_reseal(settings, box))
    print(f"resealed {report.resealed} of {report.checked} TOTP secrets under the current key")
    if report.unreadable:
        ids = ", ".join(str(device_id) for device_id in report.unreadable)
        return _fail(
            f"{len(report.unreadable)} TOTP secrets open under none of the configured keys "
            f"(devices {ids}); their users must enrol again",
            1,
        )
    return 0


async def _run_reseal(settings: Settings, box: SecretBox) -> reseal.ResealReport:
    engine = db.create_engine(settings.database_url, settings)
    try:
        return await reseal.reseal_totp_secrets(db.session_factory(engine), box)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
