"""Audit runs: evidence in the ledger, rolling scope, reports, the CLI as a user runs it, other copies."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from lxml import etree

from pipeline.audit import AuditOptions, parse_duration, register_bag, run_audit
from pipeline.audit.report import artifact_rows, to_html
from pipeline.errors import UsageError
from pipeline.ledger import Ledger

MakeBag = Callable[..., Path]
RunCli = Callable[..., "object"]
SAFE = etree.XMLParser(resolve_entities=False, no_network=True)
PREMIS = "{http://www.loc.gov/premis/v3}"


@pytest.fixture
def bags(tmp_path: Path, make_bag: MakeBag) -> Path:
    """Four small bags, registered in the SQLite ledger of their bags directory."""
    for i in range(4):
        make_bag(f"rec{i}", files={"text.txt": f"bag {i}\n".encode() * (i + 1), "b/c.bin": bytes([i]) * 100})
    bags_dir = tmp_path / "bags"
    with Ledger.open(bags_dir=bags_dir) as ledger:
        for i in range(4):
            register_bag(ledger, bags_dir / f"rec{i}.v1", origin="ingest")
    return bags_dir


def _tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    return {p.relative_to(root).as_posix(): (p.stat().st_mtime_ns, p.stat().st_size,
                                             hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(root.rglob("*")) if p.is_file() and not p.name.startswith(".strongroom-ledger")}


def test_every_check_appends_fixity_events_with_expected_and_found_digests(bags: Path) -> None:
    (bags / "rec1.v1/data/text.txt").write_bytes(b"tampered\n")
    with Ledger.open(bags_dir=bags) as ledger:
        report = run_audit(ledger)
        files = ledger.files("rec1.v1")
        fix = [e for e in ledger.events("rec1.v1") if e.event_type == "fix"]
    assert len(fix) == len(files)  # one event per file, like APTrust
    failed = [e for e in fix if e.outcome == "fai"]
    assert [e.object_ids for e in failed] == [("data/text.txt",)]
    detail = failed[0].outcome_detail or ""
    assert "AUD004" in detail and files["data/text.txt"].digests["sha256"] in detail
    assert hashlib.sha256(b"tampered\n").hexdigest() in detail
    ok = next(e for e in fix if e.object_ids == ("data/b/c.bin",))
    assert ok.outcome == "suc" and f"expected {files['data/b/c.bin'].digests['sha512']}" in (ok.outcome_detail or "")
    assert all(e.agent_ids for e in fix) and report.run_id in (fix[0].detail or "")


def test_the_audit_never_writes_into_a_bag(bags: Path) -> None:
    (bags / "rec2.v1/data/extra.txt").write_text("an extra file")
    before = _tree_state(bags)
    with Ledger.open(bags_dir=bags) as ledger:
        assert run_audit(ledger).exit_code == 1
    assert _tree_state(bags) == before


def test_older_than_audits_only_what_was_not_verified_within_that_time_oldest_first(bags: Path) -> None:
    with Ledger.open(bags_dir=bags) as ledger:
        first = run_audit(ledger, AuditOptions(limit=2))
        assert len(first.bags) == 2
        second = run_audit(ledger, AuditOptions(older_than=parse_duration("90d")))
        # Only the two never checked are due; the oldest (never checked) come first.
        assert {b.name for b in second.bags} == {f"rec{i}.v1" for i in range(4)} - {b.name for b in first.bags}
        assert run_audit(ledger, AuditOptions(older_than=parse_duration("90d"))).bags == []
        third = run_audit(ledger, AuditOptions(older_than=parse_duration("0s"), limit=1))
        assert [b.name for b in third.bags] == [first.bags[0].name]  # checked longest ago


def test_max_bytes_bounds_each_run_and_bounded_runs_cover_the_collection(bags: Path) -> None:
    with Ledger.open(bags_dir=bags) as ledger:
        sizes = {b.name: b.total_bytes for b in ledger.bags()}
        first = run_audit(ledger, AuditOptions(max_bytes=1))
        assert len(first.bags) == 1  # a budget smaller than any bag still checks one: nothing starves
        budget = 2 * max(sizes.values())
        runs = [run_audit(ledger, AuditOptions(older_than=parse_duration("1h"), max_bytes=budget))
                for _ in range(3)]
    assert [len(r.bags) for r in runs] == [2, 1, 0]
    assert all(sum(sizes[b.name] for b in r.bags) <= budget for r in runs)
    covered = [b.name for r in runs for b in r.bags]
    assert sorted(covered) == sorted(set(sizes) - {first.bags[0].name})


def test_due_bytes_is_what_a_run_would_read_within_its_limit_and_budget(bags: Path) -> None:
    from pipeline.audit import due_bytes

    with Ledger.open(bags_dir=bags) as ledger:
        sizes = sorted(b.total_bytes for b in ledger.bags())
        assert due_bytes(ledger, AuditOptions()) == sum(sizes)
        assert due_bytes(ledger, AuditOptions(limit=1)) in sizes
        assert due_bytes(ledger, AuditOptions(max_bytes=1)) in sizes  # at least one bag, as a run does
        checked = run_audit(ledger, AuditOptions(max_bytes=1))
        assert due_bytes(ledger, AuditOptions(older_than=parse_duration("1h"))) == sum(sizes) - sum(
            b.bytes_read for b in checked.bags)


def test_json_html_and_artifact_rows_name_every_damaged_file(bags: Path) -> None:
    (bags / "rec3.v1/data/b/c.bin").unlink()
    with Ledger.open(bags_dir=bags) as ledger:
        report = run_audit(ledger)
    page = to_html(report)
    assert "AUD002" in page and "data/b/c.bin" in page and "<script" not in page and "http" not in page.split(
        "<body>")[1].replace(report.ledger, "")
    rows = artifact_rows(report)
    assert [(r["bag"], r["path"], r["code"]) for r in rows[:-1]] == [("rec3.v1", "data/b/c.bin", "AUD002")]
    assert rows[-1]["bag"] == "(summary)" and "1 DAMAGED" in rows[-1]["message"]


def test_cli_audit_exit_codes_and_reports(bags: Path, tmp_path: Path, cli: RunCli) -> None:
    clean = cli("audit", "--bags", bags)
    assert clean.returncode == 0, clean.stderr  # type: ignore[attr-defined]
    assert "audited 4 bag(s)" in clean.stdout and "all intact" in clean.stdout  # type: ignore[attr-defined]
    (bags / "rec0.v1/bag-info.txt").write_text("Contact-Name: someone\n")
    damaged = cli("audit", "--bags", bags, "--json", tmp_path / "r.json", "--html", tmp_path / "r.html")
    assert damaged.returncode == 1  # type: ignore[attr-defined]
    assert "AUD005 changed manifest or tag file: bag-info.txt" in damaged.stdout  # type: ignore[attr-defined]
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["bags_damaged"] == 1 and data["summary"]["findings"] == {"AUD005": 1}
    assert "<html" in (tmp_path / "r.html").read_text()
    on_stdout = cli("audit", "--bags", bags, "--json")
    assert json.loads(on_stdout.stdout)["summary"]["bags_checked"] == 4  # type: ignore[attr-defined]


@pytest.mark.parametrize("args, message", [
    (("--older-than", "ninety days"), "not a duration"),
    (("--limit", "0"), "--limit must be at least 1"),
    (("--max-bytes", "lots"), "not a size"),
    (("--bags", "/nonexistent/bags"), "bags directory does not exist"),
    (("--batch", "0"), "--batch must be at least 1"),
])
def test_audit_usage_errors_are_one_line_and_exit_2(args: tuple[str, ...], message: str, bags: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    assert main(["audit", "--bags", str(bags), *args]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: ") and message in lines[0]


def test_a_usage_error_from_the_installed_command_is_one_line(bags: Path, cli: RunCli) -> None:
    result = cli("audit", "--bags", bags, "--older-than", "soon")
    assert result.returncode == 2  # type: ignore[attr-defined]
    assert result.stderr.strip().splitlines() == [  # type: ignore[attr-defined]
        "strongroom: error: 'soon': not a duration (use a number and s, m, h, d or w, e.g. 90d)"]


def test_cli_register_then_events_exports_the_premis_history(tmp_path: Path, cli: RunCli,
                                                             make_bag: MakeBag) -> None:
    bag = make_bag("foreign")
    registered = cli("register", bag, "--bags", tmp_path / "bags")
    assert registered.returncode == 0 and "from register" in registered.stdout  # type: ignore[attr-defined]
    assert cli("audit", "--bags", tmp_path / "bags").returncode == 0  # type: ignore[attr-defined]
    exported = cli("events", "foreign.v1", "--bags", tmp_path / "bags", "-o", tmp_path / "events.xml")
    assert exported.returncode == 0, exported.stderr  # type: ignore[attr-defined]
    root = etree.fromstring((tmp_path / "events.xml").read_bytes(), SAFE)
    types = [e.findtext(f"{PREMIS}eventType") for e in root.iter(f"{PREMIS}event")]
    assert types and set(types) == {"fixity check"}
    missing = cli("events", "nope.v1", "--bags", tmp_path / "bags")
    assert missing.returncode == 1 and "nope.v1: not registered" in missing.stderr  # type: ignore[attr-defined]


def test_cli_register_refuses_what_is_not_a_bag(tmp_path: Path, cli: RunCli) -> None:
    (tmp_path / "bags").mkdir()
    result = cli("register", tmp_path / "absent", "--bags", tmp_path / "bags")
    assert result.returncode == 2 and "no such bag directory" in result.stderr  # type: ignore[attr-defined]


def test_parse_duration_rejects_nonsense() -> None:
    assert parse_duration("90d").days == 90 and parse_duration("12h").total_seconds() == 43200
    with pytest.raises(UsageError):
        parse_duration("-3d")


def test_a_deposited_copy_is_audited_where_it_lives(bags: Path, tmp_path: Path) -> None:
    from pipeline.deposit import deposit_bag

    store = tmp_path / "ocfl-root"
    with Ledger.open(bags_dir=bags) as ledger:
        result = deposit_bag(bags / "rec1.v1", f"ocfl://{store}?create=1", ledger=ledger)
        assert result.location in ledger.locations("rec1.v1")
        assert run_audit(ledger).exit_code == 0
        held = next(p for p in store.rglob("c.bin") if p.is_file())
        os.truncate(held, 5)
        report = run_audit(ledger)
    damaged = {(c.location, f.code, f.path) for b in report.bags for c in b.checks for f in c.findings}
    assert damaged == {(result.location, "AUD004", "data/b/c.bin")}


@pytest.mark.parametrize("make_irregular, kind", [
    (lambda bag: os.mkfifo(bag / "extra-tag.txt"), "a FIFO"),
    (lambda bag: os.mkfifo(bag / "manifest-sha256.txt.fifo") or
     os.replace(bag / "manifest-sha256.txt.fifo", bag / "manifest-sha256.txt"), "a FIFO"),
    (lambda bag: (bag / "data/text.txt").unlink() or (bag / "data/text.txt").symlink_to("/etc/hostname"),
     "a symbolic link"),
])
def test_cli_register_refuses_a_fifo_or_symlink_in_the_bag_in_one_line(
        make_irregular: Callable[[Path], object], kind: str, tmp_path: Path, cli: RunCli,
        make_bag: MakeBag) -> None:
    bag = make_bag("odd")
    make_irregular(bag)
    result = cli("register", bag, "--bags", tmp_path / "bags", timeout=60)  # a FIFO read would hang
    assert result.returncode == 1  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and lines[0].startswith("strongroom: error: ") and kind in lines[0]
    assert "Errno" not in lines[0]


@pytest.mark.parametrize("command", ["audit-json", "audit-html", "events"])
@pytest.mark.parametrize("where", ["a directory", "below a regular file"])
def test_an_unwritable_report_or_export_is_a_usage_error_before_any_work(
        command: str, where: str, bags: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    (tmp_path / "afile").write_text("not a directory\n")
    target = str(tmp_path if where == "a directory" else tmp_path / "afile" / "out")
    args = {"audit-json": ["audit", "--json", target], "audit-html": ["audit", "--html", target],
            "events": ["events", "rec0.v1", "-o", target]}[command]
    assert main([*args, "--bags", str(bags)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"strongroom: error: {target}: cannot write here")
    with Ledger.open(bags_dir=bags) as ledger:  # refused before the audit, not after it
        assert all(b.last_checked_at is None for b in ledger.bags())
    assert (tmp_path / "afile").read_text() == "not a directory\n"


@pytest.mark.parametrize("args, message", [
    (("register", "BAG", "--ledger", "garbage://x"), "ledger URL garbage://x: not a database URL"),
    (("register", "BAG", "--ledger", "garbage://user:Hush77@host/x"), "not a database URL"),
    (("audit", "--ledger", "not a url at all"), "not a database URL"),
    (("audit", "--bags", "AFILE"), "AFILE: is not a directory"),
    (("register", "AFILE"), "AFILE: not a bag (not a directory)"),
])
def test_a_bad_ledger_url_or_a_file_for_a_directory_is_one_usage_line(
        args: tuple[str, ...], message: str, bags: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    afile = tmp_path / "afile"
    afile.write_text("a file\n")
    argv = [str(bags / "rec0.v1") if a == "BAG" else str(afile) if a == "AFILE" else a for a in args]
    assert main(argv if "--bags" in argv else [*argv, "--bags", str(bags)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message.replace("AFILE", str(afile)) in lines[0]
    assert "Hush77" not in lines[0]


def test_the_text_report_escapes_control_characters_in_file_names(bags: Path) -> None:
    from pipeline.audit.report import to_text

    (bags / "rec1.v1/data/evil\x1b[2J\nAUD000 all fine: x.txt").write_text("intruder\n")
    with Ledger.open(bags_dir=bags) as ledger:
        text = to_text(run_audit(ledger, AuditOptions(older_than=None)))
    assert "\x1b" not in text
    assert "data/evil\\x1b[2J\\nAUD000 all fine: x.txt" in text  # escaped, still recognisable
    assert not any(line.startswith("AUD000") for line in text.splitlines())  # no forged report line


def test_batches_hold_at_most_batch_size_bags_and_batch_bytes(bags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each batch is one call of Ledger.record_checks (one transaction): watch the batches go by.
    seen: list[list[str]] = []
    record = Ledger.record_checks

    def spy(self: Ledger, run_id: str, checked: list[object]) -> None:
        seen.append([c.name for c in checked])  # type: ignore[attr-defined]
        record(self, run_id, checked)  # type: ignore[arg-type]

    monkeypatch.setattr(Ledger, "record_checks", spy)
    with Ledger.open(bags_dir=bags) as ledger:
        run_audit(ledger, AuditOptions(batch_size=3))
        by_count = list(seen)
        seen.clear()
        run_audit(ledger, AuditOptions(batch_size=3, batch_bytes=1))  # every bag is larger than 1 byte
        by_bytes = list(seen)
    assert [len(b) for b in by_count] == [3, 1]
    assert [len(b) for b in by_bytes] == [1, 1, 1, 1]  # a batch always takes one bag, however large
    assert sorted(n for b in by_count for n in b) == [f"rec{i}.v1" for i in range(4)]


def test_a_crash_mid_batch_records_and_reports_none_of_it_and_the_next_run_checks_it(
        bags: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fixity check is reported only once it is durable in the ledger; a batch cut short by a
    # crash leaves no bag marked checked, and its claims lapse so that the next run checks it.
    import time

    import pipeline.audit.run as audit

    calls = [0]
    check = audit.check_location

    def crashing(*args: object, **kwargs: object) -> object:
        calls[0] += 1
        if calls[0] == 4:  # the second bag of the second batch
            raise RuntimeError("power cut")
        return check(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(audit, "check_location", crashing)
    reported: list[str] = []
    with Ledger.open(bags_dir=bags) as ledger:
        with pytest.raises(RuntimeError, match="power cut"):
            run_audit(ledger, AuditOptions(batch_size=2, lease_seconds=0.5), on_bag=lambda b: reported.append(b.name))
        checked = {b.name for b in ledger.bags() if b.last_checked_at is not None}
        with_events = {f"rec{i}.v1" for i in range(4)
                       if any(e.event_type == "fix" for e in ledger.events(f"rec{i}.v1"))}
        assert checked == with_events == set(reported) and len(reported) == 2  # the first batch only
        monkeypatch.setattr(audit, "check_location", check)
        time.sleep(0.6)  # the crashed run's claims lapse
        again = run_audit(ledger, AuditOptions(older_than=parse_duration("1h")))
    assert {b.name for b in again.bags} == {f"rec{i}.v1" for i in range(4)} - checked


@pytest.mark.parametrize("size, batch_bytes", [(0, 1), (1, 0), (10_001, 1)])
def test_an_impossible_batch_is_a_usage_error(size: int, batch_bytes: int) -> None:
    with pytest.raises(UsageError, match="audit batch holds"):
        AuditOptions(batch_size=size, batch_bytes=batch_bytes)


def test_audit_help_states_the_batch_size_the_library_uses() -> None:
    from pipeline.audit.run import DEFAULT_BATCH_SIZE
    from tests.conftest import run_cli

    done = run_cli("audit", "--help", env={"COLUMNS": "200"})
    assert done.returncode == 0
    assert f"(default {DEFAULT_BATCH_SIZE}, fewer" in " ".join(done.stdout.split())
