"""Repair and restore with real parts: bags made by Strongroom's writer, a SQLite ledger, deposits to a
directory, an OCFL root (ocfl-py) and an S3 server on loopback (moto), bagit-python as second opinion.

Every damage class is done to the local bag and repaired from each kind of replica; each kind of
replica is damaged and repaired from the local bag; and what must never happen is shown not to.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bagit
import pytest
from lxml import etree

from pipeline.audit import AuditOptions, check_location, register_bag, run_audit
from pipeline.audit.repair import RepairOptions, repair_bag
from pipeline.bag.validator import validate_bag
from pipeline.deposit import deposit_bag
from pipeline.ledger import Ledger
from tests.test_audit_faults import flip_byte, rewrite_consistently, truncate

MakeBag = Callable[..., Path]
RunCli = Callable[..., Any]
FILES = {"text.txt": b"Strongroom repair test payload, a line long enough to truncate\n" * 20,
         "sub/scan.bin": bytes(range(256)) * 8}
XSD = Path(__file__).parent / "data" / "xsd" / "premis-v3-0.xsd"
SAFE = etree.XMLParser(no_network=True, resolve_entities=False)


@dataclass
class Archive:
    """One registered bag, its bags directory and ledger, and its replicas (kind -> location)."""

    bags: Path
    bag: Path
    source: Path
    replicas: dict[str, str]

    def ledger(self) -> Ledger:
        return Ledger.open(bags_dir=self.bags)


def _target(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "file":
        return f"file://{tmp_path}/copies?create=1"
    if kind == "ocfl":
        return f"ocfl://{tmp_path}/ocfl?create=1"
    endpoint = request.getfixturevalue("moto_endpoint")
    tar = "&serialization=tar" if kind == "s3-tar" else ""
    return f"s3://{request.getfixturevalue('s3_bucket')}/archive?endpoint={endpoint}{tar}"


@pytest.fixture
def archive(tmp_path: Path, make_bag: MakeBag, request: pytest.FixtureRequest) -> Callable[..., Archive]:
    """``archive("file", "ocfl")``: a bag ``rec.v1`` registered and deposited to those kinds of target."""
    def make(*kinds: str, name: str = "rec") -> Archive:
        bag = make_bag(name, files=FILES)
        bags = bag.parent
        replicas = {}
        with Ledger.open(bags_dir=bags) as ledger:
            register_bag(ledger, bag, origin="ingest")
            for kind in kinds:
                replicas[kind] = deposit_bag(bag, _target(kind, tmp_path, request), ledger=ledger).location
        return Archive(bags, bag, tmp_path / "sources" / bag.name, replicas)

    return make


def tree(root: Path) -> dict[str, str]:
    """path -> sha256 of every file below ``root`` (the ledger and dot-directories of the bags dir left out)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and ".strongroom-ledger" not in p.name}


def repair(archive: Archive, **options: Any) -> Any:
    with archive.ledger() as ledger:
        return repair_bag(ledger, archive.bag.name, RepairOptions(bags_dir=archive.bags, **options))


def assert_whole_and_valid(archive: Archive, before: dict[str, str]) -> None:
    """The bag is byte for byte what it was, passes our validator, bagit-python and a full audit."""
    assert tree(archive.bag) == before
    for rel, data in FILES.items():
        assert (archive.bag / "data" / rel).read_bytes() == data == (archive.source / rel).read_bytes()
    assert validate_bag(archive.bag, depth="full").valid
    bagit.Bag(str(archive.bag)).validate()
    with archive.ledger() as ledger:
        report = run_audit(ledger, AuditOptions())
    assert report.exit_code == 0, [f.line() for b in report.bags for c in b.checks for f in c.findings]


def events(archive: Archive, event_type: str) -> list[Any]:
    with archive.ledger() as ledger:
        return [e for e in ledger.events(archive.bag.name) if e.event_type == event_type]


