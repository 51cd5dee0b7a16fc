"""The login flood (issue 11, part 4): wrk keeps 400 connections of bad logins going from
127.0.0.1 while one legitimate client, bound to 127.0.0.2, signs in one login after another.
Reported: the legitimate logins' latency (p50, p99, max) under the flood and before it, and
what the flood got (its requests/s and statuses).
"""

from __future__ import annotations

import json
import statistics
import threading
import time
import uuid
from typing import Any

import httpx

from bench.harness import Load, Server, run_wrk

FLOOD_CONNECTIONS = 400
LEGIT_ADDRESS = "127.0.0.2"  # another address than the flood's, on loopback
RAMP_SECONDS = 1.0
BASELINE_LOGINS = 10
FLOOD_BODIES = 4_000


def flood_load() -> Load:
    """Wrong passwords for many unknown emails (credential stuffing from one address)."""
    bodies = [
        json.dumps({"email": f"flood-{uuid.uuid4().hex[:12]}@example.test", "password": "wrong"})
        for _ in range(FLOOD_BODIES)
    ]
    return Load([("POST", "/auth/login", b) for b in bodies], 429, repeat=True,
                headers={"content-type": "application/json"})  # fmt: skip


def legit_logins(
    base_url: str, email: str, password: str, *, seconds: float, least: int
) -> tuple[list[float], int]:
    """Latencies (s) of sequential logins for `seconds` (at least `least` of them), and
    how many did not answer 200."""
    transport = httpx.HTTPTransport(local_address=LEGIT_ADDRESS)
    latencies: list[float] = []
    failed = 0
    with httpx.Client(transport=transport, base_url=base_url, timeout=30) as client:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline or len(latencies) < least:
            started = time.perf_counter()
            response = client.post("/auth/login", json={"email": email, "password": password})
            latencies.append(time.perf_counter() - started)
            failed += response.status_code != 200
    return latencies, failed


def percentile_us(latencies: list[float], fraction: float) -> int:
    ordered = sorted(latencies)
    index = min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))
    return round(ordered[index] * 1e6)


def measure(server: Server, email: str, password: str, *, seconds: float, workdir: Any) -> dict:
    baseline, _ = legit_logins(server.base_url, email, password, seconds=0, least=BASELINE_LOGINS)
    flood: dict[str, Any] = {}

    def run_flood() -> None:
        flood.update(run_wrk(server.base_url, flood_load(), seconds=seconds + 2 * RAMP_SECONDS,
                             connections=FLOOD_CONNECTIONS, workdir=workdir))  # fmt: skip

    thread = threading.Thread(target=run_flood)
    thread.start()
    time.sleep(RAMP_SECONDS)  # the flood's connections are open and busy first
    latencies, failed = legit_logins(server.base_url, email, password, seconds=seconds, least=5)
    thread.join()
    return {
        "case": "login-flood", "server": server.name,
        "requests_per_second": flood["requests_per_second"],  # the flood's
        "p50_us": percentile_us(latencies, 0.5), "p99_us": percentile_us(latencies, 0.99),
        "max_us": percentile_us(latencies, 1.0), "legit_logins": len(latencies),
        "baseline_p50_us": round(statistics.median(baseline) * 1e6),
        "errors": failed, "flood_statuses": flood["statuses"],
        "flood_socket_errors": flood["socket_errors"], "flood_timeouts": flood["timeouts"],
    }  # fmt: skip
