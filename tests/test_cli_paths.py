"""Wrong or empty paths fail loudly, in one line, creating nothing (issue 10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.ledger import SQLITE_NAME


def test_an_audit_of_a_directory_without_a_ledger_fails_and_creates_nothing(tmp_path: Path, cli: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    result = cli("audit", "--bags", empty)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: ") and str(empty / SQLITE_NAME) in lines[0]
    assert list(empty.iterdir()) == []


def test_an_audit_asked_to_create_a_ledger_says_it_checked_nothing(tmp_path: Path, cli: Any) -> None:
    result = cli("audit", "--bags", tmp_path, "--create-ledger")
    assert result.returncode == 0, result.stderr
    assert "checked nothing: no bag was due" in result.stdout
    assert (tmp_path / SQLITE_NAME).is_file()


def test_an_audit_of_a_missing_bags_directory_is_exit_2(tmp_path: Path, cli: Any) -> None:
    result = cli("audit", "--bags", tmp_path / "missing")
    assert result.returncode == 2 and "bags directory does not exist" in result.stderr
    assert not (tmp_path / "missing").exists()