LOCAL_DAMAGE: dict[str, tuple[Callable[[Path], None], set[str]]] = {
    "flip-byte": (lambda b: flip_byte(b / "data/text.txt", 100), {"data/text.txt"}),
    "truncate": (lambda b: truncate(b / "data/text.txt", 10), {"data/text.txt"}),
    "delete-payload": (lambda b: (b / "data/sub/scan.bin").unlink(), {"data/sub/scan.bin"}),
    "add-file": (lambda b: (b / "data/sub/intruder.txt").write_text("hello"), set()),
    "edit-bag-info": (lambda b: (b / "bag-info.txt").write_text("Source-Organization: nobody\n"), {"bag-info.txt"}),
    "rewrite-consistently": (lambda b: rewrite_consistently(b, "data/text.txt"),
                             {"data/text.txt", "manifest-sha256.txt", "manifest-sha512.txt",
                              "tagmanifest-sha256.txt", "tagmanifest-sha512.txt"}),
    "delete-bag": (shutil.rmtree, set()),
}


@pytest.mark.parametrize("kind", ["file", "ocfl", "s3"])
@pytest.mark.parametrize("damage", sorted(LOCAL_DAMAGE))
def test_each_damage_to_the_local_bag_is_repaired_from_each_kind_of_replica(
        archive: Callable[..., Archive], kind: str, damage: str) -> None:
    a = archive(kind)
    before = tree(a.bag)
    do, repaired = LOCAL_DAMAGE[damage]
    do(a.bag)
    result = repair(a)
    assert result.outcome == "repaired", (result.problems, result.refusals)
    assert {x.source for x in result.actions if x.action == "rewrite"} <= {a.replicas[kind]}
    recovered = {e.object_ids[0] for e in events(a, "rec")}
    if damage == "delete-bag":
        assert [x.action for x in result.actions] == ["restore"] and recovered == set(before)
    else:
        assert recovered == repaired
    if damage == "add-file":
        moved = list((a.bags / ".quarantine" / "rec.v1").glob("*/1-file/data/sub/intruder.txt"))
        assert [p.read_text() for p in moved] == ["hello"]  # moved out of the bag, never deleted
        assert [e.object_ids for e in events(a, "qua")] == [("data/sub/intruder.txt",)]
    sources = [e for e in events(a, "fix") if e.detail and "read for a repair" in e.detail]
    assert len(sources) == len(recovered) and all(e.outcome == "suc" for e in sources)  # each source read once
    assert_whole_and_valid(a, before)


def _s3(a: Archive) -> tuple[Any, str, str]:
    import boto3
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(a.replicas["s3"])
    client = boto3.client("s3", endpoint_url=parse_qs(parts.query)["endpoint"][0], region_name="us-east-1")
    return client, parts.netloc, parts.path.strip("/")


def _ocfl_content(a: Archive, rel: str) -> Path:
    return next(Path(a.replicas["ocfl"][len("ocfl://"):]).parent.rglob(f"content/{rel}"))


def _inventories(a: Archive) -> dict[str, str]:
    objdir = _ocfl_content(a, "bagit.txt").parents[2]
    return {k: v for k, v in tree(objdir).items() if "inventory" in k}


def _replica_dir(a: Archive) -> Path:
    return Path(a.replicas["file"][len("file://"):])


REPLICA_DAMAGE: dict[str, Callable[[Archive], None]] = {
    "file-flip-byte": lambda a: flip_byte(_replica_dir(a) / "data/text.txt", 5),
    "file-extra-file": lambda a: (_replica_dir(a) / "data/extra.txt").write_text("stray"),
    "file-edit-tagmanifest": lambda a: flip_byte(_replica_dir(a) / "tagmanifest-sha256.txt", 2),
    "file-delete-copy": lambda a: shutil.rmtree(_replica_dir(a)),
    "ocfl-flip-byte": lambda a: flip_byte(_ocfl_content(a, "data/text.txt"), 5),
    "ocfl-delete-content": lambda a: _ocfl_content(a, "data/sub/scan.bin").unlink(),
    "ocfl-truncate-tag-file": lambda a: truncate(_ocfl_content(a, "bag-info.txt"), 3),
    "ocfl-delete-object": lambda a: shutil.rmtree(_ocfl_content(a, "bagit.txt").parents[2]),
    "s3-change-object": lambda a: _s3(a)[0].put_object(Bucket=_s3(a)[1], Key=f"{_s3(a)[2]}/data/text.txt",
                                                       Body=b"changed"),
    "s3-delete-object": lambda a: _s3(a)[0].delete_object(Bucket=_s3(a)[1], Key=f"{_s3(a)[2]}/bag-info.txt"),
    "s3-extra-object": lambda a: _s3(a)[0].put_object(Bucket=_s3(a)[1], Key=f"{_s3(a)[2]}/data/x.bin", Body=b"x"),
    "s3-delete-marker": lambda a: _s3(a)[0].delete_object(
        Bucket=_s3(a)[1], Key=_s3(a)[2].rsplit("/", 1)[0] + "/.strongroom/rec.v1.complete.json"),
}


