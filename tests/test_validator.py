"""The strict validator: one fixture bag per finding code (tests/data/bags/<CODE>_<what>), depths,
safety (links, special files), Unicode and percent-encoding, progress, and bagit-python as a
second opinion - including the cases where bagit-python 1.9.0 is wrong (field guide §2)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import bagit
import pytest

from pipeline.bag.validate_codes import CODES
from pipeline.bag.validator import validate_bag

FIXTURES = Path(__file__).parent / "data" / "bags"
FIXTURE_DIRS = sorted(p for p in FIXTURES.iterdir() if "_" in p.name and not p.name.endswith(".py"))
#: Codes a committed fixture cannot carry (git keeps no empty directories, FIFOs or modes):
#: covered by the tests named here instead.
DYNAMIC = {"EMPTY-DIRECTORY": "test_empty_directory_warns", "SPECIAL-FILE": "test_fifo_is_refused",
           "FAST-ONLY": "test_fast_says_it_proves_nothing", "FAST-NO-OXUM": "test_fast_without_oxum_fails"}
#: Fixtures whose code is a warning in the BagIt version they use although usually an error.
WARNING_BY_VERSION = {"MANIFEST-DUPLICATE_v0.97-same-digest", "PAYLOAD-UNLISTED_v0.97-missing-from-one-of-two-manifests",
                      "BAGIT-TXT-SYNTAX_v0.97-space-before-colon", "TAG-MANIFEST-OMITS-MANIFEST_v0.97"}


def _codes(report: object) -> set[str]:
    return {f.code for f in report.findings}  # type: ignore[attr-defined]


@pytest.mark.parametrize("bag", FIXTURE_DIRS, ids=lambda p: p.name)
def test_fixture_triggers_its_code(bag: Path) -> None:
    """Each fixture named <CODE>_<what> yields CODE; VALID_* fixtures yield no finding at all."""
    report = validate_bag(bag)
    code = bag.name.split("_", 1)[0]
    if code == "VALID":
        assert report.valid and report.findings == [], [f.line() for f in report.findings]
        return
    hits = [f for f in report.findings if f.code == code]
    assert hits, f"{code} not among {[f.line() for f in report.findings]}"
    severity = "warning" if bag.name in WARNING_BY_VERSION else CODES[code][0]
    assert {f.severity for f in hits} == {severity}
    assert report.valid is (severity != "error" and not report.errors)
    if severity == "warning":
        assert report.valid, [f.line() for f in report.errors]


def test_every_code_has_a_fixture_or_a_test() -> None:
    """No finding code goes untested: a fixture directory, a dynamic test, or the profile tests."""
    fixtures = {p.name.split("_", 1)[0] for p in FIXTURE_DIRS}
    untested = {c for c in CODES if c not in fixtures and c not in DYNAMIC and not c.startswith("PROFILE-")}
    assert untested == set()


def _copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(FIXTURES / name, target, symlinks=True)
    return target


def test_empty_directory_warns(tmp_path: Path) -> None:
    bag = _copy("VALID_plain-1.0", tmp_path)
    (bag / "data" / "empty").mkdir()
    report = validate_bag(bag)
    assert report.valid and _codes(report) == {"EMPTY-DIRECTORY"}
    assert report.findings[0].path == "data/empty"


def test_fifo_is_refused(tmp_path: Path) -> None:
    """A FIFO in the payload is reported, never opened (opening one would block forever)."""
    bag = _copy("VALID_plain-1.0", tmp_path)
    os.mkfifo(bag / "data" / "pipe")
    report = validate_bag(bag)
    assert not report.valid and "SPECIAL-FILE" in _codes(report)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads mode-000 files")
def test_unreadable_file(tmp_path: Path) -> None:
    bag = _copy("VALID_plain-1.0", tmp_path)
    target = bag / "data" / "hello.txt"
    target.chmod(0)
    try:
        report = validate_bag(bag)
    finally:
        target.chmod(0o644)
    assert not report.valid and "UNREADABLE" in _codes(report)


def test_fast_says_it_proves_nothing(tmp_path: Path) -> None:
    """--fast passes a same-size tampered payload file and says so; completeness and full differ."""
    bag = _copy("PAYLOAD-DIGEST-MISMATCH_one-byte-flipped", tmp_path)
    fast = validate_bag(bag, depth="fast")
    assert fast.valid and _codes(fast) == {"FAST-ONLY"}
    assert "proves nothing" in fast.findings[0].message and "proves nothing" in fast.summary_line()
    assert validate_bag(bag, depth="completeness").valid
    assert "PAYLOAD-DIGEST-MISMATCH" in _codes(validate_bag(bag, depth="full"))


def test_fast_without_oxum_fails(tmp_path: Path) -> None:
    """A fast check of a bag with no Payload-Oxum compared nothing: it is not a pass (full still is)."""
    bag = _copy("VALID_plain-1.0", tmp_path)
    info = bag / "bag-info.txt"
    kept = [ln for ln in info.read_text("utf-8").splitlines(keepends=True) if not ln.startswith("Payload-Oxum")]
    info.write_text("".join(kept), "utf-8")
    for tm in bag.glob("tagmanifest-*.txt"):  # they would (rightly) see bag-info.txt changed
        tm.unlink()
    fast = validate_bag(bag, depth="fast")
    assert not fast.valid and "FAST-NO-OXUM" in _codes(fast)
    assert validate_bag(bag, depth="full").valid


def test_completeness_finds_missing_and_unlisted_without_hashing() -> None:
    for name, code in [("PAYLOAD-MISSING_deleted", "PAYLOAD-MISSING"),
                       ("PAYLOAD-UNLISTED_missing-from-one-of-two-manifests", "PAYLOAD-UNLISTED")]:
        assert code in _codes(validate_bag(FIXTURES / name, depth="completeness"))
        assert code not in _codes(validate_bag(FIXTURES / name, depth="fast"))


def test_fast_catches_tampered_bag_info() -> None:
    """bagit-python's fast validation passes a tampered bag-info.txt; ours checks tag digests."""
    report = validate_bag(FIXTURES / "TAG-DIGEST-MISMATCH_tampered-bag-info", depth="fast")
    assert not report.valid and "TAG-DIGEST-MISMATCH" in _codes(report)


