"""``strongroom ingest``, ``bag`` and ``show`` in a subprocess, as a user runs them.

The CLI subprocesses report to the session's Prefect test server (``PREFECT_API_URL``), which is
also how a user points Strongroom at a real server.  Every bad input gives exactly one line that
names the file, exit 1, and no bag.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest
from lxml import etree

from pipeline.bag.writer import STAGING_DIR
from pipeline.premis import NO_SECOND_OPINION_NOTE

from .conftest import run_cli

SEED_NAME = "000_5b99444169de3d3a.txt"
RECORD = Path("icg-peru-1986") / "record.yaml"


def ingest(api: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_cli("ingest", *args, env={"PREFECT_API_URL": api})


def validation_event(bag: Path) -> tuple[list[str], str]:
    """(its agents' identifiers, its outcome notes) of the PREMIS validation event in ``bag``."""
    ns = {"p": "http://www.loc.gov/premis/v3"}
    doc = etree.fromstring((bag / "metadata" / "premis.xml").read_bytes(),
                           etree.XMLParser(resolve_entities=False, no_network=True))
    [event] = [e for e in doc.findall("p:event", ns)
               if (e.find("p:eventType", ns).get("valueURI") or "").endswith("/val")]  # type: ignore[union-attr]
    agents = [v.text or "" for v in event.findall("p:linkingAgentIdentifier/p:linkingAgentIdentifierValue", ns)]
    return agents, " ".join(n.text or "" for n in event.iterfind(".//p:eventOutcomeDetailNote", ns))


def bags_in(bags: Path) -> list[str]:
    return sorted(p.name for p in bags.iterdir() if not p.name.startswith(".")) if bags.exists() else []


def test_seed_ingests_through_the_cli_and_reruns_unchanged(tmp_path: Path, records_copy: Path,
                                                         prefect_api_url: str, seed_path: Path) -> None:
    bags = tmp_path / "bags"
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", bags, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["bagged"] == 1 and report["records"][0]["bag"].endswith("icg-peru-1986.v1")
    bag = bags / "icg-peru-1986.v1"
    assert (bag / "data" / SEED_NAME).read_bytes() == seed_path.read_bytes()
    bagit.Bag(str(bag)).validate()
    agents, notes = validation_event(bag)  # by default bagit-python gave its second opinion
    assert any(a.startswith("bagit-python/") for a in agents) and NO_SECOND_OPINION_NOTE not in notes
    again = ingest(prefect_api_url, "--records", records_copy, "--bags", bags)
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "1 unchanged" in again.stdout
    assert bags_in(bags) == ["icg-peru-1986.v1"]
    shown = run_cli("show", bag)
    assert shown.returncode == 0 and "Massacre of Prisoners in Peru" in shown.stdout


def test_ingest_without_second_opinion_says_so_in_premis(tmp_path: Path, records_copy: Path,
                                                         prefect_api_url: str) -> None:
    bags = tmp_path / "bags"
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", bags, "--no-second-opinion")
    assert out.returncode == 0, out.stderr
    agents, notes = validation_event(bags / "icg-peru-1986.v1")
    assert NO_SECOND_OPINION_NOTE in notes
    assert agents and not any(a.startswith("bagit-python/") for a in agents), agents
    bagit.Bag(str(bags / "icg-peru-1986.v1")).validate()  # the bag itself is as valid as ever


def _malformed_yaml(record: Path) -> str:
    record.write_text("id: x\ndc: [unclosed\n", encoding="utf-8")
    return f"{record}:"


def _unknown_field(record: Path) -> str:
    record.write_text(record.read_text(encoding="utf-8") + "titel: typo\n", encoding="utf-8")
    return "titel"


def _missing_required(record: Path) -> str:
    text = record.read_text(encoding="utf-8")
    record.write_text("\n".join(l for l in text.splitlines() if not l.startswith("id:")) + "\n", encoding="utf-8")
    return "id"


def _invalid_date(record: Path) -> str:
    record.write_text(record.read_text(encoding="utf-8").replace('date: "1986-06"', 'date: "1986-13"'),
                      encoding="utf-8")
    return "1986-13"


def _missing_payload(record: Path) -> str:
    (record.parent / SEED_NAME).unlink()
    return "not found"


def _digest_mismatch(record: Path) -> str:
    with open(record.parent / SEED_NAME, "ab") as fh:
        fh.write(b"tampered")
    return "mismatch"


def _escaping_payload(record: Path) -> str:
    record.write_text(record.read_text(encoding="utf-8").replace(f"path: {SEED_NAME}", "path: ../../etc/passwd"),
                      encoding="utf-8")
    return "../../etc/passwd"


def _symlink_payload(record: Path) -> str:
    target = record.parent / SEED_NAME
    moved = record.parent.parent / "elsewhere.txt"
    target.rename(moved)
    target.symlink_to(moved)
    return "symbolic link"


BAD_INPUTS: dict[str, Callable[[Path], str]] = {
    "malformed-yaml": _malformed_yaml,
    "unknown-field": _unknown_field,
    "missing-required-field": _missing_required,
    "invalid-date": _invalid_date,
    "missing-payload": _missing_payload,
    "digest-mismatch": _digest_mismatch,
    "payload-escaping-root": _escaping_payload,
    "payload-symlink": _symlink_payload,
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_clear_line_and_writes_nothing(case: str, tmp_path: Path, records_copy: Path,
                                                        prefect_api_url: str) -> None:
    record = records_copy / RECORD
    expected = BAD_INPUTS[case](record)
    sources_before = {p: p.read_bytes() for p in records_copy.rglob("*") if p.is_file() and not p.is_symlink()}
    bags = tmp_path / "bags"
    out = ingest(prefect_api_url, record, "--bags", bags)
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith("strongroom: error: ") and str(record) in lines[0] and expected in lines[0]
    assert "Traceback" not in out.stdout + out.stderr
    assert bags_in(bags) == []
    assert not any((bags / STAGING_DIR).iterdir()) if (bags / STAGING_DIR).exists() else True
    assert not (bags / ".strongroom-ledger.sqlite").exists()
    assert {p: p.read_bytes() for p in sources_before} == sources_before


def test_duplicate_identifiers_fail_both_records_and_write_nothing(tmp_path: Path, records_copy: Path,
                                                                  prefect_api_url: str) -> None:
    shutil.copyfile(records_copy / RECORD, records_copy / "icg-peru-1986" / "again.record.yaml")
    bags = tmp_path / "bags"
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", bags)
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 2 and all("duplicate record identifier 'icg-peru-1986'" in l for l in lines)
    assert bags_in(bags) == []


def test_one_bad_record_does_not_stop_the_others(tmp_path: Path, records_copy: Path, prefect_api_url: str) -> None:
    (records_copy / "broken.record.yaml").write_text("id: [\n", encoding="utf-8")
    bags = tmp_path / "bags"
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", bags)
    assert out.returncode == 1
    assert bags_in(bags) == ["icg-peru-1986.v1"]
    assert "broken.record.yaml" in out.stderr and "1 bagged" in out.stdout


def _make_unwritable(path: Path) -> Callable[[], None]:
    if os.geteuid() == 0:  # root ignores permission bits; the immutable attribute stops it
        subprocess.run(["chattr", "+i", str(path)], check=True)
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True) and None
    path.chmod(0o555)
    return lambda: path.chmod(0o755)


def test_unwritable_bags_directory_is_one_line_before_anything_starts(tmp_path: Path, records_copy: Path) -> None:
    bags = tmp_path / "bags"
    bags.mkdir()
    restore = _make_unwritable(bags)
    try:
        out = run_cli("ingest", "--records", records_copy, "--bags", bags)
    finally:
        restore()
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [out.stderr.strip()]
    assert str(bags) in out.stderr and "not writable" in out.stderr
    assert list(bags.iterdir()) == []


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli("ingest", tmp_path / "absent.yaml").returncode == 2
    assert run_cli("bag", tmp_path / "absent", tmp_path / "b").returncode == 2
    assert run_cli("ingest", "--algorithm", "crc32", tmp_path).returncode == 2


def test_bag_command_copies_a_directory_and_keeps_info_order(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "nested").mkdir(parents=True)
    (src / "nested" / "file 1.txt").write_bytes(b"one")
    (src / "100%.txt").write_bytes(b"percent")
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    out = run_cli("bag", src, tmp_path / "bag", "--info", "Source-Organization: Example Archive",
                  "--info", "Contact-Name: A. Archivist", "-a", "sha256")
    assert out.returncode == 0, out.stderr
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    info = (tmp_path / "bag" / "bag-info.txt").read_text(encoding="utf-8").splitlines()
    assert info[:2] == ["Source-Organization: Example Archive", "Contact-Name: A. Archivist"]
    manifest = (tmp_path / "bag" / "manifest-sha256.txt").read_text(encoding="utf-8")
    assert f"{hashlib.sha256(b'percent').hexdigest()}  data/100%25.txt" in manifest
    assert run_cli("bag", src, tmp_path / "bag").returncode == 1  # never overwritten


def test_show_refuses_a_non_bag_with_one_line(tmp_path: Path) -> None:
    out = run_cli("show", tmp_path)
    assert out.returncode == 1 and out.stderr.strip() == f"strongroom: error: {tmp_path}: not a bag (no bagit.txt)"


def test_ingest_deposits_each_new_bag_where_asked(tmp_path: Path, records_copy: Path, prefect_api_url: str) -> None:
    from pipeline.ledger import Ledger

    bags = tmp_path / "bags"
    store, ocfl_root = tmp_path / "store", tmp_path / "ocfl"
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", bags,
                 "--deposit-to", store.as_uri() + "?create=1", "--deposit-to", f"ocfl://{ocfl_root}?create=1")
    assert out.returncode == 0, out.stderr
    assert (store / "icg-peru-1986.v1" / "data" / SEED_NAME).read_bytes() == (records_copy / "icg-peru-1986" /
                                                                                SEED_NAME).read_bytes()
    assert (ocfl_root / "0=ocfl_1.1").is_file()
    said = [line for line in out.stdout.splitlines() if line.startswith("note: deposited icg-peru-1986.v1 -> ")]
    assert len(said) == 2 and all("verified" in line for line in said), out.stdout  # each deposit's outcome
    with Ledger.open(None, bags_dir=bags) as ledger:
        locations = ledger.locations("icg-peru-1986.v1")
        assert len(locations) == 3 and any(l.startswith("ocfl://") for l in locations)
        assert "rep" in {e.event_type for e in ledger.events("icg-peru-1986.v1")}