@pytest.mark.parametrize("damage", sorted(REPLICA_DAMAGE))
def test_a_damaged_replica_of_each_kind_is_repaired_from_the_local_bag(
        archive: Callable[..., Archive], damage: str) -> None:
    kind = damage.split("-")[0]
    a = archive(kind)
    before = tree(a.bag)
    inventories = _inventories(a) if kind == "ocfl" else {}
    REPLICA_DAMAGE[damage](a)
    with a.ledger() as ledger:
        assert run_audit(ledger, AuditOptions()).exit_code == 1  # the damage is real
    result = repair(a)
    assert result.outcome == "repaired", (result.problems, result.refusals)
    assert result.actions and {x.location for x in result.actions} == {a.replicas[kind]}
    assert all(x.source in ("", a.bag.resolve().as_uri()) or x.action == "quarantine" for x in result.actions)
    assert events(a, "rec") or events(a, "qua")
    if kind == "ocfl":
        from ocfl.validator import Validator

        root = Path(a.replicas["ocfl"][len("ocfl://"):]).parent
        assert Validator(check_digests=True).validate_object(str(_ocfl_content(a, "bagit.txt").parents[2]))
        assert not (root / "extensions" / "strongroom-repair").exists()
        assert len(inventories) == 4  # root and v1 inventory.json, each with its sidecar
        if damage != "ocfl-delete-object":
            assert _inventories(a) == inventories  # the content came back; the object's history is as written
    assert_whole_and_valid(a, before)


def test_two_damaged_copies_are_repaired_from_the_one_good_copy_read_once(
        archive: Callable[..., Archive]) -> None:
    a = archive("file", "ocfl")
    before = tree(a.bag)
    flip_byte(a.bag / "data/text.txt", 7)
    truncate(_replica_dir(a) / "data/text.txt", 9)
    result = repair(a)
    assert result.outcome == "repaired"
    recoveries = events(a, "rec")
    assert len(recoveries) == 2 and all(a.replicas["ocfl"] in (e.detail or "") for e in recoveries)
    reads = [e for e in events(a, "fix") if "read for a repair" in (e.detail or "")]
    assert len(reads) == 1 and a.replicas["ocfl"] in (reads[0].detail or "")  # one read feeds both copies
    assert_whole_and_valid(a, before)


def test_a_source_whose_bytes_change_after_the_check_is_refused_while_it_is_read(
        archive: Callable[..., Archive]) -> None:
    a = archive("file")
    flip_byte(a.bag / "data/text.txt", 3)
    with a.ledger() as ledger:
        reference = ledger.files("rec.v1")
        checks = [check_location(loc, "rec.v1", reference, ("sha256", "sha512")) for loc in ledger.locations("rec.v1")]
    flip_byte(_replica_dir(a) / "data/text.txt", 11)  # the only good source goes bad after the check
    damaged = tree(a.bag)
    with a.ledger() as ledger:
        result = repair_bag(ledger, "rec.v1", RepairOptions(bags_dir=a.bags), checks=checks)
    assert result.outcome == "unrepairable"
    assert [r.path for r in result.refusals] == ["data/text.txt"]
    assert "do not match the ledger" in dict(result.refusals[0].tried)[a.replicas["file"]]
    assert tree(a.bag) == damaged  # nothing of the bag was touched
    assert [e.outcome for e in events(a, "fix") if "read for a repair" in (e.detail or "")] == ["fai"]
    assert not events(a, "rec")


