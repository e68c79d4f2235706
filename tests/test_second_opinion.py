"""bagit-python's second opinion: the same full validation in this process or in a child process.

Bags of many files are validated by bagit-python in a child interpreter (its index of the bag,
~1.4 KB a file, then leaves with the child); small bags in-process.  Both must give the same
findings, and a complaint from the child must stop publication as one from this process does.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pipeline.bag import second_opinion
from pipeline.bag.second_opinion import bagit_python_findings
from pipeline.bag.writer import STAGING_DIR, BagOptions, bag_directory, scan_directory, write_bag
from pipeline.errors import BagInvalidError
from pipeline.findings import Finding


@pytest.fixture
def bag(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_bytes(b"alpha\n")
    (src / "sub" / "100% sure.txt").write_bytes(b"percent\n")  # bagit-python cannot read '%' names
    return bag_directory(src, tmp_path / "bag", verifiers=[]).path


def _lines(findings: list[Finding]) -> list[str]:
    # Sorted: bagit-python's algorithms come from a set, so their order follows the process's hash seed.
    return sorted(f"{f.severity} {f.line()}" for f in findings)


def test_a_valid_bag_gets_the_same_opinion_in_a_child_and_in_process(bag: Path) -> None:
    here = bagit_python_findings(bag, in_child=False)
    there = bagit_python_findings(bag, in_child=True)
    assert _lines(here) == _lines(there)
    assert [f.severity for f in there] == ["info"] and "containing '%'" in there[0].message


@pytest.mark.parametrize("damage", ["content", "missing", "extra", "bagit.txt"])
def test_a_damaged_bag_gets_the_same_errors_in_a_child_and_in_process(bag: Path, damage: str) -> None:
    if damage == "content":
        (bag / "data" / "a.txt").write_bytes(b"ALPHA\n")  # same size: the digests must catch it
    elif damage == "missing":
        (bag / "data" / "a.txt").unlink()
    elif damage == "extra":
        (bag / "data" / "stray.txt").write_bytes(b"")
    else:
        (bag / "bagit.txt").unlink()
    here = bagit_python_findings(bag, in_child=False)
    there = bagit_python_findings(bag, in_child=True)
    assert _lines(here) == _lines(there)
    assert any(f.severity == "error" and f.code == "SECOND-OPINION" for f in there), _lines(there)


def test_digests_are_compared_even_when_a_percent_name_stops_bagit_pythons_completeness_check(bag: Path) -> None:
    """bagit-python stops at completeness (it cannot read the '%' name), which is excused; its digest
    check must still run, or a damaged file in such a bag would pass the second opinion."""
    (bag / "data" / "a.txt").write_bytes(b"ALPHA\n")
    for in_child in (False, True):
        found = bagit_python_findings(bag, in_child=in_child)
        assert [(f.severity, f.path) for f in found] == [("error", "data/a.txt")] * 2, found  # sha512, sha256
        assert all("validation failed" in f.message for f in found)


def test_a_complaint_from_the_child_stops_publication(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"alpha\n")

    def damage_then_ask_bagit_python_in_a_child(staged: Path) -> list[Finding]:
        (staged / "data" / "a.txt").write_bytes(b"ALPHA\n")
        return bagit_python_findings(staged, in_child=True)

    bags = tmp_path / "bags"
    bags.mkdir()
    with pytest.raises(BagInvalidError, match="SECOND-OPINION"):
        write_bag(bags / "b", scan_directory(src), BagOptions(verifiers=[damage_then_ask_bagit_python_in_a_child]))
    assert [p.name for p in bags.iterdir()] == [STAGING_DIR] and not any((bags / STAGING_DIR).iterdir())


def test_a_child_that_dies_is_no_opinion(bag: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(second_opinion, "_child_command", lambda b, *_: [sys.executable, "-c", "import os; os._exit(9)"])
    found = bagit_python_findings(bag, in_child=True)
    assert [f.severity for f in found] == ["error"] and "did not complete" in found[0].message


@pytest.mark.parametrize(("threshold", "expect_child"), [(2, True), (3, False)])
def test_bags_of_many_files_go_to_the_child(bag: Path, monkeypatch: pytest.MonkeyPatch, threshold: int,
                                            expect_child: bool) -> None:
    """The bag above has 2 payload files: at a threshold of 2 it is validated in a child."""
    used: list[str] = []
    monkeypatch.setattr(second_opinion, "CHILD_PROCESS_FILES", threshold)
    monkeypatch.setattr(second_opinion, "_in_child", lambda b, *_: used.append("child") or {"valid": True})
    monkeypatch.setattr(second_opinion, "_in_process", lambda b: used.append("here") or {"valid": True})
    bagit_python_findings(bag)
    assert used == (["child"] if expect_child else ["here"])
