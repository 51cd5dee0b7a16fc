"""The benchmark's table, ratios and targets, from the figures of each wrk run."""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from typing import Any

from bench import concurrency

# The targets: 16 connections, 1 server process, SQLite file.
SEED_P99_MS, READ_P99_MS, FLOOR_SHARE, SCALING_P50, RSS_MB = 15.0, 20.0, 1 / 1.5, 1.2, 150.0
LIST_P99_MS = 50.0  # issue 11: each list and search at the large population
FLOOD_LEGIT_P99_MS = 1000.0  # a legitimate login under a 400-connection bad-login flood


def ms(microseconds: object) -> float:
    return round(int(microseconds) / 1000, 2)  # type: ignore[call-overload]


def progress_line(result: dict[str, Any]) -> str:
    return (
        f"{result['server']:>8} {result['case']:<15} users={result['users']:<8} "
        f"{result['requests_per_second']:>8} req/s  p50 {ms(result['p50_us'])} ms  "
        f"p99 {ms(result['p99_us'])} ms  errors {result['errors']}  "
        f"rss {result['server_rss_mb']} MB"
    )


def _find(results: list[dict], case: str, phase: str) -> dict | None:
    return next((r for r in results if r["case"] == case and r["phase"] == phase), None)


def summarise(results: list[dict], memory: dict[str, float], args: dict) -> dict[str, Any]:
    ratios = {}
    for case in ("seed-op-404", "seed-op-delete"):
        ours, floor = _find(results, case, "main"), _find(results, case, "floor")
        if ours and floor:
            ratios[case] = round(ours["requests_per_second"] / floor["requests_per_second"], 3)
    scaling = {}
    for case in ("seed-op-404", "get-user"):
        small, large = _find(results, case, "main"), _find(results, case, "large")
        if small and large:
            scaling[case] = {
                "users_small": small["users"], "users_large": large["users"],
                "p50_small_ms": ms(small["p50_us"]), "p50_large_ms": ms(large["p50_us"]),
                "p50_ratio": round(int(large["p50_us"]) / max(1, int(small["p50_us"])), 3),
            }  # fmt: skip
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "args": args,
        "results": results,
        "memory_mb": {name: round(mb, 1) for name, mb in memory.items()},
        "floor_ratios": ratios,
        "scaling": scaling,
        "targets": _targets(results, ratios, scaling, memory),
    }


def _targets(results: list[dict], ratios: dict, scaling: dict, memory: dict) -> list[dict]:
    checks: list[tuple[str, float, str, float]] = []
    for case, limit in (("seed-op-404", SEED_P99_MS), ("seed-op-delete", SEED_P99_MS),
                        ("get-user", READ_P99_MS), ("mfa-verify", READ_P99_MS)):  # fmt: skip
        found = _find(results, case, "main")
        if found:
            checks.append((f"{case} p99 ms", ms(found["p99_us"]), "<=", limit))
    for found in results:
        if found["phase"] == "large" and found["case"].startswith(("list-", "search-")):
            checks.append((f"{found['case']} p99 ms (large)", ms(found["p99_us"]), "<=",
                           LIST_P99_MS))  # fmt: skip
    flood = _find(results, "login-flood", "main")
    if flood:
        checks.append(("login-flood legit p99 ms", ms(flood["p99_us"]), "<=", FLOOD_LEGIT_P99_MS))
    for case, ratio in ratios.items():
        checks.append((f"{case} req/s vs floor", ratio, ">=", round(FLOOR_SHARE, 3)))
    for case, figures in scaling.items():
        checks.append((f"{case} p50 large/small", figures["p50_ratio"], "<=", SCALING_P50))
    checks += concurrency.targets(results, _find, ms)
    for name, mb in memory.items():
        if name.startswith("nestauth"):
            checks.append((f"{name} RSS MB", round(mb, 1), "<=", RSS_MB))
    return [
        {"target": name, "value": value, "limit": f"{op} {limit}",
         "met": value <= limit if op == "<=" else value >= limit}
        for name, value, op, limit in checks
    ]  # fmt: skip


def render(summary: dict[str, Any]) -> str:
    lines = [
        "",
        f"{'server':<9}{'case':<16}{'users':>9}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'errors':>8}",
    ]
    for r in summary["results"]:
        server = r["server"] + ("*" if r["phase"] == "large" else "")
        lines.append(
            f"{server:<9}{r['case']:<16}{r['users']:>9}{r['requests_per_second']:>10}"
            f"{ms(r['p50_us']):>9}{ms(r['p99_us']):>9}{r['errors']:>8}"
        )
    lines.append("(* after bulk-loading the large population)")
    lines.append("server RSS after its run (MB): " + ", ".join(
        f"{name} {mb}" for name, mb in summary["memory_mb"].items()))  # fmt: skip
    lines.append("")
    for target in summary["targets"]:
        mark = "met " if target["met"] else "MISS"
        lines.append(f"  [{mark}] {target['target']:<32} {target['value']:>9} {target['limit']}")
    return "\n".join(lines)
