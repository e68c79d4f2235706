"""The fixity ledger, on SQLite and on the real PostgreSQL server (every test runs on both)."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest
import sqlalchemy as sa

from pipeline.bag.tagfiles import iter_manifest
from pipeline.bag.writer import STRONGROOM_PROFILE_ID
from pipeline.errors import BagInvalidError, LedgerError, UsageError
from pipeline.ledger import SQLITE_NAME, Ledger, display_url, utcnow
from pipeline.premis import PremisEvent, PremisObject, PremisRepresentation, parse_premis, strongroom_agent
from pipeline.audit import register_bag

MakeBag = Callable[..., Path]


def _event(event_type: str = "ing", outcome: str = "suc") -> PremisEvent:
    return PremisEvent(event_type=event_type, date_time=utcnow(), detail=f"test {event_type}",
                       outcome=outcome, object_ids=("data/text.txt",), agent_ids=(strongroom_agent().identifier,))


def _foreign_bag(tmp_path: Path, name: str = "foreign.v1") -> Path:
    """A bag made elsewhere (bagit-python, in place, on a private copy)."""
    bag = tmp_path / "elsewhere" / name
    (bag / "sub").mkdir(parents=True)
    (bag / "a.txt").write_text("made by another tool\n")
    (bag / "sub" / "b.bin").write_bytes(bytes(range(200)))
    bagit.make_bag(str(bag), {"External-Identifier": "foreign"}, checksums=["sha256", "sha512"])
    return bag


def test_open_migrates_to_head_and_reopening_changes_nothing(ledger_url: str) -> None:
    with Ledger.open(ledger_url) as ledger:
        with ledger.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0003"
            tables = set(sa.inspect(conn).get_table_names())
    assert {"bags", "files", "digests", "locations", "events", "audit_runs"} <= tables
    with Ledger.open(ledger_url) as again:
        assert again.bags() == []


def test_the_bags_are_indexed_in_the_order_audits_claim_them(ledger_url: str) -> None:
    # Claims ask for the first due bags by (last_checked_at, never checked first; name): with this
    # index a claim reads the rows it takes instead of sorting the whole table (migration 0003).
    with Ledger.open(ledger_url) as ledger:
        indexes = {i["name"]: i for i in sa.inspect(ledger.engine).get_indexes("bags")}
    assert indexes["ix_bags_due"]["column_names"] == ["last_checked_at", "name"]
    assert "ix_bags_last_checked_at" not in indexes  # replaced: the new index leads with the same column
    if ledger_url.startswith("postgresql"):
        assert indexes["ix_bags_due"]["column_sorting"] == {"last_checked_at": ("nulls_first",)}


def test_register_records_every_file_with_size_digests_location_origin_and_events(
        ledger_url: str, make_bag: MakeBag) -> None:
    bag = make_bag("rec", files={"text.txt": b"payload\n", "sub/two.bin": b"\x00\x01" * 50})
    events = [_event("ing"), _event("val")]
    with Ledger.open(ledger_url) as ledger:
        assert register_bag(ledger, bag, origin="ingest", events=events) == "rec.v1"
        ref, files = ledger.bag("rec.v1"), ledger.files("rec.v1")
        assert (ref.origin, ref.external_identifier, ref.profile) == ("ingest", "rec", STRONGROOM_PROFILE_ID)
        assert ledger.locations("rec.v1") == [bag.resolve().as_uri()]
        assert [e.identifier for e in ledger.events("rec.v1")] == [e.identifier for e in events]
    on_disk = sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file())
    assert sorted(files) == on_disk
    for alg in ("sha512", "sha256"):
        for path, digest in iter_manifest(bag / f"manifest-{alg}.txt"):
            assert files[path].digests[alg] == digest and files[path].kind == "payload"
    for path, ref_file in files.items():  # sizes, and tag digests hashed where no tag manifest lists them
        assert ref_file.size == (bag / path).stat().st_size
        assert ref_file.digests["sha256"] == hashlib.sha256((bag / path).read_bytes()).hexdigest()
    assert files["tagmanifest-sha256.txt"].source == "computed"
    assert files["bag-info.txt"].source == "manifest"


def test_registering_the_same_bag_again_adds_nothing(ledger_url: str, make_bag: MakeBag) -> None:
    bag = make_bag("rec")
    events = [_event()]
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest", events=events)
        register_bag(ledger, bag, origin="ingest", events=events)
        assert len(ledger.events("rec.v1")) == 1
        assert len(ledger.locations("rec.v1")) == 1
        assert len(ledger.bags()) == 1


def test_a_foreign_bag_is_verified_and_its_manifests_become_the_reference(ledger_url: str, tmp_path: Path) -> None:
    bag = _foreign_bag(tmp_path)
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="register")
        ref, files = ledger.bag("foreign.v1"), ledger.files("foreign.v1")
    assert ref.origin == "register"
    assert files["data/a.txt"].digests["sha256"] == hashlib.sha256(b"made by another tool\n").hexdigest()


def test_a_foreign_bag_that_disagrees_with_its_manifests_is_refused(ledger_url: str, tmp_path: Path) -> None:
    bag = _foreign_bag(tmp_path)
    (bag / "data" / "a.txt").write_text("changed before registration\n")
    with Ledger.open(ledger_url) as ledger:
        with pytest.raises(BagInvalidError, match="foreign.v1"):
            register_bag(ledger, bag, origin="register")
        assert ledger.bags() == []


def test_a_different_bag_under_a_registered_name_is_refused(ledger_url: str, make_bag: MakeBag,
                                                            tmp_path: Path) -> None:
    first = make_bag("rec")
    other = make_bag("rec", files={"text.txt": b"other content\n"}, bags=tmp_path / "other-bags")
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, first, origin="ingest")
        with pytest.raises(LedgerError, match="already registered with different payload"):
            register_bag(ledger, other, origin="register")


def test_locations_and_events_round_trip_in_order(ledger_url: str, make_bag: MakeBag) -> None:
    bag = make_bag("rec")
    rep = _event("rep")
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest", events=[_event("ing")])
        ledger.add_location("rec.v1", "s3://bucket/prefix/rec.v1")
        ledger.add_location("rec.v1", "s3://bucket/prefix/rec.v1")
        ledger.add_event("rec.v1", rep)
        assert ledger.locations("rec.v1") == [bag.resolve().as_uri(), "s3://bucket/prefix/rec.v1"]
        events = ledger.events("rec.v1")
        assert [e.event_type for e in events] == ["ing", "rep"]
        assert events[1] == rep
        with pytest.raises(LedgerError, match="nope.v1: not registered"):
            ledger.add_event("nope.v1", rep)


def _registered_with_runs(ledger: Ledger, make_bag: MakeBag, *, bags: int, runs: int) -> tuple[list[str], dt.datetime]:
    """Register bags rec0.v1, rec1.v1, ...; start audit runs; return them and a cut-off that makes every bag due."""
    for i in range(bags):
        register_bag(ledger, make_bag(f"rec{i}"), origin="ingest")
    return [ledger.start_run({}) for _ in range(runs)], utcnow() + dt.timedelta(seconds=1)


def test_claims_never_give_one_bag_to_two_runs_and_a_dead_claim_lapses(ledger_url: str,
                                                                       make_bag: MakeBag) -> None:
    with Ledger.open(ledger_url) as ledger:
        runs, since = _registered_with_runs(ledger, make_bag, bags=2, runs=3)
        first = ledger.claim_next(runs[0], not_checked_since=since, lease_seconds=0.5)
        second = ledger.claim_next(runs[1], not_checked_since=since, lease_seconds=60)
        assert first is not None and second is not None and first.name != second.name
        assert ledger.claim_next(runs[2], not_checked_since=since, lease_seconds=60) is None
        time.sleep(0.7)  # run 0 "died": its lease runs out, the bag becomes claimable again
        third = ledger.claim_next(runs[2], not_checked_since=since, lease_seconds=60)
        assert third is not None and third.name == first.name
        assert not ledger.renew_claim(first.name, runs[0], 60)  # the dead run lost its claim


def test_a_batch_claim_takes_the_due_bags_in_order_and_never_one_another_run_holds(ledger_url: str,
                                                                                  make_bag: MakeBag) -> None:
    with Ledger.open(ledger_url) as ledger:
        runs, since = _registered_with_runs(ledger, make_bag, bags=3, runs=3)
        assert ledger.due_sizes(not_checked_since=since, count=2) == [ledger.bag("rec0.v1").total_bytes,
                                                                       ledger.bag("rec1.v1").total_bytes]
        first = ledger.claim_batch(runs[0], not_checked_since=since, lease_seconds=60, count=2)
        second = ledger.claim_batch(runs[1], not_checked_since=since, lease_seconds=60, count=5)
        assert [b.name for b in first] == ["rec0.v1", "rec1.v1"]  # never checked: by name
        assert [b.name for b in second] == ["rec2.v1"]
        assert ledger.claim_batch(runs[2], not_checked_since=since, lease_seconds=60, count=5) == []
        assert ledger.renew_claims(["rec0.v1", "rec1.v1", "rec2.v1"], runs[0], 60) == 2  # only its own
        ledger.release_claims(["rec0.v1", "rec1.v1"], runs[0])
        assert [b.name for b in ledger.claim_batch(runs[2], not_checked_since=since, lease_seconds=60,
                                                   count=5)] == ["rec0.v1", "rec1.v1"]


def test_a_ledger_url_password_is_never_shown(tmp_path: Path) -> None:
    url = "postgresql://strongroom:s3cret-pw@127.0.0.1:1/nowhere"
    assert "s3cret-pw" not in display_url(url)
    with pytest.raises(LedgerError) as caught:
        Ledger.open(url)
    assert "s3cret-pw" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_url_comes_from_the_environment_then_the_bags_directory(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STRONGROOM_LEDGER", raising=False)
    with pytest.raises(UsageError, match="no ledger"):
        Ledger.open()
    bags = tmp_path / "bags"
    bags.mkdir()
    with Ledger.open(bags_dir=bags):
        assert (bags / SQLITE_NAME).is_file()
    elsewhere = tmp_path / "env.sqlite"
    monkeypatch.setenv("STRONGROOM_LEDGER", f"sqlite:///{elsewhere}")
    with Ledger.open(bags_dir=bags) as ledger:
        assert ledger.url.endswith("env.sqlite") and elsewhere.is_file()


def test_premis_export_holds_every_event_and_file(ledger_url: str, make_bag: MakeBag) -> None:
    bag = make_bag("rec")
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest", events=[_event("ing")])
        ledger.add_event("rec.v1", _event("rep"))
        objects, events, agents = parse_premis(ledger.premis_xml("rec.v1"))
        assert [e.identifier for e in events] == [e.identifier for e in ledger.events("rec.v1")]
        files = {o.identifier for o in objects if isinstance(o, PremisObject)}
        assert files == set(ledger.files("rec.v1"))
        assert [o.identifier for o in objects if isinstance(o, PremisRepresentation)] == ["rec.v1"]
        assert strongroom_agent().identifier in {a.identifier for a in agents}


def test_a_moved_bag_directory_is_registered_again_as_a_new_location(ledger_url: str, make_bag: MakeBag,
                                                                     tmp_path: Path) -> None:
    bag = make_bag("rec")
    copy = tmp_path / "copy" / "rec.v1"
    shutil.copytree(bag, copy)
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest")
        register_bag(ledger, copy, origin="ingest")
        assert ledger.locations("rec.v1") == [bag.resolve().as_uri(), copy.resolve().as_uri()]


def test_many_threads_open_a_fresh_ledger_and_register_bags_at_once(ledger_url: str, make_bag: MakeBag) -> None:
    """The ingest flow opens the ledger in each task, on a thread pool: a fresh ledger must survive that."""
    import threading

    bags = [make_bag(f"thread{i}", files={"text.txt": f"thread {i}\n".encode()}) for i in range(6)]
    start, errors = threading.Barrier(len(bags)), []

    def open_and_register(bag: Path) -> None:
        try:
            start.wait()
            with Ledger.open(ledger_url) as ledger:
                register_bag(ledger, bag, origin="ingest", events=[_event()])
                ledger.add_event(bag.name, _event("val"))
        except Exception as exc:  # noqa: BLE001 - every thread's failure is reported below
            errors.append(f"{bag.name}: {exc!r}")

    threads = [threading.Thread(target=open_and_register, args=(b,)) for b in bags]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    with Ledger.open(ledger_url) as ledger:
        assert [b.name for b in ledger.bags()] == sorted(b.name for b in bags)
        assert all(len(ledger.events(b.name)) == 2 for b in bags)


def test_several_processes_open_a_fresh_ledger_at_once(ledger_url: str, make_bag: MakeBag,
                                                       tmp_path: Path) -> None:
    """Audit machines or flow workers share one ledger: the first opens race to create its tables.

    On SQLite the first writer takes the file's write lock before Alembic reads the revision, and
    switching the new file to WAL is retried; each process here must open and register its bag.
    """
    import subprocess
    import sys

    bags = [make_bag(f"proc{i}", files={"text.txt": f"process {i}\n".encode()}) for i in range(6)]
    go = tmp_path / "go"
    # Everything slow (imports, reading the migration scripts) happens before the start line.
    script = ("import sys, time\nfrom pathlib import Path\nimport alembic.command\n"
              "from pipeline.ledger import Ledger, _head_revision\nfrom pipeline.audit import register_bag\n_head_revision()\n"
              "while not Path(sys.argv[1]).exists():\n    time.sleep(0.0005)\n"
              "with Ledger.open(sys.argv[2]) as ledger:\n"
              "    register_bag(ledger, Path(sys.argv[3]), origin='ingest')\n")
    children = [subprocess.Popen([sys.executable, "-c", script, str(go), ledger_url, str(b)],
                                 stderr=subprocess.PIPE, text=True) for b in bags]
    time.sleep(0.5)  # let every interpreter start and wait at the line
    go.touch()
    failures = [child.communicate(timeout=120)[1] for child in children if child.wait(timeout=120) != 0]
    assert failures == []
    with Ledger.open(ledger_url) as ledger:
        assert [b.name for b in ledger.bags()] == sorted(b.name for b in bags)
