"""``strongroom records import FILE.csv``: one record per row of an Archivematica-style metadata.csv.

Through the real CLI: a three-row CSV with a BOM, a repeated ``dc.subject`` and a quoted value
holding a comma imports to three records that ingest; any bad row (a missing file, an unknown
column, an invalid date, a duplicate id) writes nothing and is named on its own line; a CSV that is
not UTF-8 gets one line; importing again reports what is already recorded and writes nothing.
"""

from __future__ import annotations

from pathlib import Path

import bagit
import pytest

from pipeline.records import discover_records, load_record

from .conftest import run_cli
from .test_records_new import strongroom, tiny_png

UND = "http://rightsstatements.org/vocab/UND/1.0/"
BOM = b"\xef\xbb\xbf"
HEADER = "filename,id,dc.title,dc.subject,dc.subject,dc.date,dc.creator,rights_uri,source_organization"
ROWS = [
    f"letter.txt,,A letter,Peru,Prisons,1986-06,\"García, Alan\",{UND},Test archive",
    f"notes.txt,notes-1986,Notes,Peru,,1986,,{UND},Test archive",
    f"scans,,\"Scans, June 1986\",,,,,{UND},Test archive",
]


def items(root: Path) -> Path:
    """Two files and a folder (a text and a PNG) to describe, in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "letter.txt").write_text("Lima, June 1986.\n", encoding="ascii")
    (root / "notes.txt").write_text("Notas: ¡sí!\n", encoding="utf-8")
    (root / "scans").mkdir()
    (root / "scans" / "page-1.png").write_bytes(tiny_png())
    (root / "scans" / "caption.txt").write_text("Page 1\n", encoding="ascii")
    return root


def metadata_csv(root: Path, rows: list[str], header: str = HEADER, *, bom: bool = True) -> Path:
    path = root / "metadata.csv"
    path.write_bytes((BOM if bom else b"") + "\r\n".join([header, *rows, ""]).encode("utf-8"))
    return path


def tree(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_three_rows_import_to_three_records_that_ingest(
        tmp_path: Path, prefect_api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = items(tmp_path / "transfer")
    csv_file = metadata_csv(root, ROWS)
    code, out, err = strongroom(capsys, "records", "import", csv_file)
    assert code == 0, err
    assert out.splitlines()[-1] == (f"3 record(s) written, 0 already recorded; "
                                    f"next: strongroom ingest --records {root}")
    records = {load_record(p).record.id: load_record(p).record for p in discover_records(root)}
    assert set(records) == {"letter", "notes-1986", "scans"}  # from the name, the id column, the name
    letter = records["letter"]
    assert [s.value for s in letter.dc.subject] == ["Peru", "Prisons"]
    assert [c.value for c in letter.dc.creator] == ["García, Alan"]
    assert letter.dc.date == ("1986-06",) and letter.rights.uri == UND
    assert records["scans"].dc.title[0].value == "Scans, June 1986"
    assert {p.path: p.format for p in records["scans"].payload} == {
        "caption.txt": "text/plain; charset=us-ascii", "page-1.png": "image/png"}
    assert records["notes-1986"].payload[0].format == "text/plain; charset=utf-8"
    assert (root / "letter.txt.record.yaml").read_text(encoding="utf-8").startswith(
        "# Strongroom record imported from metadata.csv (line 2)")
    assert strongroom(capsys, "records", "check", root)[:2] == (0, "3 record(s) OK\n")

    bags = tmp_path / "bags"
    ingested = run_cli("ingest", "--records", root, "--bags", bags, env={"PREFECT_API_URL": prefect_api_url})
    assert ingested.returncode == 0, ingested.stderr
    assert "3 bagged" in ingested.stdout
    for name in ("letter.v1", "notes-1986.v1", "scans.v1"):
        bagit.Bag(str(bags / name)).validate()
    assert (bags / "scans.v1" / "data" / "page-1.png").read_bytes() == tiny_png()


def test_importing_again_reports_what_is_already_recorded(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = items(tmp_path / "transfer")
    csv_file = metadata_csv(root, ROWS)
    assert strongroom(capsys, "records", "import", csv_file)[0] == 0
    before = {p: p.read_bytes() for p in discover_records(root)}
    code, out, err = strongroom(capsys, "records", "import", csv_file)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:3] == [
        f"note: {csv_file}:{line}: '{name}' is already recorded ({record}): left as it is"
        for line, name, record in ((2, "letter.txt", root / "letter.txt.record.yaml"),
                                   (3, "notes.txt", root / "notes.txt.record.yaml"),
                                   (4, "scans", root / "scans" / "record.yaml"))]
    assert lines[3].startswith("0 record(s) written, 3 already recorded")
    assert {p: p.read_bytes() for p in discover_records(root)} == before

    # A file already in a folder's record is recorded too: not a second record for it.
    again = metadata_csv(root, [f"scans/page-1.png,,Page,,,,,{UND},Test archive"])
    code, out, _ = strongroom(capsys, "records", "import", again)
    assert code == 0 and "'scans/page-1.png' is already recorded" in out
    assert not (root / "scans" / "page-1.png.record.yaml").exists()

    # A new item may not take the id of a record already there (ingest would refuse both).
    (root / "more.txt").write_text("more\n", encoding="ascii")
    taken = metadata_csv(root, [f"more.txt,letter,More,,,,,{UND},Test archive"])
    code, _, err = strongroom(capsys, "records", "import", taken)
    assert code == 1 and err.splitlines() == [
        f"strongroom: error: {taken}:2: id: 'letter' is already the id of {root / 'letter.txt.record.yaml'}"]
    assert not (root / "more.txt.record.yaml").exists()


def test_a_missing_file_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = items(tmp_path / "transfer")
    csv_file = metadata_csv(root, [ROWS[0], f"lost.txt,,Lost,,,,,{UND},Test archive", ROWS[2]])
    before = tree(root)
    code, out, err = strongroom(capsys, "records", "import", csv_file)
    assert code == 1 and out == ""
    assert err.splitlines() == [f"strongroom: error: {csv_file}:3: filename: 'lost.txt' not found"]
    assert tree(root) == before


def test_every_bad_row_and_column_is_named_and_nothing_is_written(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = items(tmp_path / "transfer")
    header = "filename,id,dc.title,dc.date,dcterms.alternative,rights_uri,source_organization"
    csv_file = metadata_csv(root, [
        f"letter.txt,,A letter,1986-13,,{UND},Archive",       # an invalid date
        f"notes.txt,same,Notes,,Other title,{UND},Archive",  # a value in the unknown column
        f"scans,same,Scans,,,{UND},Archive",                 # the id of line 3 again
        "scans/caption.txt,,,,,,",  # in line 4's folder; no title, rights or organisation
    ], header)
    before = tree(root)
    code, _, err = strongroom(capsys, "records", "import", csv_file)
    assert code == 1
    assert err.splitlines() == [
        f"strongroom: error: {csv_file}:1: unknown column 'dcterms.alternative': a Strongroom "
        "record has no field for it (dcterms columns: the 15 elements, provenance, "
        "bibliographicCitation, issued)",
        f"strongroom: error: {csv_file}:2: dc.date: invalid date '1986-13'",
        f"strongroom: error: {csv_file}:4: id: duplicate id 'same' (also line 3)",
        f"strongroom: error: {csv_file}:5: dc.title: no value: a title is required",
        f"strongroom: error: {csv_file}:5: dc.rights: no value, and no statement is known for the "
        "rights URI: a dc.rights value is required",
        f"strongroom: error: {csv_file}:5: rights_uri: no value: give a rights_uri column or --rights-uri",
        f"strongroom: error: {csv_file}:5: source_organization: no value: give a "
        "source_organization column or --source-organization",
        f"strongroom: error: {csv_file}:5: filename: 'scans/caption.txt' is also a payload file "
        "of line 4",
        f"strongroom: 8 problem(s): {csv_file}: nothing written",
    ]
    assert tree(root) == before


def test_a_csv_that_is_not_utf8_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = items(tmp_path / "transfer")
    raw = f"{HEADER}\r\n".encode() + "letter.txt,,Carta de García".encode("latin-1") + b"\r\n"
    csv_file = root / "metadata.csv"
    csv_file.write_bytes(raw)
    code, _, err = strongroom(capsys, "records", "import", csv_file)
    assert code == 1
    offset = raw.index(b"\xed")
    assert err.splitlines() == [f"strongroom: error: {csv_file}:2: not UTF-8 (byte {offset}): "
                                "save it as UTF-8 (a spreadsheet's 'CSV UTF-8')"]


def test_an_archivematica_transfer_and_command_line_defaults(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``metadata/metadata.csv`` naming ``objects/...``: names are read from the transfer's top;
    the id falls back to a valid dc.identifier; rights and organisation come from the options."""
    transfer = tmp_path / "transfer"
    items(transfer / "objects")
    (transfer / "metadata").mkdir()
    csv_file = transfer / "metadata" / "metadata.csv"
    csv_file.write_text("filename,dc.title,dc.identifier,dcterms.provenance,dcterms.issued\n"
                        "objects/letter.txt,A letter,urn:strongroom:record:letter-86,Given by X,1986-06\n"
                        "objects/scans/,Scans,not an id!,,\n", encoding="utf-8")
    code, out, err = strongroom(capsys, "records", "import", csv_file, "--rights-uri", UND,
                                "--source-organization", "Archive")
    assert code == 0, err
    assert out.splitlines()[-1].endswith(f"next: strongroom ingest --records {transfer}")
    letter = load_record(transfer / "objects" / "letter.txt.record.yaml").record
    assert letter.id == "letter-86" and letter.source_organization == "Archive"
    assert letter.provenance[0].value == "Given by X" and letter.issued is not None
    assert letter.issued.date == "1986-06"
    assert load_record(transfer / "objects" / "scans" / "record.yaml").record.id == "scans"
    assert strongroom(capsys, "records", "check", transfer)[0] == 0
