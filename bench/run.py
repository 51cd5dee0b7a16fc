"""`make bench`: nestauth under load from wrk, beside a bare Starlette floor.

python -m bench.run [--postgresql postgresql://...] [--seconds 10] [--connections 16]
                    [--small-users 1000] [--large-users 1000000] [--smoke]
Prints the table and writes it as JSON to bench/results/. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
from sqlalchemy.engine import make_url

from bench import cases, concurrency, flood, lists, report, seed
from bench.harness import BENCH_DIR, Load, Server, require_wrk, run_wrk
from nestauth import db, migrations
from nestauth.config import Settings
from nestauth.services.secrets import SecretBox

MAX_RATE = 4_000  # requests/s no case reaches here: pools of unique requests are sized by it
WARMUP_SECONDS = 1
BENCH_DATABASE = "nestauth_bench"
BENCH_SECRET_KEY = "bench-only-server-key-0123456789abcdefghij"  # a fresh database per run
SETTLE_SECONDS = 3
# wrk's connections all come from one address; the per-address cap on password checks in
# flight, and the queue's bound, would refuse most of admin-login's. Twice the connections:
# the requests of a run's last second still hash when the next run starts (wrk closes its
# connections, the server finishes their work). The flood case runs with the defaults.
HASH_CAP, HASH_QUEUE = "NESTAUTH_HASH_MAX_IN_FLIGHT_PER_CLIENT", "NESTAUTH_HASH_QUEUE_SIZE"


class Run:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args, self.workdir = args, workdir
        self.env = {
            **os.environ, "NESTAUTH_VAR_DIR": str(workdir / "var"),
            "NESTAUTH_COOKIE_SECURE": "false", "PYTHONPATH": str(BENCH_DIR.parent),
            HASH_CAP: str(2 * args.connections), HASH_QUEUE: str(2 * args.connections),
        }  # fmt: skip
        if args.database:
            self.env["NESTAUTH_DATABASE_URL"] = args.database
            self.env.setdefault("NESTAUTH_SECRET_KEY", BENCH_SECRET_KEY)  # required off SQLite
        self.settings = Settings.from_env(self.env)
        self.env["NESTAUTH_DATABASE_URL"] = self.settings.database_url
        self.engine = db.create_engine(self.settings.database_url, self.settings)
        self.loader = seed.Loader(self.engine, SecretBox.for_settings(self.settings))
        self.loop = asyncio.Runner()  # one loop for the run: pooled connections belong to it
        self.results: list[dict[str, object]] = []
        self.memory: dict[str, float] = {}
        self.phase = "main"

    def server(self, name: str, command: list[str], env: dict[str, str] | None = None) -> Server:
        return Server(name, command, env or self.env, self.args.port,
                      self.workdir / f"{name}.log")  # fmt: skip

    def nestauth(self, env: dict[str, str] | None = None, workers: int = 1) -> Server:
        return self.server("nestauth", [sys.executable, "-m", "nestauth.cli", "serve",
                                        "--port", str(self.args.port),
                                        "--workers", str(workers)], env)  # fmt: skip

    def floor(self) -> Server:
        return self.server("floor", [sys.executable, "-m", "bench.floor", str(self.args.port)])

    def measure(
        self, server: Server, case: str, load: Load, warmup: Load | None = None,
        connections: int | None = None,
    ) -> dict:  # fmt: skip
        connections = connections or self.args.connections
        run_wrk(server.base_url, warmup or load, seconds=WARMUP_SECONDS,
                connections=connections, workdir=self.workdir)  # fmt: skip
        figures = run_wrk(server.base_url, load, seconds=self.args.seconds,
                          connections=connections, workdir=self.workdir)  # fmt: skip
        result = {"case": case, "server": server.name, "phase": self.phase, "users": self.users,
                  **figures, "server_rss_mb": round(server.rss_mb(), 1)}  # fmt: skip
        self.results.append(result)
        print(report.progress_line(result), flush=True)
        return result

    @property
    def users(self) -> int:
        return self.loader.made

    def pool_size(self) -> int:
        return int(self.args.seconds * MAX_RATE)


async def prepare(run: Run) -> seed.BulkUser:
    migrations.upgrade(run.settings.database_url)
    for email in [cases.ADMIN_EMAIL] + [
        cases.login_admin_email(n) for n in range(cases.LOGIN_ADMINS)
    ]:
        await seed.create_admin(run.engine, email, cases.ADMIN_PASSWORD)
    (target,) = await run.loader.users(1, devices=5, sessions=5)
    await run.loader.users(run.args.small_users - 1)
    return target


def admin_token(server: Server) -> str:
    response = httpx.post(
        server.base_url + "/auth/admin/login",
        json={"email": cases.ADMIN_EMAIL, "password": cases.ADMIN_PASSWORD},
        timeout=30,
    )
    response.raise_for_status()
    return str(response.json()["token"])


def nestauth_cases(run: Run, target: seed.BulkUser) -> None:
    with run.nestauth() as server:
        token = admin_token(server)
        run.measure(server, "seed-op-404", cases.seed_not_found(target, token))
        run.measure(server, "get-user", cases.get_user(target, token))
        measure_deletes(run, server, token)
        warm, pool = (run.loop.run(run.loader.users(n, mfa_challenges=True))
                      for n in (200, run.pool_size()))  # fmt: skip
        run.measure(server, "mfa-verify", cases.mfa_verify(pool), cases.mfa_verify(warm))
        run.measure(server, "admin-login", cases.admin_login())
        run.memory["nestauth"] = settled_rss(server)
        concurrency.measure_mixed(run, server, token, target)
    with run.nestauth(workers=2) as server:  # SQLite reads take no write lock: in parallel
        run.measure(server, "get-user-2w", cases.get_user(target, admin_token(server)))


def flood_case(run: Run) -> None:
    """A legitimate login from 127.0.0.2 under a 400-connection bad-login flood from
    127.0.0.1, on a server with the default limits."""
    (user,) = run.loop.run(run.loader.users(1, devices=0))
    defaults = {
        name: value for name, value in run.env.items() if name not in (HASH_CAP, HASH_QUEUE)
    }
    with run.nestauth(defaults) as server:
        result = flood.measure(server, user.email, seed.USER_PASSWORD,
                               seconds=run.args.seconds, workdir=run.workdir)  # fmt: skip
        result.update(phase=run.phase, users=run.users, server_rss_mb=round(server.rss_mb(), 1))
    run.results.append(result)
    print(report.progress_line(result), flush=True)


def settled_rss(server: Server) -> float:
    """RSS once the requests wrk left in flight are done (logins queue behind argon2)."""
    time.sleep(SETTLE_SECONDS)
    return server.rss_mb()


def measure_deletes(run: Run, server: Server, token: str) -> None:
    """Each request removes a device of its own; the database must agree with the 200s.
    wrk stops with up to one request per connection in flight, which the server may
    still complete: those removals have no counted 200."""
    owners = (run.pool_size() + 4) // 5
    warm = run.loop.run(run.loader.users(40, devices=5))
    pool = run.loop.run(run.loader.users(owners, devices=5))
    result = run.measure(server, "seed-op-delete", cases.seed_delete(pool, token),
                         cases.seed_delete(warm, token))  # fmt: skip
    device_ids = [d for user in pool for d in user.device_ids]
    left = run.loop.run(seed.count_devices(run.engine, device_ids))
    removed, answered = len(device_ids) - left, result["statuses"].get("200", 0)
    result["devices_removed"] = removed
    if not answered <= removed <= answered + run.args.connections:
        result["errors"] = int(result["errors"]) + abs(removed - answered)
        print(f"  {removed} devices removed for {answered} answers 200", file=sys.stderr)


def floor_cases(run: Run, target: seed.BulkUser) -> None:
    run.phase = "floor"
    with run.nestauth() as login_server:  # the floor has no login route: sign in here
        token = admin_token(login_server)
    with run.floor() as server:
        run.measure(server, "seed-op-404", cases.seed_not_found(target, token))
        measure_deletes(run, server, token)
        run.memory["floor"] = settled_rss(server)


def scaling_cases(run: Run, target: seed.BulkUser) -> None:
    missing = run.args.large_users - run.loop.run(seed.count_users(run.engine))
    started = time.monotonic()
    run.loop.run(run.loader.users(max(0, missing), keep=False))
    print(f"loaded {missing} users in {time.monotonic() - started:.0f} s", flush=True)
    run.phase = "large"
    with run.nestauth() as server:
        token = admin_token(server)
        run.measure(server, "seed-op-404", cases.seed_not_found(target, token))
        run.measure(server, "get-user", cases.get_user(target, token))
        list_cases(run, server, token)
        run.memory["nestauth-large"] = settled_rss(server)
        concurrency.measure_mixed(run, server, token, target)


def list_cases(run: Run, server: Server, token: str) -> None:
    """Every admin list and the user search, with as many audit events as users (loaded
    while the server idles)."""
    missing = run.args.large_events - run.loop.run(lists.count_events(run.engine))
    started = time.monotonic()
    run.loop.run(lists.load_events(run.engine, max(0, missing)))
    print(f"loaded {missing} audit events in {time.monotonic() - started:.0f} s", flush=True)
    for name, load in run.loop.run(lists.cases(run.engine, cases.bearer(token))).items():
        run.measure(server, name, load)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    require_wrk()
    with tempfile.TemporaryDirectory(prefix="nestauth-bench-") as tmp:
        if args.postgresql:
            args.database = fresh_postgresql(args.postgresql)
        run = Run(args, Path(tmp))
        target = run.loop.run(prepare(run))
        nestauth_cases(run, target)
        flood_case(run)
        floor_cases(run, target)
        if args.large_users > args.small_users:
            scaling_cases(run, target)
        run.loop.run(run.engine.dispose())
        run.loop.close()
        summary = report.summarise(run.results, run.memory, vars(args))
    print(report.render(summary))
    out = write_results(summary, args)
    print(f"\nwritten: {out}")
    return 0


def fresh_postgresql(server_url: str) -> str:
    """A benchmark starts empty: database BENCH_DATABASE on that server is made anew."""
    url = make_url(server_url)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False),
                         autocommit=True) as connection:  # fmt: skip
        connection.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE}")
        connection.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    return url.set(database=BENCH_DATABASE).render_as_string(False)


def write_results(summary: dict[str, object], args: argparse.Namespace) -> Path:
    results = BENCH_DIR / "results"
    results.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    kind = "smoke" if args.smoke else ("postgresql" if args.postgresql else "sqlite")
    path = results / f"{stamp}-{kind}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument(
        "--postgresql", metavar="URL",
        help=f"run on this PostgreSQL server, in a database {BENCH_DATABASE} made anew",
    )  # fmt: skip
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--small-users", type=int, default=1_000)
    parser.add_argument("--large-users", type=int, default=1_000_000)
    parser.add_argument("--large-events", type=int, default=1_000_000)
    parser.add_argument("--port", type=int, default=8899)
    parser.add_argument(
        "--smoke", action="store_true", help="2 s a case, 30,000 users and audit events at most"
    )
    args = parser.parse_args(argv)
    args.database = None
    if args.smoke:
        args.seconds, args.large_users = 2, min(args.large_users, 30_000)
        args.large_events = min(args.large_events, 30_000)
    return args


if __name__ == "__main__":
    sys.exit(main())