def test_a_source_refused_while_read_gives_way_to_the_next_good_one(archive: Callable[..., Archive]) -> None:
    a = archive("file", "ocfl")
    before = tree(a.bag)
    flip_byte(a.bag / "data/text.txt", 3)
    with a.ledger() as ledger:
        reference = ledger.files("rec.v1")
        checks = [check_location(loc, "rec.v1", reference, ("sha256", "sha512")) for loc in ledger.locations("rec.v1")]
    flip_byte(_replica_dir(a) / "data/text.txt", 11)  # the first source goes bad after the check
    with a.ledger() as ledger:
        result = repair_bag(ledger, "rec.v1", RepairOptions(bags_dir=a.bags, only=(a.bag.resolve().as_uri(),)),
                            checks=checks)
    assert result.outcome == "repaired"
    assert [x.source for x in result.actions] == [a.replicas["ocfl"]]
    reads = [(e.outcome, a.replicas["ocfl"] in (e.detail or "")) for e in events(a, "fix")
             if "read for a repair" in (e.detail or "")]
    assert reads == [("fai", False), ("suc", True)]
    assert tree(a.bag) == before


def test_a_bag_another_process_holds_is_left_alone_and_reported_busy(archive: Callable[..., Archive]) -> None:
    from pipeline.audit.repair import RepairReport

    a = archive("file")
    flip_byte(a.bag / "data/text.txt", 3)
    damaged = tree(a.bag)
    with a.ledger() as ledger:
        assert ledger.claim_bags(["rec.v1"], "urn:uuid:an-audit-run", lease_seconds=60) == ["rec.v1"]
        result = repair_bag(ledger, "rec.v1", RepairOptions(bags_dir=a.bags, wait_seconds=0.3))
        assert ledger.claim_bags(["rec.v1"], "repair:other", lease_seconds=60) == []  # still the audit's
    assert result.outcome == "busy" and RepairReport([result]).exit_code == 1
    assert tree(a.bag) == damaged and not events(a, "rec")


def test_a_tar_serialised_s3_copy_serves_as_a_source(
        archive: Callable[..., Archive]) -> None:
    a = archive("s3-tar")
    before = tree(a.bag)
    truncate(a.bag / "data/sub/scan.bin", 100)
    result = repair(a)
    assert result.outcome == "repaired" and [x.source for x in result.actions] == [a.replicas["s3-tar"]]
    assert_whole_and_valid(a, before)


def _tar_key(a: Archive) -> tuple[Any, str, str]:
    """The S3 client, bucket and key of the tar object of ``rec.v1``."""
    from urllib.parse import parse_qs, urlsplit

    import boto3

    parts = urlsplit(a.replicas["s3-tar"])
    client = boto3.client("s3", endpoint_url=parse_qs(parts.query)["endpoint"][0], region_name="us-east-1")
    return client, parts.netloc, parts.path.strip("/") + ".tar"


