"""The built wheel serves on its own: spec and migrations inside the package, run from a
directory that holds no checkout.

The fresh venv gets the wheel and nothing else; its dependencies come from this test
environment's site-packages through a plain path in a .pth file. A path line does not run
the .pth files of the directory it names, so the editable nestauth there stays out.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import httpx
import pytest

from nestauth.app import load_spec
from tests.support import live_nestauth

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.live

# No PYTHONPATH: the server must import the installed wheel, not this tree.
ISOLATED = {"PYTHONPATH": "", "NESTAUTH_COOKIE_SECURE": "false"}


def run(*command: str | Path, cwd: Path) -> str:
    done = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env={**os.environ, **ISOLATED, "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def build_wheel(tmp_path: Path) -> Path:
    """From a copy of the sources, so that the build leaves nothing in the checkout."""
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "nestauth", source / "nestauth", symlinks=True, ignore=ignore)
    shutil.copytree(ROOT / "spec", source / "spec")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    # The build backend comes from the package index, as build-system.requires says.
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        tmp_path,
        source,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("nestauth-*.whl")
    return wheel


def install(wheel: Path, venv: Path) -> None:
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(run(python, "-c", purelib, cwd=venv.parent).strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    pip = (sys.executable, "-m", "pip", "--python", python)
    run(*pip, "install", "--no-deps", "--no-index", "-q", wheel, cwd=venv.parent)


def test_installed_wheel_serves_from_another_directory(tmp_path: Path) -> None:
    venv, workdir = tmp_path / "venv", tmp_path / "elsewhere"
    workdir.mkdir()
    install(build_wheel(tmp_path), venv)
    where = "import nestauth; print(nestauth.__file__)"
    imported = run(venv / "bin" / "python", "-c", where, cwd=workdir)
    assert imported.startswith(str(venv)), imported

    with live_nestauth(workdir, ISOLATED, nestauth=[str(venv / "bin" / "nestauth")]) as url:
        assert httpx.get(f"{url}/auth/health", timeout=5).status_code == 200
        served = httpx.get(f"{url}/openapi.json", timeout=5)
    assert served.status_code == 200
    assert served.json()["openapi"] == "3.0.3"
    assert set(served.json()["paths"]) == set(load_spec()["paths"])
    assert (workdir / "var" / "nestauth.db").exists()  # migrations shipped too
