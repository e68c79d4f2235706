"""A failure nobody foresaw has its own exit code (3), never 1 ("invalid"), and stops no other bag."""

from __future__ import annotations

from pathlib import Path

import pytest

import pipeline.cli.validate as cli_validate
from pipeline.cli import INTERNAL_ERROR, main

FIXTURES = Path(__file__).parent / "data" / "bags"


def test_validate_goes_on_after_one_bag_fails_inside_strongroom(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    broken, good = FIXTURES / "VALID_v0.97-md5", FIXTURES / "VALID_plain-1.0"
    real = cli_validate._validate_with_progress

    def failing_for_one(bag: Path, depth: cli_validate.Depth, profile: object) -> cli_validate.ValidationReport:
        if bag == broken:
            raise RuntimeError("a bug")
        return real(bag, depth, profile)

    monkeypatch.setattr(cli_validate, "_validate_with_progress", failing_for_one)
    code = main(["validate", str(broken), str(good)])
    out, err = capsys.readouterr()
    assert code == INTERNAL_ERROR == 3
    assert f"{good}: valid" in out
    assert f"{broken}: internal error: RuntimeError: a bug" in err and "Traceback" not in err


def test_an_unforeseen_failure_of_a_command_is_exit_3_in_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*_: object, **__: object) -> None:
        raise KeyError("surprise")

    monkeypatch.setattr(cli_validate, "_bags", boom)
    assert main(["validate", str(FIXTURES / "VALID_plain-1.0")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("strongroom: error: KeyError")
