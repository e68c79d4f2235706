"""Tag files in every encoding bagit.txt may declare: read correctly, or a TAG-ENCODING-* finding.

Bags from other BagIt implementations declare UTF-16 (with or without a byte-order mark),
UTF-16LE/BE or ISO-8859-1.  A tag file with no BOM under a declared UTF-16 is read big-endian, as
RFC 2781 section 4.3 says; one bag's encoding problem never stops the other bags of a command.
"""

from __future__ import annotations

import codecs
import hashlib
from pathlib import Path

import pytest

from pipeline.bag.validator import validate_bag
from tests.conftest import run_cli

NAME = "café.txt"  # a name that only a correct reading of the manifest finds
BODY = b"bytes of the payload\n"


def _bag(root: Path, declared: str, manifest_bytes: bytes, name: str = NAME) -> Path:
    bag = root / declared.lower().replace(" ", "")
    (bag / "data").mkdir(parents=True)
    (bag / "data" / name).write_bytes(BODY)
    (bag / "bagit.txt").write_text(f"BagIt-Version: 1.0\nTag-File-Character-Encoding: {declared}\n", "utf-8")
    (bag / "manifest-sha256.txt").write_bytes(manifest_bytes)
    return bag


def _line(name: str = NAME) -> str:
    return f"{hashlib.sha256(BODY).hexdigest()} data/{name}\n"


@pytest.mark.parametrize(("declared", "encoded"), [
    ("UTF-16", codecs.BOM_UTF16_LE + _line().encode("utf-16-le")),
    ("UTF-16", codecs.BOM_UTF16_BE + _line().encode("utf-16-be")),
    ("UTF-16", _line().encode("utf-16-be")),       # no BOM: big-endian (RFC 2781 4.3)
    ("UTF-16LE", _line().encode("utf-16-le")),
    ("UTF-16BE", _line().encode("utf-16-be")),
    ("ISO-8859-1", _line().encode("latin-1")),
    ("UTF-32", _line().encode("utf-32-be")),
])
def test_a_declared_encoding_is_read_correctly(tmp_path: Path, declared: str, encoded: bytes) -> None:
    report = validate_bag(_bag(tmp_path, declared, encoded))
    assert report.valid, [f.message for f in report.findings]


def test_utf16_without_a_bom_in_the_wrong_order_is_a_finding_not_a_crash(tmp_path: Path) -> None:
    report = validate_bag(_bag(tmp_path, "UTF-16", _line().encode("utf-16-le")))
    assert not report.valid
    assert {f.path for f in report.findings if f.severity == "error"} >= {"manifest-sha256.txt"}


def test_bytes_outside_the_declared_encoding_are_a_tag_encoding_finding(tmp_path: Path) -> None:
    report = validate_bag(_bag(tmp_path, "UTF-16LE", _line().encode("utf-16-le")[:-1]))  # odd length
    codes = [f.code for f in report.findings]
    assert "TAG-ENCODING-DECODE" in codes and not report.valid


def test_an_unknown_encoding_is_named(tmp_path: Path) -> None:
    report = validate_bag(_bag(tmp_path, "x-klingon", _line().encode("utf-8")))
    assert [f for f in report.findings if f.code == "TAG-ENCODING-UNKNOWN"][0].path == "bagit.txt"


def test_one_bag_with_an_encoding_problem_does_not_stop_the_others(tmp_path: Path) -> None:
    broken = _bag(tmp_path, "UTF-16", _line().encode("utf-16-le"))
    good = _bag(tmp_path / "ok", "UTF-8", _line().encode("utf-8"))
    out = run_cli("validate", broken, good)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr and "strongroom: error" not in out.stderr
    assert f"{good}: valid" in out.stdout and f"{broken}: INVALID" in out.stdout
