"""Processes of a benchmark run: a server (nestauth or the floor) and wrk against it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH_DIR = Path(__file__).resolve().parent
LUA_SCRIPT = BENCH_DIR / "wrk" / "requests.lua"
WRK_THREADS = 1  # the server has one process; a second wrk thread would take its core


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=BENCH_DIR.parent
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited at start; see {self.log_path}")
            try:
                httpx.get(self.base_url + "/", timeout=1)  # any answer means it is serving
                return
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise SystemExit(f"{self.name} did not answer within 60 s; see {self.log_path}")

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def rss_mb(self) -> float:
        """Resident memory of the server process, as the kernel counts it."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Load:
    """One wrk run: the requests to send, the statuses that count as success."""

    requests: list[tuple[str, str, str]]  # (method, path, body)
    expected_status: int
    repeat: bool = False
    headers: dict[str, str] = field(default_factory=dict)


def require_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian's package)")
    return found


def run_wrk(
    base_url: str, load: Load, *, seconds: float, connections: int, workdir: Path
) -> dict[str, object]:
    """Runs wrk from its own process and returns its figures plus the error count."""
    request_file = workdir / "requests.tsv"
    request_file.write_text("".join(f"{m}\t{p}\t{b}\n" for m, p, b in load.requests))
    command = [
        require_wrk(), f"-t{WRK_THREADS}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
        "--timeout", "10s", "-s", str(LUA_SCRIPT),
    ]  # fmt: skip
    for name, value in load.headers.items():
        command += ["-H", f"{name}: {value}"]
    env = {
        **os.environ, "BENCH_REQUESTS": str(request_file),
        "BENCH_THREADS": str(WRK_THREADS), "BENCH_REPEAT": "1" if load.repeat else "0",
    }  # fmt: skip
    done = subprocess.run(command + [base_url], env=env, capture_output=True, text=True)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit("wrk failed")
    figures: dict[str, object] = json.loads(line.removeprefix("BENCH_JSON "))
    statuses: dict[str, int] = figures["statuses"]  # type: ignore[assignment]
    unexpected = sum(n for status, n in statuses.items() if int(status) != load.expected_status)
    socket = int(figures["socket_errors"]) + int(figures["timeouts"])  # type: ignore[call-overload]
    figures["errors"] = unexpected + socket
    seconds = int(figures["duration_us"]) / 1e6  # type: ignore[call-overload]
    figures["requests_per_second"] = round(int(figures["requests"]) / seconds, 1)  # type: ignore[call-overload]
    return figures