def _tar_with(a: Archive, change: Callable[[dict[str, bytes]], None]) -> None:
    """Rewrite the tar object with its members changed by ``change`` (path in bag -> bytes)."""
    import io
    import tarfile

    client, bucket, key = _tar_key(a)
    old = tarfile.open(fileobj=io.BytesIO(client.get_object(Bucket=bucket, Key=key)["Body"].read()))
    members = {m.name[len("rec.v1/"):]: old.extractfile(m).read()  # type: ignore[union-attr]
               for m in old.getmembers() if m.isfile()}
    change(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel, data in sorted(members.items()):
            info = tarfile.TarInfo(f"rec.v1/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    client.put_object(Bucket=bucket, Key=key, Body=out.getvalue())


TAR_DAMAGE: dict[str, Callable[[dict[str, bytes]], None]] = {
    "change-member": lambda m: m.update({"data/text.txt": b"changed"}),
    "drop-member": lambda m: m.pop("bag-info.txt"),
    "extra-member": lambda m: m.update({"data/intruder.txt": b"hello"}),
}


@pytest.mark.parametrize("damage", sorted(TAR_DAMAGE))
def test_a_damaged_tar_serialised_s3_copy_is_rebuilt_from_verified_files(
        archive: Callable[..., Archive], damage: str) -> None:
    a = archive("s3-tar")
    before = tree(a.bag)
    _tar_with(a, TAR_DAMAGE[damage])
    with a.ledger() as ledger:
        assert run_audit(ledger, AuditOptions()).exit_code == 1  # the damage is real
    result = repair(a)
    assert result.outcome == "repaired", (result.problems, result.refusals)
    assert result.actions and {x.location for x in result.actions} == {a.replicas["s3-tar"]}
    local = a.bag.resolve().as_uri()
    reads = [e for e in events(a, "fix") if "read for a repair" in (e.detail or "")]
    assert len(reads) == len(before) and all(e.outcome == "suc" and local in (e.detail or "") for e in reads)  # every file
    if damage == "extra-member":
        moved = list((a.bags / ".quarantine" / "rec.v1").glob("*/2-s3/data/intruder.txt"))
        assert [p.read_bytes() for p in moved] == [b"hello"]
        assert [e.object_ids for e in events(a, "qua")] == [("data/intruder.txt",)] and not events(a, "rec")
    else:
        damaged = {"change-member": "data/text.txt", "drop-member": "bag-info.txt"}[damage]
        assert [x.path for x in result.actions] == [damaged] and [x.source for x in result.actions] == [local]
        assert [e.object_ids for e in events(a, "rec")] == [(damaged,)]
        assert "tar object rebuilt" in (events(a, "rec")[0].outcome_detail or "")
    client, bucket, key = _tar_key(a)
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert not [k for k in keys if "repair" in k]  # the temporary object is gone
    assert client.head_object(Bucket=bucket, Key=key)["ContentType"] == "application/x-tar"
    assert_whole_and_valid(a, before)  # the audit of every copy, the tar included, passes


def test_a_rebuilt_tar_that_does_not_read_back_right_leaves_the_old_one(
        archive: Callable[..., Archive], monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.deposit import s3

    a = archive("s3-tar")
    _tar_with(a, TAR_DAMAGE["change-member"])
    client, bucket, key = _tar_key(a)
    damaged = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    real = s3.write_tar

    def short_tar(bag: Path, out: Any, top: str) -> None:  # the rebuilt tar loses a file on its way up
        (bag / "bag-info.txt").unlink()
        real(bag, out, top)

    monkeypatch.setattr(s3, "write_tar", short_tar)
    result = repair(a)
    assert result.outcome == "failed" and any("does not match the ledger" in p for p in result.problems)
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == damaged
    assert not [o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"] if "repair" in o["Key"]]
    assert not events(a, "rec")


def test_restoring_a_whole_s3_copy_quarantines_what_was_left_under_its_name(
        archive: Callable[..., Archive], cli: RunCli) -> None:
    a = archive("s3")
    before = tree(a.bag)
    client, bucket, base = _s3(a)
    root = base.rsplit("/", 1)[0]
    client.delete_object(Bucket=bucket, Key=f"{root}/.strongroom/rec.v1.complete.json")
    client.put_object(Bucket=bucket, Key=f"{base}/data/left-behind.txt", Body=b"not the bag's")
    dry = cli("repair", "--bags", a.bags, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert ("quarantine", "data/left-behind.txt") in {
        (x["action"], x["path"]) for x in json.loads(dry.stdout)["bags"][0]["actions"]}
    assert client.get_object(Bucket=bucket, Key=f"{base}/data/left-behind.txt")["Body"].read() == b"not the bag's"
    result = repair(a)
    assert result.outcome == "repaired", (result.problems, result.refusals)
    assert {x.action for x in result.actions} == {"quarantine", "restore"}
    moved = list((a.bags / ".quarantine" / "rec.v1").glob("*/2-s3/data/left-behind.txt"))
    assert [p.read_bytes() for p in moved] == [b"not the bag's"]  # downloaded there, never just deleted
    assert [e.object_ids for e in events(a, "qua")] == [("data/left-behind.txt",)]
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix=f"{base}/")["Contents"]}
    assert f"{base}/data/left-behind.txt" not in keys
    assert_whole_and_valid(a, before)


def test_from_restricts_the_sources(archive: Callable[..., Archive]) -> None:
    a = archive("file", "ocfl")
    before = tree(a.bag)
    flip_byte(a.bag / "data/text.txt", 7)
    ocfl_root = a.replicas["ocfl"].rsplit("/", 1)[0]
    result = repair(a, sources=(ocfl_root,))  # a target URL names the bag's location there
    assert result.outcome == "repaired"
    assert [x.source for x in result.actions] == [a.replicas["ocfl"]]
    assert_whole_and_valid(a, before)


def _state(a: Archive) -> dict[str, dict[str, str]]:
    return {"bags": tree(a.bags), "copies": tree(a.bags.parent / "copies"), "ocfl": tree(a.bags.parent / "ocfl")}


def test_every_copy_damaged_is_unrepairable_exit_1_and_nothing_changes(
        archive: Callable[..., Archive], cli: RunCli) -> None:
    a = archive("file", "ocfl")
    flip_byte(a.bag / "data/text.txt", 1)
    (a.bag / "data/intruder.txt").write_text("would be quarantined if the bag were repairable")
    truncate(_replica_dir(a) / "data/text.txt", 30)
    flip_byte(_ocfl_content(a, "data/text.txt"), 2)
    (a.bag / "bag-info.txt").write_text("Source-Organization: nobody\n")  # repairable alone; not touched either
    before = _state(a)
    run = cli("repair", "--bags", a.bags)
    assert run.returncode == 1, run.stderr
    assert "UNREPAIRABLE" in run.stdout and "no verified good copy of data/text.txt" in run.stdout
    for location, why in ((a.bag.resolve().as_uri(), "AUD001"), (a.replicas["file"], "AUD004"),
                          (a.replicas["ocfl"], "AUD001")):
        assert f"{location}: {why}" in run.stdout
    assert _state(a) == before
    assert not (a.bags / ".quarantine").exists()


def test_dry_run_reports_and_touches_nothing(archive: Callable[..., Archive], cli: RunCli) -> None:
    a = archive("file")
    flip_byte(a.bag / "data/text.txt", 1)
    (a.bag / "data/extra.txt").write_text("x")
    before = _state(a) | {"ledger": {"events": str(len(events(a, "fix")))}}
    run = cli("repair", "--bags", a.bags, "--dry-run", "--json")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["dry_run"] and report["bags"][0]["outcome"] == "would-repair"
    assert {(x["action"], x["path"]) for x in report["bags"][0]["actions"]} == {
        ("rewrite", "data/text.txt"), ("quarantine", "data/extra.txt")}
    assert _state(a) | {"ledger": {"events": str(len(events(a, "fix")))}} == before


def test_cli_repair_then_validate_audit_bagit_and_premis_events(
        archive: Callable[..., Archive], cli: RunCli, tmp_path: Path) -> None:
    a = archive("file", "s3")
    before = tree(a.bag)
    rewrite_consistently(a.bag, "data/text.txt")
    (a.bag / "data/extra.txt").write_text("x")
    run = cli("repair", "--bags", a.bags)
    assert run.returncode == 0, run.stderr
    assert "REPAIRED" in run.stdout and "AUD006" in run.stdout and ".quarantine" in run.stdout
    assert cli("validate", a.bag).returncode == 0
    audit = cli("audit", "--bags", a.bags)
    assert audit.returncode == 0, audit.stdout
    bagit.Bag(str(a.bag)).validate()
    assert tree(a.bag) == before
    out = tmp_path / "premis.xml"
    assert cli("events", "rec.v1", "--bags", a.bags, "-o", out).returncode == 0
    schema = etree.XMLSchema(etree.parse(str(XSD), SAFE))
    doc = etree.parse(str(out), SAFE)
    assert schema.validate(doc), [str(e) for e in schema.error_log]
    labels = [e.text for e in doc.iter("{http://www.loc.gov/premis/v3}eventType")]
    assert {"recovery", "fixity check", "quarantine"} <= set(labels)


def test_audit_repair_heals_right_after_the_check(archive: Callable[..., Archive], cli: RunCli) -> None:
    a = archive("ocfl")
    before = tree(a.bag)
    truncate(a.bag / "data/sub/scan.bin", 1)
    run = cli("audit", "--bags", a.bags, "--repair")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "AUD004" in run.stdout and "REPAIRED" in run.stdout
    assert tree(a.bag) == before
    assert cli("audit", "--bags", a.bags, "--older-than", "0s").returncode == 0


def test_restore_brings_a_lost_bag_back_and_records_the_location(
        archive: Callable[..., Archive], cli: RunCli, tmp_path: Path) -> None:
    a = archive("s3")
    before = tree(a.bag)
    shutil.rmtree(a.bag)
    run = cli("restore", "rec.v1", "--to", tmp_path / "restored", "--bags", a.bags)
    assert run.returncode == 0, run.stdout + run.stderr
    back = tmp_path / "restored" / "rec.v1"
    assert tree(back) == before and cli("validate", back).returncode == 0
    with a.ledger() as ledger:
        assert back.resolve().as_uri() in ledger.locations("rec.v1")
    assert not (tmp_path / "restored" / ".strongroom-repair").exists()


def test_a_restore_with_no_good_copy_fails_and_leaves_no_directory_behind(
        archive: Callable[..., Archive], cli: RunCli, tmp_path: Path) -> None:
    a = archive("file")
    flip_byte(a.bag / "data/text.txt", 1)
    flip_byte(_replica_dir(a) / "data/text.txt", 2)
    run = cli("restore", "rec.v1", "--to", tmp_path / "restored", "--bags", a.bags)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "UNREPAIRABLE" in run.stdout
    assert not (tmp_path / "restored").exists()
    with a.ledger() as ledger:
        assert (tmp_path / "restored" / "rec.v1").resolve().as_uri() not in ledger.locations("rec.v1")


def test_repair_of_a_bags_directory_emptied_but_for_its_ledger_rebuilds_every_bag(
        tmp_path: Path, make_bag: MakeBag, cli: RunCli) -> None:
    made = [make_bag(name, files=FILES) for name in ("one", "two")]
    bags = tmp_path / "bags"
    with Ledger.open(bags_dir=bags) as ledger:
        for bag in made:
            register_bag(ledger, bag, origin="ingest")
            deposit_bag(bag, f"ocfl://{tmp_path}/ocfl?create=1", ledger=ledger)
    before = {name: tree(bags / f"{name}.v1") for name in ("one", "two")}
    for name in ("one", "two"):
        shutil.rmtree(bags / f"{name}.v1")
    run = cli("repair", "--bags", bags)
    assert run.returncode == 0, run.stdout + run.stderr
    assert {name: tree(bags / f"{name}.v1") for name in ("one", "two")} == before
    assert cli("audit", "--bags", bags).returncode == 0


def _bad(a: Archive, tmp_path: Path, case: str) -> list[str]:
    sqlite = f"sqlite:///{a.bags / '.strongroom-ledger.sqlite'}"
    return {
        "unknown-bag": ["repair", "nosuch.v1", "--bags", str(a.bags)],
        "from-not-recorded": ["repair", "rec.v1", "--bags", str(a.bags), "--from", f"file://{tmp_path}/elsewhere"],
        "from-holds-another-bag": ["repair", "rec.v1", "--bags", str(a.bags), "--from",
                                   a.replicas["file"].replace("rec.v1", "other.v1")],
        "unwritable-bags-dir": ["repair", "--bags", "/proc", "--ledger", sqlite],
        "ledger-cannot-be-opened": ["repair", "--bags", str(a.bags), "--ledger", "postgresql://nobody@127.0.0.1:1/none"],
        "no-ledger-in-bags-dir": ["repair", "--bags", str(tmp_path / "copies")],
        "restore-over-an-existing-bag": ["restore", "rec.v1", "--to", str(a.bags), "--bags", str(a.bags)],
    }[case]


@pytest.mark.parametrize("case", ["unknown-bag", "from-not-recorded", "from-holds-another-bag", "unwritable-bags-dir",
                                  "ledger-cannot-be-opened", "no-ledger-in-bags-dir", "restore-over-an-existing-bag"])
def test_bad_input_is_one_line_exit_2_and_nothing_changes(archive: Callable[..., Archive], cli: RunCli,
                                                          tmp_path: Path, case: str) -> None:
    a = archive("file")
    flip_byte(a.bag / "data/text.txt", 1)
    before = _state(a) | {"events": {"n": str(len(events(a, "fix")))}}
    run = cli(*_bad(a, tmp_path, case))
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith("strongroom: error: ") and len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert _state(a) | {"events": {"n": str(len(events(a, "fix")))}} == before


def test_a_bag_without_reference_digests_is_refused_in_one_line(archive: Callable[..., Archive], cli: RunCli) -> None:
    import sqlalchemy as sa

    a = archive("file")
    engine = sa.create_engine(f"sqlite:///{a.bags / '.strongroom-ledger.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM digests"))
        conn.execute(sa.text("DELETE FROM files"))
    engine.dispose()
    (a.bag / "data/text.txt").write_text("changed")
    before = _state(a)
    run = cli("repair", "--bags", a.bags)
    assert run.returncode == 1 and "no reference digests" in run.stderr and "refused" in run.stderr, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert _state(a) == before