def test_mismatch_message_is_actionable() -> None:
    report = validate_bag(FIXTURES / "PAYLOAD-DIGEST-MISMATCH_one-byte-flipped")
    mismatches = [f for f in report.findings if f.code == "PAYLOAD-DIGEST-MISMATCH"]
    assert {f.path for f in mismatches} == {"data/hello.txt"}
    sha512 = next(f for f in mismatches if "sha512" in f.message)
    assert sha512.expected and sha512.found and sha512.expected != sha512.found
    assert sha512.expected[:16] in sha512.message and sha512.found[:16] in sha512.message
    assert "manifest-sha512.txt" in sha512.message


def test_symlinks_are_never_followed(tmp_path: Path) -> None:
    """A data/ that is a link to a directory outside is not walked: nothing outside is read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the bag's\n", encoding="utf-8")
    bag = _copy("VALID_plain-1.0", tmp_path)
    shutil.rmtree(bag / "data")
    os.symlink(outside, bag / "data")
    report = validate_bag(bag)
    assert {"SYMLINK", "DATA-MISSING"} <= _codes(report)
    assert report.payload_files == 0
    assert not any("secret" in f.path for f in report.findings)


def test_names_compared_after_nfc(tmp_path: Path) -> None:
    """A manifest in NFC matches a file stored in NFD (and is opened by its on-disk name)."""
    bag = _copy("VALID_percent-space-and-unicode-names", tmp_path)
    nfd = unicodedata.normalize("NFD", "Núñez café.txt")
    assert (bag / "data" / nfd).exists()
    assert validate_bag(bag).valid


def test_percent_decoding_is_case_insensitive(tmp_path: Path) -> None:
    """%0d and %0D both mean CR (bagit-python 1.9.0 knows only the upper case)."""
    bag = _copy("VALID_plain-1.0", tmp_path)
    (bag / "data" / "hello.txt").rename(bag / "data" / "line\rbreak.txt")
    for name in ("manifest-sha512.txt", "manifest-sha256.txt"):
        text = (bag / name).read_text(encoding="utf-8").replace("data/hello.txt", "data/line%0dbreak.txt")
        (bag / name).write_text(text, encoding="utf-8")
    _retag(bag)
    report = validate_bag(bag)
    assert report.valid, [f.line() for f in report.findings]


def _retag(bag: Path) -> None:
    import hashlib

    for alg in ("sha512", "sha256"):
        names = sorted(p.name for p in bag.iterdir() if p.is_file() and not p.name.startswith("tagmanifest-"))
        lines = "".join(f"{hashlib.new(alg, (bag / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
        (bag / f"tagmanifest-{alg}.txt").write_text(lines, encoding="utf-8")


def test_undecodable_tag_file_is_still_read() -> None:
    """A bag-info.txt with one Latin-1 byte is reported, and every line of it is still checked."""
    report = validate_bag(FIXTURES / "TAG-ENCODING-DECODE_latin1-bag-info")
    assert ("Contact-Name", "Jos\ufffd") in report.bag_info
    assert ("Payload-Oxum", "33.2") in report.bag_info


def test_progress_reports_bytes_and_files() -> None:
    calls: list[tuple[int, int]] = []
    report = validate_bag(FIXTURES / "VALID_plain-1.0", progress=lambda b, f: calls.append((b, f)))
    assert calls and calls[-1] == (report.payload_bytes, report.payload_files)
    assert calls == sorted(calls)


def test_report_summary_and_json() -> None:
    report = validate_bag(FIXTURES / "OXUM-MISMATCH_wrong-count")
    line = report.summary_line()
    assert "INVALID" in line and "BagIt 1.0" in line and "1 error(s)" in line
    data = report.to_json()
    assert data["valid"] is False and data["findings"][0]["code"] == "OXUM-MISMATCH"
    assert data["findings"][0]["expected"] == "33.3" and data["findings"][0]["found"] == "33.2"


def test_never_raises_on_garbage(tmp_path: Path) -> None:
    """Binary junk in every tag file gives findings, not exceptions."""
    bag = _copy("VALID_plain-1.0", tmp_path)
    for name in ("bagit.txt", "bag-info.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt"):
        (bag / name).write_bytes(bytes(range(256)) * 4)
    (bag / "fetch.txt").write_bytes(b"\x00\xff\n" * 3)
    report = validate_bag(bag)
    assert not report.valid and report.findings


# --- bagit-python 1.9.0 as the second opinion -------------------------------------------------

def _bagit_python(bag: Path) -> str:
    """'valid', 'invalid' or 'crash: <type>' as bagit-python (full validation) sees the bag."""
    logging.getLogger("bagit").setLevel(logging.CRITICAL)
    try:
        bagit.Bag(str(bag)).validate(processes=1)
    except bagit.BagError:
        return "invalid"
    except Exception as exc:  # noqa: BLE001 - exactly what we want to observe
        return f"crash: {type(exc).__name__}"
    return "valid"


@pytest.mark.parametrize("name", ["VALID_plain-1.0", "VALID_v0.97-md5",
                                  "PAYLOAD-DIGEST-MISMATCH_one-byte-flipped", "PAYLOAD-MISSING_deleted",
                                  "PAYLOAD-UNLISTED_extra-file", "OXUM-MISMATCH_wrong-count",
                                  "TAG-DIGEST-MISMATCH_tampered-bag-info"])
def test_bagit_python_agrees_where_it_is_right(name: str) -> None:
    ours = "valid" if validate_bag(FIXTURES / name).valid else "invalid"
    assert _bagit_python(FIXTURES / name) == ours


@pytest.mark.parametrize("name, theirs", [
    ("BAGIT-TXT-SYNTAX_space-before-colon", "valid"),
    ("PAYLOAD-UNLISTED_missing-from-one-of-two-manifests", "valid"),
    ("OXUM-SYNTAX_not-numbers", "crash: ValueError"),
    ("VALID_percent-space-and-unicode-names", "invalid"),
])
def test_where_bagit_python_is_wrong(name: str, theirs: str) -> None:
    """Field guide §2, reproduced: bagit-python's verdict differs and ours follows RFC 8493."""
    assert _bagit_python(FIXTURES / name) == theirs
    ours = validate_bag(FIXTURES / name)
    assert ours.valid is name.startswith("VALID_")


