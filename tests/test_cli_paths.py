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


def test_ingest_and_records_check_agree_on_an_empty_records_directory(tmp_path: Path, cli: Any) -> None:
    empty, bags = tmp_path / "records", tmp_path / "bags"
    empty.mkdir()
    ingested = cli("ingest", "--records", empty, "--bags", bags)
    checked = cli("records", "check", empty)
    assert ingested.returncode == checked.returncode == 1
    assert ingested.stderr.strip() == f"strongroom: error: no records found under {empty}"
    assert f"no records found under {empty}" in checked.stdout
    assert not bags.exists()


def test_a_record_directory_stands_for_its_record_yaml(tmp_path: Path, records_copy: Path, cli: Any,
                                                       prefect_api_url: str) -> None:
    record_dir = records_copy / "icg-peru-1986"
    checked = cli("records", "check", record_dir)
    assert checked.returncode == 0 and "1 record(s) OK" in checked.stdout
    out = cli("ingest", record_dir, "--bags", tmp_path / "bags", env={"PREFECT_API_URL": prefect_api_url})
    assert out.returncode == 0, out.stderr
    assert "bagged" in out.stdout and (tmp_path / "bags" / "icg-peru-1986.v1").is_dir()


def test_show_of_a_missing_bag_is_exit_2(tmp_path: Path, cli: Any) -> None:
    result = cli("show", tmp_path / "nonexistent")
    assert result.returncode == 2
    assert result.stderr.strip() == f"strongroom: error: {tmp_path / 'nonexistent'}: no such bag directory"


def test_bag_into_a_missing_directory_is_exit_2_and_creates_nothing(tmp_path: Path, cli: Any) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a\n")
    result = cli("bag", source, tmp_path / "missing" / "dest")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'missing'}: no such directory" in lines[0]
    assert not (tmp_path / "missing").exists()


def test_a_rerun_with_nothing_to_do_starts_no_prefect(tmp_path: Path, records_copy: Path, cli: Any,
                                                      prefect_api_url: str) -> None:
    bags = tmp_path / "bags"
    first = cli("ingest", "--records", records_copy, "--bags", bags, env={"PREFECT_API_URL": prefect_api_url})
    assert first.returncode == 0, first.stderr
    # No Prefect server listens on port 9: any flow run would fail to reach it.
    again = cli("ingest", "--records", records_copy, "--bags", bags, env={"PREFECT_API_URL": "http://127.0.0.1:9/api"})
    assert again.returncode == 0, again.stderr
    assert "unchanged  " in again.stdout and "0 bagged, 1 unchanged, 0 failed" in again.stdout
    # A record not yet registered (ledger removed) needs the flow: the unreachable server is reported.
    from pipeline.ledger import SQLITE_NAME

    (bags / SQLITE_NAME).unlink()
    needs_flow = cli("ingest", "--records", records_copy, "--bags", bags,
                     env={"PREFECT_API_URL": "http://127.0.0.1:9/api"}, timeout=120)
    assert needs_flow.returncode != 0


def test_every_command_has_a_description_and_shows_its_defaults(cli: Any) -> None:
    for command in (["bag"], ["show"], ["register"], ["records", "schema"]):
        shown = cli(*command, "--help")
        assert shown.returncode == 0
        paragraphs = shown.stdout.split("\n\n")
        assert not paragraphs[1].startswith("positional") and not paragraphs[1].startswith("options"), command
    assert "(default: records)" in cli("ingest", "--help").stdout


def test_an_unknown_option_prints_the_commands_usage(cli: Any) -> None:
    result = cli("show", "--bogus", "x")
    assert result.returncode == 2
    assert result.stderr.startswith("usage: strongroom show ")
    assert "unrecognized arguments: --bogus" in result.stderr


def test_a_huge_title_is_refused_in_one_line_naming_file_and_field(records_copy: Path, cli: Any) -> None:
    record = records_copy / "icg-peru-1986" / "record.yaml"
    text = record.read_text(encoding="utf-8")
    old = "Large-scale Massacre of Prisoners in Peru, 1986 - ICG"
    assert old in text
    record.write_text(text.replace(old, "T" * 3_000_000, 1), encoding="utf-8")
    result = cli("records", "check", record)
    assert result.returncode == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"{record}: dc.title: 3,000,000 characters: at most 2,000")


def test_a_payload_without_a_stated_digest_is_noted_at_ingest(tmp_path: Path, records_copy: Path, cli: Any,
                                                              prefect_api_url: str) -> None:
    import re

    record = records_copy / "icg-peru-1986" / "record.yaml"
    text = record.read_text(encoding="utf-8")
    stripped = re.sub(r"\n    checksums:\n(      .*\n)+", "\n", text)
    assert stripped != text
    record.write_text(stripped, encoding="utf-8")
    out = cli("ingest", record, "--bags", tmp_path / "bags", env={"PREFECT_API_URL": prefect_api_url})
    assert out.returncode == 0, out.stderr
    assert (f"note: {record}: no digest stated for '000_5b99444169de3d3a.txt': fixity starts at ingest"
            in out.stdout.splitlines())
