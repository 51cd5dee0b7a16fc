"""The README's walkthrough, run as written against a live server: the README cannot drift."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from nestauth.models import AuditEvent, TotpDevice
from tests.support import live_nestauth

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```sh\n(.*?)```", readme, re.S)
    assert block, "README lost its walkthrough block"
    return block.group(1)


class TestReadmeWalkthrough:
    def test_walkthrough_removes_a_device_and_reports_each_outcome(self, tmp_path: Path) -> None:
        (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README calls .venv/bin/...
        with live_nestauth(tmp_path, {"NESTAUTH_COOKIE_SECURE": "false"}) as base_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NESTAUTH_")}
            env.update(BASE=base_url, NESTAUTH_VAR_DIR=str(tmp_path / "var"))
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", walkthrough_script()],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        printed = [line for line in result.stdout.splitlines() if line.startswith("{")]
        me, removed, again, malformed = (json.loads(line) for line in printed)
        assert me["admin"]["email"] == "owner@example.com"
        assert removed["message"] == "TOTP device deleted successfully"
        assert (removed["remainingDevices"], removed["mfaDisabled"]) == (1, False)
        assert again["code"] == "TOTP_DEVICE_NOT_FOUND"
        assert malformed["code"] == "VALIDATION_FAILED"
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'nestauth.db'}")
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(TotpDevice)) == 1
            actions = conn.scalars(sa.select(AuditEvent.action)).all()
        engine.dispose()
        assert actions.count("user.totp_device.removed") == 1
