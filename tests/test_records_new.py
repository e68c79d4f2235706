"""``strongroom records new``: a record for files or a folder, through the real CLI.

The record states digests and formats computed from the files; a required field nobody gave is a
``<TODO: ...>`` value that ``records check`` names, one line per field; a record is never
overwritten and a payload outside the record's directory is refused.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import bagit
import pytest

from pipeline.cli import main
from pipeline.records import load_record

from .conftest import run_cli

UND = "http://rightsstatements.org/vocab/UND/1.0/"


def tiny_png() -> bytes:
    """A real 1x1 greyscale PNG (signature, IHDR, IDAT, IEND, each chunk with its CRC)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def item_folder(parent: Path) -> Path:
    """A folder with a text file and a PNG."""
    folder = parent / "letter 1986"
    folder.mkdir(parents=True)
    (folder / "letter.txt").write_text("Lima, June 1986.\n", encoding="ascii")
    (folder / "scan.png").write_bytes(tiny_png())
    return folder


def strongroom(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """The CLI in this process (as the console script runs it): exit code, stdout, stderr."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_folder_gets_a_record_that_passes_check_and_ingests(
        tmp_path: Path, prefect_api_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    code, out, err = strongroom(capsys, "records", "new", folder, "--id", "letter-1986",
                                "--title", "A letter from Lima", "--rights-uri", UND,
                                "--source-organization", "Strongroom test archive")
    assert code == 0, err
    record_file = folder / "record.yaml"
    assert out.startswith(f"wrote {record_file} (id letter-1986, 2 payload file(s))")
    assert "still to fill in" not in out
    text = record_file.read_text(encoding="utf-8")
    assert text.startswith("# Strongroom record written by `strongroom records new`")
    assert "<TODO" not in text

    record = load_record(record_file).record
    assert record.dc.title[0].value == "A letter from Lima"
    assert record.rights.statement[0].value == "Copyright Undetermined" and record.rights.uri == UND
    by_path = {p.path: p for p in record.payload}
    assert set(by_path) == {"letter.txt", "scan.png"}
    assert by_path["scan.png"].format == "image/png"
    assert by_path["letter.txt"].format == "text/plain; charset=us-ascii"
    for name, item in by_path.items():
        data = (folder / name).read_bytes()
        assert item.checksums == {"sha256": hashlib.sha256(data).hexdigest(),
                                  "sha512": hashlib.sha512(data).hexdigest()}

    assert strongroom(capsys, "records", "check", folder)[:2] == (0, "1 record(s) OK\n")
    bags = tmp_path / "bags"
    ingested = run_cli("ingest", "--records", folder, "--bags", bags,
                       env={"PREFECT_API_URL": prefect_api_url})
    assert ingested.returncode == 0, ingested.stderr
    bag = bags / "letter-1986.v1"
    bagit.Bag(str(bag)).validate()
    assert (bag / "data" / "scan.png").read_bytes() == tiny_png()
    assert (bag / "metadata" / "record.yaml").read_bytes() == record_file.read_bytes()


def test_required_fields_nobody_gave_are_marked_and_check_names_each(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    code, out, err = strongroom(capsys, "records", "new", folder)
    assert code == 0, err
    assert "still to fill in: dc.title, rights.statement, rights.uri, source_organization" in out
    record_file = folder / "record.yaml"
    text = record_file.read_text(encoding="utf-8")
    assert "# Still to fill in: dc.title, rights.statement, rights.uri, source_organization." in text
    assert "id: letter-1986" in text  # made from the folder's name

    code, out, _ = strongroom(capsys, "records", "check", folder)
    lines = out.splitlines()
    assert code == 1
    assert [line.split(": ")[1] for line in lines] == [
        "dc.title[0].value", "rights.statement[0].value", "rights.uri", "source_organization"]
    assert all(line.startswith(f"{record_file}: ") and "still to fill in" in line for line in lines)

    # Filling in exactly those values makes the record whole: nothing else was missing.
    for marker, value in (("<TODO: the item''s title>", "A letter"),
                          ("<TODO: the rights statement, in words>", "Copyright Undetermined"),
                          ("<TODO: a rights URI, e.g. http://rightsstatements.org/vocab/CNE/1.0/>", UND),
                          ("<TODO: the organisation that supplied the item>", "Archive")):
        assert f"'{marker}'" in text
        text = text.replace(f"'{marker}'", f"'{value}'")
    record_file.write_text(text, encoding="utf-8")
    assert strongroom(capsys, "records", "check", record_file)[0] == 0


def test_a_record_is_never_overwritten(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    record_file = folder / "record.yaml"
    record_file.write_text("# somebody's record\n", encoding="utf-8")
    code, out, err = strongroom(capsys, "records", "new", folder, "--title", "T")
    assert code == 1 and out == ""
    assert err.splitlines() == [f"strongroom: error: {record_file}: a record already exists here "
                                "(never overwritten)"]
    assert record_file.read_text(encoding="utf-8") == "# somebody's record\n"
    assert sorted(p.name for p in folder.iterdir()) == ["letter.txt", "record.yaml", "scan.png"]


def test_a_file_gets_its_own_record_file_and_a_payload_outside_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    text_file = folder / "letter.txt"
    code, out, err = strongroom(capsys, "records", "new", text_file, "--title", "T",
                                "--rights-uri", UND, "--source-organization", "O")
    assert code == 0, err
    record = load_record(folder / "letter.txt.record.yaml").record
    assert record.id == "letter" and [p.path for p in record.payload] == ["letter.txt"]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = strongroom(capsys, "records", "new", text_file, "--out", elsewhere / "record.yaml")
    assert code == 1
    assert len(err.splitlines()) == 1 and "outside the record's directory" in err
    assert not (elsewhere / "record.yaml").exists()


def test_a_bad_value_names_its_option_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    code, _, err = strongroom(capsys, "records", "new", folder, "--date", "1986-13")
    assert code == 2
    assert err.splitlines() == ["strongroom: error: --date: invalid date '1986-13'"]
    assert not (folder / "record.yaml").exists()
    assert [p for p in folder.iterdir() if p.name.startswith(".")] == []  # no partial file left


def test_a_symlink_in_the_folder_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = item_folder(tmp_path)
    (folder / "link.txt").symlink_to(folder / "letter.txt")
    code, _, err = strongroom(capsys, "records", "new", folder, "--title", "T")
    assert code == 1
    assert err.splitlines() == [f"strongroom: error: {folder / 'link.txt'}: is a symlink (refused: "
                                "the archive stores files, not links)"]
    assert not (folder / "record.yaml").exists()


def test_a_record_that_is_not_utf8_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record_file = tmp_path / "x.record.yaml"
    raw = b"\xef\xbb\xbfid: x\ndc:\n  title: caf\xe9\n"  # a BOM, then Latin-1
    record_file.write_bytes(raw)
    code, out, _ = strongroom(capsys, "records", "check", record_file)
    assert code == 1
    offset = raw.index(b"\xe9")  # counted in the file, the BOM included
    assert out.splitlines() == [f"{record_file}:3: not UTF-8 (byte {offset})"]