def test_bagit_python_fast_misses_tampered_bag_info() -> None:
    bag = bagit.Bag(str(FIXTURES / "TAG-DIGEST-MISMATCH_tampered-bag-info"))
    bag.validate(fast=True)  # passes: only Payload-Oxum is compared
    assert not validate_bag(FIXTURES / "TAG-DIGEST-MISMATCH_tampered-bag-info", depth="fast").valid


# --- strongroom validate, run as a user runs it ------------------------------------------------

def test_cli_exit_codes_and_lines(cli: Any) -> None:
    ok = cli("validate", FIXTURES / "VALID_plain-1.0", FIXTURES / "SYSTEM-FILE_ds-store")
    assert ok.returncode == 0, ok.stderr
    assert "warning: SYSTEM-FILE data/.DS_Store" in ok.stdout
    assert ok.stdout.count(": valid (full") == 2
    bad = cli("validate", FIXTURES / "VALID_plain-1.0", FIXTURES / "OXUM-MISMATCH_wrong-count")
    assert bad.returncode == 1 and "error: OXUM-MISMATCH bag-info.txt" in bad.stdout
    assert "2 bag(s) validated: 1 valid, 1 invalid" in bad.stdout
    usage = cli("validate", FIXTURES / "no-such-bag")
    assert usage.returncode == 2 and usage.stderr.startswith("strongroom: error: ")
    assert usage.stderr.count("\n") == 1


