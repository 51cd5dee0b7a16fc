"""Issue 11's cases: reads with two workers, and heavy lists mixed with the seed operation
and health (nothing may stall unrelated requests)."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench import cases
from bench.harness import Load, Server, run_wrk
from bench.seed import BulkUser
from nestauth.services.pagination import MAX_DEPTH

HEAVY_CONNECTIONS = 4  # the "4 clients" on the most expensive lists
LIGHT_CONNECTIONS = 4  # the unrelated requests measured meanwhile
MIXED_P99_MS, MIXED_MAX_MS = 100.0, 1000.0


def health() -> Load:
    return Load([("GET", "/auth/health", "")], 200, repeat=True)


def heavy_lists(token: str, users: int) -> Load:
    """The most expensive list requests: the deepest page reachable by number (beyond it,
    400 PAGE_TOO_DEEP: deeper pages are keyset cursors), and a search matching nothing."""
    last_page = max(1, min(MAX_DEPTH // 100, users // 100))
    requests = [
        ("GET", f"{cases.USERS}?page={last_page}&limit=100", ""),
        ("GET", f"{cases.USERS}?search=no-such-email-anywhere&limit=100", ""),
    ]
    return Load(requests, 200, repeat=True, headers=cases.bearer(token))


def measure_mixed(run: Any, server: Server, token: str, target: BulkUser) -> None:
    """wrk runs the heavy lists from its own process for the whole case while the seed
    operation, then health, are measured beside it."""
    seconds = run.args.seconds
    heavy: dict[str, Any] = {}
    workdir = run.workdir / "heavy"
    workdir.mkdir(exist_ok=True)
    background = threading.Thread(
        target=lambda: heavy.update(
            run_wrk(
                server.base_url,
                heavy_lists(token, run.users),
                seconds=2 * seconds + 3,
                connections=HEAVY_CONNECTIONS,
                workdir=workdir,
            )  # fmt: skip
        )
    )
    background.start()
    time.sleep(1)  # the heavy load is running before the measured requests start
    for case, load in (("mixed-seed-op", cases.seed_not_found(target, token)),
                       ("mixed-health", health())):  # fmt: skip
        run.measure(server, case, load, connections=LIGHT_CONNECTIONS)
    background.join()
    record(run, server, "mixed-heavy", heavy)


def record(run: Any, server: Server, case: str, figures: dict[str, Any]) -> None:
    result = {"case": case, "server": server.name, "phase": run.phase, "users": run.users,
              **figures, "server_rss_mb": round(server.rss_mb(), 1)}  # fmt: skip
    run.results.append(result)


def targets(results: list[dict], find: Any, ms: Any) -> list[tuple[str, float, str, float]]:
    checks = []
    for phase in ("main", "large"):
        for case in ("mixed-seed-op", "mixed-health"):
            found = find(results, case, phase)
            if found:
                checks.append((f"{case} p99 ms ({phase})", ms(found["p99_us"]), "<=", MIXED_P99_MS))
                checks.append((f"{case} max ms ({phase})", ms(found["max_us"]), "<=", MIXED_MAX_MS))
    one, two = find(results, "get-user", "main"), find(results, "get-user-2w", "main")
    if one and two:
        gain = round(two["requests_per_second"] / one["requests_per_second"], 2)
        checks.append(("get-user req/s 2 workers / 1", gain, ">=", 1.0))
    return checks
