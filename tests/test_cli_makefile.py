"""``make``'s first install shows Strongroom's lines only; pip's output only when it fails (issue 10).

The venv's python is a stand-in script that prints what setuptools prints: nothing is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BANNER = "!! SetuptoolsDeprecationWarning: editable install banner !!"


def _make_install(tmp_path: Path, exit_code: int) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    fake = venv / "bin" / "python"
    fake.write_text(f"#!/bin/sh\necho '{BANNER}' >&2\nexit {exit_code}\n")
    fake.chmod(0o755)
    return subprocess.run(["make", "-s", "-C", str(REPO), f"VENV={venv}", f"{venv}/.strongroom-installed"],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""})


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_successful_install_hides_pips_output(tmp_path: Path) -> None:
    done = _make_install(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    shown = (done.stdout + done.stderr).strip().splitlines()
    assert all(line.startswith("strongroom: ") for line in shown) and BANNER not in done.stdout + done.stderr
    assert BANNER in (tmp_path / "venv" / "install.log").read_text()


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_a_failed_install_shows_pips_output(tmp_path: Path) -> None:
    failed = _make_install(tmp_path, 1)
    assert failed.returncode != 0
    assert BANNER in failed.stdout + failed.stderr and "the install failed" in failed.stdout + failed.stderr
    assert not (tmp_path / "venv" / ".strongroom-installed").exists()