def test_cli_fast_says_it_proves_nothing(cli: Any) -> None:
    out = cli("validate", "--fast", FIXTURES / "PAYLOAD-DIGEST-MISMATCH_one-byte-flipped")
    assert out.returncode == 0 and "proves nothing" in out.stdout
    assert cli("validate", "--completeness", FIXTURES / "PAYLOAD-MISSING_deleted").returncode == 1


def test_cli_json(cli: Any) -> None:
    out = cli("validate", "--json", FIXTURES / "PAYLOAD-MISSING_deleted")
    assert out.returncode == 1
    [report] = json.loads(out.stdout)
    assert report["valid"] is False and report["depth"] == "full"
    assert any(f["code"] == "PAYLOAD-MISSING" and f["path"] == "data/hello.txt" and f["severity"] == "error"
               for f in report["findings"])


def test_cli_recursive_skips_staging_and_bag_payloads(tmp_path: Path, cli: Any) -> None:
    """Every bag under a directory, not the bags inside a bag's payload, not .strongroom-staging."""
    bags = tmp_path / "bags"
    shutil.copytree(FIXTURES / "VALID_plain-1.0", bags / "a.v1")
    shutil.copytree(FIXTURES / "VALID_v0.97-md5", bags / "nested" / "b.v1")
    shutil.copytree(FIXTURES / "OXUM-MISMATCH_wrong-count", bags / ".strongroom-staging" / "c.v1")
    shutil.copytree(FIXTURES / "VALID_plain-1.0", bags / "a.v1" / "data" / "inner-bag")
    out = cli("validate", "--recursive", bags)
    assert out.returncode == 1  # the copied inner bag makes a.v1's payload unlisted
    summaries = [line for line in out.stdout.splitlines() if "payload file(s)" in line]
    assert [s.split(":")[0] for s in summaries] == [str(bags / "a.v1"), str(bags / "nested" / "b.v1")]
    assert cli("validate", "-r", bags / "nested").returncode == 0
    assert cli("validate", "-r", tmp_path / "bags" / ".strongroom-staging" / "c.v1" / "data").returncode == 2


def test_cli_profile(tmp_path: Path, cli: Any) -> None:
    profile = Path(__file__).parent / "data" / "profiles" / "every-key-1.4.json"
    out = cli("validate", "--profile", profile, FIXTURES / "VALID_plain-1.0")
    assert out.returncode == 1 and "PROFILE-IDENTIFIER" in out.stdout
    bad = cli("validate", "--profile", profile.with_name("bad-not-json.json"), FIXTURES / "VALID_plain-1.0")
    assert bad.returncode == 2 and "bad-not-json.json: not JSON" in bad.stderr


