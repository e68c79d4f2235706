"""Record files: strict YAML loading, one clear line per problem, discovery, checks, the CLI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import RecordError, UsageError
from pipeline.models import Record
from pipeline.records import (
    check_records,
    discover_records,
    dump_record,
    load_record,
    parse_record,
    payload_problem,
)
from tests.conftest import REPO, run_cli

DATA = REPO / "tests" / "data" / "records"
BAD = DATA / "bad"

# Each bad fixture and the problem line load_record must give for it.
BAD_CASES = [
    ("malformed-yaml", 5, "YAML syntax error: while parsing a flow sequence"),
    ("unknown-field", None, "dc: unknown field 'titel' (line 3)"),
    ("missing-title", None, "dc: 'title' is required (line 3)"),
    ("missing-id", None, "'id' is required"),
    ("missing-source-organization", None, "'source_organization' is required"),
    ("invalid-date", None, "dc.date[0]: invalid date '2006-13-45' (line 4)"),
    ("invalid-related-date", None, "related[0].issued.date: invalid date '1986-13' (line 7)"),
    ("bad-checksum-hex", None, "payload[0].checksums: sha256 must be 64 hex digits"),
    ("bad-checksum-algorithm", None, "payload[0].checksums: unsupported algorithm 'SHA-256'"),
    ("duplicate-key", 8, "YAML syntax error: duplicate key 'id' (first on line 1)"),
    ("yaml-alias", 4, "YAML syntax error: aliases (*name) are not allowed in records"),
    ("not-a-mapping", 1, "a record must be a YAML mapping, not a list"),
    ("multiple-documents", 10, "YAML syntax error: expected a single document in the stream"),
    ("empty", None, "the record is empty"),
    ("unknown-link-target", None, "related[0].links[0].target: unknown resource 'the-original'"),
    ("unsafe-payload-path", None, "payload[0].path: unsafe payload path '../hello.txt'"),
    ("bad-id", None, "id: invalid identifier '.hidden/bag'"),
    ("bad-language", None, "dc.title[0].lang: invalid language tag 'english!'"),
]


@pytest.mark.parametrize("name, line, expected", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_record_refused_with_its_problem(name: str, line: int | None, expected: str) -> None:
    path = BAD / f"{name}.record.yaml"
    with pytest.raises(RecordError) as info:
        load_record(path)
    assert info.value.path == path
    assert info.value.line == line
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems
    assert str(info.value).startswith(f"{path}{f':{line}' if line else ''}: ")
    assert "\n" not in str(info.value)


def test_good_record_loads_with_its_exact_bytes() -> None:
    path = DATA / "good" / "minimal.record.yaml"
    loaded = load_record(path)
    assert loaded.raw == path.read_bytes()
    assert loaded.root == path.parent
    assert loaded.record.id == "minimal-1"


def test_plain_scalars_stay_strings() -> None:
    # Unquoted dates, numbers and yes/no must not turn into date/int/bool objects.
    record = parse_record(
        "id: 2006\ndc:\n  title: no\n  date: 2006-01-12\n  identifier: 12345\n"
        "rights: {statement: yes, uri: 'http://x.example/'}\nsource_organization: on\n"
        "payload: [{path: '1.txt'}]\n")
    assert record.id == "2006"
    assert record.dc.title[0].value == "no"
    assert record.dc.date == ("2006-01-12",)
    assert record.dc.identifier == ("12345",)
    assert record.source_organization == "on"


def test_non_utf8_record_refused_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "x.record.yaml"
    path.write_bytes(b"id: x\ndc:\n  title: caf\xe9\n")
    with pytest.raises(RecordError, match="not UTF-8") as info:
        load_record(path)
    assert info.value.line == 3


def test_unreadable_record_is_a_record_error(tmp_path: Path) -> None:
    with pytest.raises(RecordError, match="cannot read the record"):
        load_record(tmp_path / "absent.record.yaml")


# -- round trip ---------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30).filter(
    lambda s: s.strip() != "")
_lang = st.sampled_from([None, "en", "es", "fr-CA"])
_lang_text = st.builds(lambda v, lang: {"value": v, "lang": lang} if lang else v, _text, _lang)
_date = st.sampled_from(["1986", "1986-06", "2006-01-12", "1986-06~", "198X", "1985/1986",
                         "2006-01-12T10:20:30Z"])
_ident = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_segment = _text.filter(lambda s: "/" not in s and "\\" not in s and "\x00" not in s
                        and s not in (".", "..") and not s.startswith("~"))


@st.composite
def records(draw: st.DrawFn) -> Record:
    ids = draw(st.lists(_ident, min_size=0, max_size=3, unique=True))
    related = [{
        "id": rid, "label": draw(_text), "title": draw(st.lists(_lang_text, max_size=2)),
        "language": draw(st.lists(st.sampled_from(["en", "es"]), max_size=2)),
        "issued": draw(st.none() | st.builds(lambda w, d: {"as_written": w, "date": d}, _text,
                                             _date)),
        "part_of": draw(st.none() | st.builds(lambda t, i: {"title": t, "issue": i},
                                              _lang_text, st.none() | _text)),
        "relation": draw(st.lists(st.sampled_from(["source", "isVersionOf", "isPartOf"]),
                                  min_size=1, max_size=2, unique=True)),
        "links": [{"relation": "source", "target": t} for t in ids if t != rid][:1],
    } for rid in ids]
    data = {
        "id": draw(_ident),
        "dc": {"title": draw(st.lists(_lang_text, min_size=1, max_size=3)),
               "subject": draw(st.lists(_lang_text, max_size=3)),
               "date": draw(st.lists(_date, max_size=2)),
               "language": draw(st.lists(st.sampled_from(["en", "es", "de"]), max_size=2))},
        "issued": draw(st.none() | st.builds(lambda w: {"as_written": w}, _text)),
        "related": related,
        "provenance": draw(st.lists(_lang_text, max_size=2)),
        "rights": {"statement": draw(_lang_text), "uri": "http://rightsstatements.org/vocab/UND/1.0/"},
        "source_organization": draw(_text),
        "payload": [{"path": p, "checksums": {"sha256": draw(st.from_regex(r"[0-9a-f]{64}",
                                                                           fullmatch=True))}}
                    for p in draw(st.lists(_segment, min_size=1, max_size=3, unique=True))],
    }
    return Record.model_validate(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_record_yaml_record_round_trip(record: Record) -> None:
    assert parse_record(dump_record(record)) == record


def test_seed_record_round_trips() -> None:
    record = load_record(REPO / "records" / "icg-peru-1986" / "record.yaml").record
    assert parse_record(dump_record(record)) == record


# -- discovery and checks -----------------------------------------------------------------------


def test_discover_records_sorted_and_skips_dot_directories(tmp_path: Path) -> None:
    for rel in ["b/record.yaml", "a/x.record.yaml", "a/notes.yaml", ".staging/record.yaml",
                "c/.git/y.record.yaml", "c/deep/er/record.yaml", "record.yaml.bak"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("id: x\n")
    assert discover_records(tmp_path) == [tmp_path / "a/x.record.yaml", tmp_path / "b/record.yaml",
                                          tmp_path / "c/deep/er/record.yaml"]


def test_discover_records_needs_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        discover_records(tmp_path / "missing")


def test_check_records_reports_duplicate_ids_naming_both_files() -> None:
    a, b = DATA / "duplicate-ids" / "a.record.yaml", DATA / "duplicate-ids" / "b.record.yaml"
    assert check_records([a, b]) == [f"{b}: duplicate id 'same-id' (also used by {a})"]


def test_check_records_reports_missing_payload_without_reading() -> None:
    path = BAD / "missing-payload.record.yaml"
    assert check_records([path]) == [f"{path}: payload 'not-there.txt' not found"]


def test_check_records_every_problem_starts_with_its_file() -> None:
    paths = sorted(BAD.glob("*.record.yaml"))
    lines = check_records(paths)
    assert len(lines) >= len(paths)
    assert all(any(line.startswith(f"{p}:") for p in paths) for line in lines)
    assert {line.split(":")[0] for line in lines} == {str(p) for p in paths}


def test_payload_problem_refuses_symlinks_and_special_files(tmp_path: Path) -> None:
    (tmp_path / "real.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    os.symlink(tmp_path / "real.txt", tmp_path / "link.txt")
    os.symlink(tmp_path / "dir", tmp_path / "linkdir")
    (tmp_path / "dir" / "f.txt").write_text("y")
    assert payload_problem(tmp_path, "real.txt") is None
    assert payload_problem(tmp_path, "dir/f.txt") is None
    assert "symlink" in (payload_problem(tmp_path, "link.txt") or "")
    assert "symlink" in (payload_problem(tmp_path, "linkdir/f.txt") or "")
    assert payload_problem(tmp_path, "dir") == "is not a regular file"
    assert payload_problem(tmp_path, "absent.txt") == "not found"


# -- the CLI, as a user runs it -----------------------------------------------------------------


def test_cli_records_check_default_is_records_dir() -> None:
    result = run_cli("records", "check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 record(s) OK"


def test_cli_records_check_good_file() -> None:
    result = run_cli("records", "check", DATA / "good" / "minimal.record.yaml")
    assert (result.returncode, result.stdout.strip()) == (0, "1 record(s) OK")


def test_cli_records_check_bad_prints_every_problem_file_first(tmp_path: Path) -> None:
    shutil.copytree(BAD, tmp_path / "bad")
    result = run_cli("records", "check", "bad", cwd=tmp_path)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert "bad/invalid-date.record.yaml: dc.date[0]: invalid date '2006-13-45' (line 4)" in lines
    assert "bad/missing-payload.record.yaml: payload 'not-there.txt' not found" in lines
    assert any(line.startswith("bad/malformed-yaml.record.yaml:5: YAML syntax error") for line in lines)
    assert all(line.startswith("bad/") for line in lines)
    assert "Traceback" not in result.stderr


def test_cli_records_check_duplicate_ids() -> None:
    result = run_cli("records", "check", DATA / "duplicate-ids")
    assert result.returncode == 1
    assert "duplicate id 'same-id'" in result.stdout


def test_cli_records_check_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("records", "check", tmp_path / "nope")
    assert result.returncode == 2
    assert result.stderr.strip() == f"strongroom: error: {tmp_path / 'nope'}: no such file or directory"


def test_cli_records_check_directory_without_records_fails(tmp_path: Path) -> None:
    result = run_cli("records", "check", tmp_path)
    assert result.returncode == 1
    assert f"no records found under {tmp_path}" in result.stdout


def test_cli_records_schema_prints_the_schema() -> None:
    from pipeline.models import schema_text

    result = run_cli("records", "schema")
    assert result.returncode == 0
    assert result.stdout == schema_text()


@pytest.mark.timeout(20)
def test_a_record_that_is_a_fifo_is_a_problem_not_a_hang(tmp_path: Path) -> None:
    # `records check DIR` finds files by name; opening a FIFO named record.yaml would wait forever.
    os.mkfifo(tmp_path / "record.yaml")
    with pytest.raises(RecordError, match="not a regular file"):
        load_record(tmp_path / "record.yaml")
    assert check_records([tmp_path / "record.yaml"]) == [f"{tmp_path / 'record.yaml'}: not a regular file"]
