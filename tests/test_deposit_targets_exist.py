"""Issue 10: a deposit target that is missing fails loudly, unless the URL asks for it to be created.

A storage mount that is not there must not become copies on the local disk recorded as replicas.
The CLI runs in a subprocess, as a user runs it: one line, exit 2, nothing created.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import run_cli

MakeBag = Callable[..., Path]


@pytest.mark.parametrize("scheme", ["file", "ocfl"])
def test_deposit_to_a_missing_directory_is_one_line_exit_2_nothing_created(
        scheme: str, make_bag: MakeBag, tmp_path: Path) -> None:
    bag = make_bag("rec")
    missing = tmp_path / "mnt" / "store"
    out = run_cli("deposit", bag, "--to", f"{scheme}://{missing}", "--no-flow", "--no-ledger")
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: "), out.stderr
    assert "no such directory" in lines[0] and str(missing) in lines[0] and "?create=1" in lines[0]
    assert not (tmp_path / "mnt").exists()


@pytest.mark.parametrize("scheme", ["file", "ocfl"])
def test_deposit_creates_a_missing_directory_only_when_the_url_asks(
        scheme: str, make_bag: MakeBag, tmp_path: Path) -> None:
    bag = make_bag("rec")
    missing = tmp_path / "mnt" / "store"
    out = run_cli("deposit", bag, "--to", f"{scheme}://{missing}?create=1", "--no-flow", "--no-ledger")
    assert out.returncode == 0, out.stderr
    assert out.stdout.lstrip().startswith("deposited"), out.stdout
    assert "?create" not in out.stdout  # the location is the place, not the request
    assert (missing / "rec.v1" / "bagit.txt").is_file() if scheme == "file" else (missing / "0=ocfl_1.1").is_file()


def test_ocfl_deposit_refuses_a_directory_that_is_not_a_storage_root(make_bag: MakeBag, tmp_path: Path) -> None:
    bag = make_bag("rec")
    root = tmp_path / "not-ocfl"
    root.mkdir()
    (root / "something.txt").write_text("kept\n")
    out = run_cli("deposit", bag, "--to", f"ocfl://{root}", "--no-flow", "--no-ledger")
    assert out.returncode == 2, out
    assert out.stderr.count("\n") == 1 and "is not an OCFL 1.1 storage root" in out.stderr
    assert sorted(p.name for p in root.iterdir()) == ["something.txt"]


def test_ingest_deposit_to_a_missing_directory_fails_before_bagging(records_copy: Path, tmp_path: Path) -> None:
    bags = tmp_path / "bags"
    missing = tmp_path / "mnt" / "store"
    out = run_cli("ingest", "--records", records_copy, "--bags", bags, "--deposit-to", missing.as_uri())
    assert out.returncode == 2, out
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no such directory" in lines[0] and str(missing) in lines[0], out.stderr
    assert not (tmp_path / "mnt").exists() and not bags.exists()