def test_validate_never_imports_prefect() -> None:
    code = ("import sys; from pipeline.cli import main; "
            f"rc = main(['validate', {str(FIXTURES / 'VALID_plain-1.0')!r}]); "
            "assert rc == 0; assert not [m for m in sys.modules if m.startswith('prefect')], 'prefect imported'")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_100k_files_in_bounded_memory(tmp_path: Path) -> None:
    """A 100,000-file bag validates fully in well under 150 MB (peak RSS of a fresh process)."""
    import hashlib

    bag = tmp_path / "big"
    n = 100_000
    lines = {"sha512": [], "sha256": []}  # type: dict[str, list[str]]
    for i in range(n):
        rel = f"data/{i // 1000:03d}/file-{i:06d}.txt"
        content = f"{i}\n".encode()
        path = bag / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        for alg in lines:
            lines[alg].append(f"{hashlib.new(alg, content).hexdigest()}  {rel}\n")
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    for alg, entries in lines.items():
        (bag / f"manifest-{alg}.txt").write_text("".join(entries))
    del lines
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork+exec, so a child of a large pytest
    # process would report the parent's size; VmHWM belongs to the child's own address space.
    code = ("import re, sys; from pathlib import Path; from pipeline.bag.validator import validate_bag; "
            f"r = validate_bag(Path({str(bag)!r})); "
            "hwm = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)); "
            "print(r.valid, r.payload_files, hwm // 1024)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    valid, files, peak_mb = done.stdout.split()
    print(f"\n100,000-file bag: valid={valid}, peak RSS {peak_mb} MB")
    assert valid == "True" and int(files) == n
    assert int(peak_mb) < 150, f"peak RSS {peak_mb} MB"


def test_cli_escapes_control_characters_in_names(tmp_path: Path, cli: Any) -> None:
    """A payload name with LF or ESC cannot break the one-line-per-finding output or the terminal."""
    bag = _copy("VALID_plain-1.0", tmp_path)
    (bag / "data" / "hello.txt").rename(bag / "data" / "evil\n\x1b[2Jname.txt")
    out = cli("validate", bag)
    assert out.returncode == 1 and "\x1b" not in out.stdout
    lines = out.stdout.splitlines()
    assert len(lines) == len(validate_bag(bag).findings) + 1
    assert any("data/evil\\n\\x1b[2Jname.txt" in line for line in lines)


def test_bag_given_as_a_link_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latest").symlink_to(FIXTURES / "VALID_plain-1.0")
    report = validate_bag(tmp_path / "latest")
    assert not report.valid and [f.code for f in report.findings] == ["BAG-NOT-DIRECTORY"]
    assert "symbolic link" in report.findings[0].message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("tag_file", ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "tagmanifest-sha256.txt"])
def test_a_tag_file_that_is_a_fifo_is_a_finding_not_a_hang(tmp_path: Path, tag_file: str) -> None:
    # Opening a FIFO for reading waits for a writer: the validator must never open one.
    bag = _copy("VALID_plain-1.0", tmp_path)
    if (bag / tag_file).exists():
        (bag / tag_file).unlink()
    os.mkfifo(bag / tag_file)
    for depth in ("fast", "full"):
        report = validate_bag(bag, depth=depth)
        assert not report.valid
        assert tag_file in {f.path for f in report.findings if f.severity == "error"}


def test_a_bag_without_payload_manifests_says_so_for_each_unlisted_file(tmp_path: Path) -> None:
    bag = _copy("MANIFEST-MISSING_none", tmp_path)
    unlisted = [f.message for f in validate_bag(bag).findings if f.code == "PAYLOAD-UNLISTED"]
    assert unlisted and all(m.endswith("(the bag has none)") for m in unlisted), unlisted


def test_the_summary_of_an_invalid_bag_does_not_claim_its_digests_verified(tmp_path: Path) -> None:
    report = validate_bag(_copy("PAYLOAD-DIGEST-MISMATCH_one-byte-flipped", tmp_path))
    assert "INVALID" in report.summary_line() and "verified" not in report.summary_line()
    assert "full: every digest checked" in report.summary_line()
