"""The README's walkthrough, run as written against a live server: the README cannot drift."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import sqlalchemy as sa

from nestauth.models import TotpDevice
from tests.support import live_nestauth

ROOT = Path(__file__).resolve().parents[2]


def walkthrough_script() -> str:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough:start -->\n```sh\n(.*?)```", readme, re.S)
    assert block, "README lost its walkthrough block"
    return block.group(1)


class TestReadmeWalkthrough:
    def test_walkthrough_enrols_removes_and_changes_the_login(self, tmp_path: Path) -> None:
        (tmp_path / ".venv").symlink_to(Path(sys.prefix))  # the README calls .venv/bin/...
        with live_nestauth(tmp_path, {"NESTAUTH_COOKIE_SECURE": "false"}) as base_url:
            env = {k: v for k, v in os.environ.items() if not k.startswith("NESTAUTH_")}
            env.update(BASE=base_url, NESTAUTH_VAR_DIR=str(tmp_path / "var"))
            result = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", walkthrough_script()],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        lines = result.stdout.splitlines()
        printed = [json.loads(line) for line in lines if line.startswith("{")]
        verified, pending, removed, event, again = printed
        assert verified["message"] == "TOTP device verified"
        assert pending["isRequiresMfa"] is True and "accessToken" not in pending
        assert removed["message"] == "TOTP device deleted successfully"
        assert (removed["remainingDevices"], removed["mfaDisabled"]) == (0, True)
        assert "false" in lines  # step 5: the next login no longer asks for a code
        assert event["action"] == "user.totp_device.removed"
        assert event["actorEmail"] == "owner@example.com"
        assert again["code"] == "TOTP_DEVICE_NOT_FOUND"
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'var' / 'nestauth.db'}")
        with engine.connect() as conn:
            assert conn.scalar(sa.select(sa.func.count()).select_from(TotpDevice)) == 0
        engine.dispose()