@pytest.mark.parametrize("args, message", [
    (["bag", "{src}", "{src}/inside"], "cannot be inside its source"),
    (["bag", "{src}", "{tmp}/b", "--info", "Payload-Oxum: 1.1"], "computed by Strongroom"),
    (["bag", "{src}/a.txt", "{tmp}/b"], "is not a directory"),
    (["ingest", "--records", "{src}/a.txt"], "is not a directory"),
    (["ingest", "--records", "{src}", "--bags", "{src}/a.txt"], "is not a directory (the bags directory)"),
    (["ingest", "--records", "{src}", "--bags", "{tmp}/b", "--deposit-to", "gopher://x"], "unknown deposit target"),
    (["ingest", "--records", "{src}", "--bags", "{tmp}/b", "--deposit-to", "s3://u:hunter2@bucket/x"],
     "credentials do not belong"),
])
def test_usage_errors_are_one_line_before_anything_is_written(tmp_path: Path, args: list[str], message: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    out = run_cli(*[a.format(src=src, tmp=tmp_path) for a in args])
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr and "hunter2" not in out.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"] and sorted(p.name for p in src.iterdir()) == ["a.txt"]


def test_show_escapes_control_characters_from_bag_info(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_bytes(b"a")
    assert run_cli("bag", src, tmp_path / "bag", "--info", "Title: \x1b]0;pwned\x07 title").returncode == 0
    out = run_cli("show", tmp_path / "bag")
    assert out.returncode == 0 and "\x1b" not in out.stdout and "\\x1b]0;pwned\\x07 title" in out.stdout
    missing = run_cli("show", tmp_path / "absent")
    assert missing.returncode == 2 and "no such bag directory" in missing.stderr  # a missing path: usage


@pytest.mark.postgres
def test_a_ledger_password_never_reaches_prefect(tmp_path: Path, records_copy: Path, prefect_api_url: str,
                                                 pg_url: str) -> None:
    import httpx

    secret_url = pg_url.replace("postgres@", "postgres:Ledger-Secret-91@", 1)  # trust auth: any password
    out = ingest(prefect_api_url, "--records", records_copy, "--bags", tmp_path / "bags", "--ledger", secret_url)
    assert out.returncode == 0, out.stderr
    runs = httpx.post(f"{prefect_api_url}/flow_runs/filter", json={"limit": 200}, timeout=30).json()
    assert runs and "Ledger-Secret-91" not in json.dumps(runs)
    assert "Ledger-Secret-91" not in out.stdout + out.stderr


def test_records_per_task_below_one_is_a_usage_error_before_prefect_starts(tmp_path: Path,
                                                                           records_copy: Path) -> None:
    out = run_cli("ingest", "--records", records_copy, "--bags", tmp_path / "bags", "--records-per-task", "0")
    assert out.returncode == 2
    assert out.stderr.strip() == "strongroom: error: --records-per-task must be at least 1"
    assert not (tmp_path / "bags").exists()
