"""Fault injection: every damage class is reported by its code, for the right file, and nothing else.

Bags are made by Strongroom's writer (and, once, by the real ingest of the seed record),
registered in a ledger, damaged on purpose, and audited.  A Hypothesis property test injects
random damage into random bags: the audit must miss none and invent none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import bagit
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.audit import AuditOptions, register_bag, run_audit
from pipeline.ledger import Ledger

ALGS = ("sha512", "sha256")
FILES = {"text.txt": b"Strongroom test payload, a line long enough to truncate\n" * 20,
         "sub/scan.bin": bytes(range(256)) * 8}
BAG_NAMES = ("alpha.v1", "bravo.v1", "charlie.v1")


# -- damage helpers (what a failing disk, a person or a program does to a bag) ------------------


def flip_byte(path: Path, offset: int) -> None:
    """XOR one byte with 0xFF in place (the size stays the same)."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        value = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([value ^ 0xFF]))


def truncate(path: Path, keep: int) -> None:
    """Cut the file down to ``keep`` bytes."""
    os.truncate(path, keep)


def _hex(data: bytes, alg: str) -> str:
    return hashlib.new(alg, data).hexdigest()


def _set_manifest_line(manifest: Path, rel: str, digest: str) -> None:
    lines = manifest.read_text("utf-8").splitlines()
    out = [f"{digest}  {rel}" if line.split(maxsplit=1)[1] == rel else line for line in lines]
    manifest.write_text("\n".join(out) + "\n", "utf-8")


def rewrite_consistently(bag: Path, rel: str) -> None:
    """Change a payload file AND every manifest line for it AND the tag manifests: a valid bag."""
    target = bag / rel
    data = bytes(b ^ 0x5A for b in target.read_bytes())  # same size, different bytes
    target.write_bytes(data)
    for alg in ALGS:
        _set_manifest_line(bag / f"manifest-{alg}.txt", rel, _hex(data, alg))
    for alg in ALGS:
        for name in (f"manifest-{a}.txt" for a in ALGS):
            _set_manifest_line(bag / f"tagmanifest-{alg}.txt", name, _hex((bag / name).read_bytes(), alg))


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def collection(tmp_path: Path, make_bag: Callable[..., Path]) -> tuple[Path, Ledger]:
    """Three registered bags side by side in tmp_path/bags and their (SQLite) ledger."""
    for name in BAG_NAMES:
        make_bag(name.split(".")[0], files=FILES)
    bags = tmp_path / "bags"
    ledger = Ledger.open(bags_dir=bags)
    for name in BAG_NAMES:
        register_bag(ledger, bags / name, origin="ingest")
    yield bags, ledger
    ledger.close()


def findings_by_bag(ledger: Ledger) -> dict[str, set[tuple[str, str]]]:
    """Audit everything once; (code, path) per bag."""
    report = run_audit(ledger, AuditOptions())
    assert sorted(b.name for b in report.bags) == sorted(BAG_NAMES)
    return {b.name: {(f.code, f.path) for c in b.checks for f in c.findings} for b in report.bags}


def _move_away(bag: Path) -> None:
    shutil.rmtree(bag)


def _replace_by_file(bag: Path) -> None:
    shutil.rmtree(bag)
    bag.write_bytes(b"not a bag any more")


DAMAGE: list[tuple[str, Callable[[Path], None], set[tuple[str, str]]]] = [
    ("changed-content", lambda b: flip_byte(b / "data/text.txt", 100), {("AUD001", "data/text.txt")}),
    ("missing-file", lambda b: (b / "data/sub/scan.bin").unlink(), {("AUD002", "data/sub/scan.bin")}),
    ("extra-file", lambda b: (b / "data/sub/intruder.txt").write_text("hello"), {("AUD003", "data/sub/intruder.txt")}),
    ("truncated-file", lambda b: truncate(b / "data/text.txt", 10), {("AUD004", "data/text.txt")}),
    ("changed-tag-file", lambda b: (b / "bag-info.txt").write_text("Source-Organization: nobody\n"),
     {("AUD005", "bag-info.txt")}),
    ("changed-manifest", lambda b: flip_byte(b / "manifest-sha256.txt", 3), {("AUD005", "manifest-sha256.txt")}),
    ("manifest-and-content", lambda b: rewrite_consistently(b, "data/text.txt"), {("AUD006", "data/text.txt")}),
    ("bag-missing", _move_away, {("AUD007", "")}),
    ("bag-unreadable", _replace_by_file, {("AUD008", "")}),
]


@pytest.mark.parametrize("damage, expected", [(d, e) for _, d, e in DAMAGE], ids=[n for n, _, _ in DAMAGE])
def test_each_damage_class_is_named_for_the_right_file_and_only_there(
        collection: tuple[Path, Ledger], damage: Callable[[Path], None], expected: set[tuple[str, str]]) -> None:
    bags, ledger = collection
    damage(bags / "bravo.v1")
    found = findings_by_bag(ledger)
    assert found == {"alpha.v1": set(), "bravo.v1": expected, "charlie.v1": set()}


def test_every_damage_class_is_named_by_the_cli_in_one_audit(tmp_path: Path, make_bag: Callable[..., Path],
                                                            cli: Callable[..., subprocess.CompletedProcess[str]]
                                                            ) -> None:
    import json

    names = [f"case{i}" for i in range(len(DAMAGE))] + ["untouched"]
    for name in names:
        make_bag(name, files=FILES)
    bags = tmp_path / "bags"
    assert cli("register", *(bags / f"{n}.v1" for n in names), "--bags", bags).returncode == 0
    for i, (_, damage, _) in enumerate(DAMAGE):
        damage(bags / f"case{i}.v1")
    result = cli("audit", "--bags", bags, "--json", tmp_path / "audit.json")
    assert result.returncode == 1, result.stderr
    report = json.loads((tmp_path / "audit.json").read_text())
    found = {b["name"]: {(f["code"], f["path"]) for loc in b["locations"] for f in loc["findings"]}
             for b in report["bags"]}
    assert found == {**{f"case{i}.v1": expected for i, (_, _, expected) in enumerate(DAMAGE)},
                     "untouched.v1": set()}
    for i, (kind, _, expected) in enumerate(DAMAGE):  # and the readable report names each one
        code, path = next(iter(expected))
        assert f"case{i}.v1 at " in result.stdout and f"{code} " in result.stdout, kind


def test_a_clean_collection_reports_clean(collection: tuple[Path, Ledger]) -> None:
    _, ledger = collection
    report = run_audit(ledger, AuditOptions())
    assert report.exit_code == 0 and not report.damaged and len(report.bags) == 3


def test_a_consistent_rewrite_passes_bag_validation_and_only_the_ledger_sees_it(
        collection: tuple[Path, Ledger]) -> None:
    bags, ledger = collection
    rewrite_consistently(bags / "bravo.v1", "data/sub/scan.bin")
    bagit.Bag(str(bags / "bravo.v1")).validate()  # raises if the bag's own manifests disagree
    assert findings_by_bag(ledger)["bravo.v1"] == {("AUD006", "data/sub/scan.bin")}


def test_a_renamed_file_is_one_missing_and_one_extra(collection: tuple[Path, Ledger]) -> None:
    bags, ledger = collection
    (bags / "bravo.v1/data/text.txt").rename(bags / "bravo.v1/data/text-renamed.txt")
    assert findings_by_bag(ledger)["bravo.v1"] == {("AUD002", "data/text.txt"), ("AUD003", "data/text-renamed.txt")}


def test_a_file_turned_into_a_symlink_is_changed_and_never_followed(collection: tuple[Path, Ledger],
                                                                     tmp_path: Path) -> None:
    bags, ledger = collection
    outside = tmp_path / "outside.txt"
    outside.write_bytes(FILES["text.txt"])  # same bytes: following the link would hide the damage
    (bags / "bravo.v1/data/text.txt").unlink()
    (bags / "bravo.v1/data/text.txt").symlink_to(outside)
    assert findings_by_bag(ledger)["bravo.v1"] == {("AUD001", "data/text.txt")}


def test_bags_made_by_ingest_are_audited_and_their_damage_found(tmp_path: Path, records_copy: Path) -> None:
    from pipeline.ingest import ingest_record, register_result

    bags = tmp_path / "bags"
    bags.mkdir()
    result = ingest_record(records_copy / "icg-peru-1986" / "record.yaml", bags)
    assert result.bag is not None, result.error
    with Ledger.open(bags_dir=bags) as ledger:
        register_result(result, ledger)
        assert run_audit(ledger).exit_code == 0
        payload = next(p for p in (result.bag / "data").rglob("*") if p.is_file())
        flip_byte(payload, 0)
        report = run_audit(ledger)
    rel = payload.relative_to(result.bag).as_posix()
    assert [(f.code, f.path) for c in report.bags[0].checks for f in c.findings] == [("AUD001", rel)]


# -- property: random damage in random bags -------------------------------------------------------

OPS = ("flip", "truncate", "delete", "add", "rename", "rewrite")
PAYLOAD = ("data/text.txt", "data/sub/scan.bin")
TAGS = ("bag-info.txt", "bagit.txt", "manifest-sha256.txt", "manifest-sha512.txt", "tagmanifest-sha256.txt")


@st.composite
def damage_plans(draw: st.DrawFn) -> dict[str, list[tuple[str, str, int]]]:
    """For each bag, a list of (operation, target, parameter) on distinct files."""
    plan: dict[str, list[tuple[str, str, int]]] = {}
    for bag in BAG_NAMES:
        ops: list[tuple[str, str, int]] = []
        rewrite = False
        for target in PAYLOAD:
            op = draw(st.sampled_from(("none",) + OPS))
            rewrite = rewrite or op == "rewrite"
            if op != "none":
                ops.append((op, target, draw(st.integers(0, 2047))))
        tag_op = draw(st.sampled_from(("none", "flip", "truncate", "delete", "rename")))
        if tag_op != "none" and not rewrite:  # a rewrite edits the manifests itself
            ops.append((tag_op, draw(st.sampled_from(TAGS)), draw(st.integers(0, 2047))))
        if draw(st.booleans()):
            ops.append(("add", "", draw(st.integers(0, 2047))))
        plan[bag] = ops
    return plan


def apply(bag: Path, op: str, target: str, n: int) -> set[tuple[str, str]]:
    """Do one damage and return what an honest audit must report for it."""
    path = bag / target
    tag = not target.startswith("data/")
    if op == "flip":
        flip_byte(path, n % path.stat().st_size)
        return {("AUD005" if tag else "AUD001", target)}
    if op == "truncate":
        truncate(path, n % path.stat().st_size)
        return {("AUD005" if tag else "AUD004", target)}
    if op == "delete":
        path.unlink()
        return {("AUD002", target)}
    if op == "rename":
        new = f"{target}.renamed{n}"
        path.rename(bag / new)
        return {("AUD002", target), ("AUD003", new)}
    if op == "rewrite":
        rewrite_consistently(bag, target)
        return {("AUD006", target)}
    new = f"data/added-{n}.bin" if n % 2 else f"added-tag-{n}.txt"
    (bag / new).write_bytes(n.to_bytes(2, "big") * (n + 1))
    return {("AUD003", new)}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Ledger]:
    """A pristine collection, a working copy path (fixed, so ledger locations stay true) and its ledger."""
    from pipeline.bag.writer import bag_directory

    root = tmp_path_factory.mktemp("property")
    clean, work = root / "clean", root / "bags"
    clean.mkdir()
    for name in BAG_NAMES:
        source = root / "sources" / name
        for rel, content in FILES.items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes(content)
        bag_directory(source, clean / name, info=[("External-Identifier", name)], verifiers=[])
    shutil.copytree(clean, work)
    ledger = Ledger.open(bags_dir=work)
    for name in BAG_NAMES:
        register_bag(ledger, work / name, origin="ingest")
    yield clean, work, ledger
    ledger.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=damage_plans())
def test_random_damage_is_all_found_and_nothing_is_invented(
        pristine: tuple[Path, Path, Ledger], plan: dict[str, list[tuple[str, str, int]]]) -> None:
    clean, work, ledger = pristine
    for name in BAG_NAMES:  # every example starts from the pristine bags
        shutil.rmtree(work / name)
        shutil.copytree(clean / name, work / name)
    expected = {name: set().union(*(apply(work / name, *op) for op in ops)) if ops else set()
                for name, ops in plan.items()}
    assert findings_by_bag(ledger) == expected


# -- several processes, and a crash, on one PostgreSQL ledger --------------------------------------


def _pg_collection(url: str, make_bag: Callable[..., Path], tmp_path: Path, count: int, size: int) -> Path:
    for i in range(count):
        make_bag(f"pg{i:02d}", files={"big.bin": bytes([i]) * size, "small.txt": b"x\n"})
    bags = tmp_path / "bags"
    with Ledger.open(url) as ledger:
        for i in range(count):
            register_bag(ledger, bags / f"pg{i:02d}.v1", origin="ingest")
    return bags


def _fix_events_by_bag(url: str) -> dict[str, dict[str | None, int]]:
    """bag name -> {audit run id: number of fixity-check events}."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT b.name, e.run_id, count(*) FROM events e JOIN bags b ON b.id = e.bag_id "
            "WHERE e.event_type = 'fix' GROUP BY b.name, e.run_id")).all()
    engine.dispose()
    found: dict[str, dict[str | None, int]] = {}
    for name, run_id, n in rows:
        found.setdefault(name, {})[run_id] = n
    return found


def _audit_process(url: str, *extra: str, out: Path | None = None) -> "subprocess.Popen[str]":
    import subprocess
    import sys

    args = [sys.executable, "-m", "pipeline.cli", "audit", "--ledger", url, *extra]
    if out is not None:
        args += ["--json", str(out)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
def test_two_audit_processes_on_one_postgresql_ledger_check_every_bag_once(
        fresh_pg_url: str, make_bag: Callable[..., Path], tmp_path: Path) -> None:
    import json
    import time

    import sqlalchemy as sa

    _pg_collection(fresh_pg_url, make_bag, tmp_path, count=12, size=1 << 20)
    gate = sa.create_engine(fresh_pg_url)
    with gate.connect() as conn:
        # Hold both processes at their first claim, then let them go at the same instant.
        conn.execute(sa.text("LOCK TABLE bags IN EXCLUSIVE MODE"))
        procs = [_audit_process(fresh_pg_url, out=tmp_path / f"run{i}.json") for i in range(2)]
        deadline = time.monotonic() + 120
        # pg_stat_activity is a snapshot per transaction: ask in autocommit mode to see it change.
        with gate.execution_options(isolation_level="AUTOCOMMIT").connect() as watch:
            while watch.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                        "AND query LIKE 'UPDATE bags%'")).scalar() < 2:
                assert time.monotonic() < deadline, "the audit processes never reached their first claim"
                assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
                time.sleep(0.05)
        conn.commit()
    gate.dispose()
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    shares = [{b["name"] for b in json.loads((tmp_path / f"run{i}.json").read_text())["bags"]} for i in range(2)]
    assert shares[0] and shares[1], "one process did all the work: the test proved nothing"
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == {f"pg{i:02d}.v1" for i in range(12)}
    events = _fix_events_by_bag(fresh_pg_url)
    with Ledger.open(fresh_pg_url) as ledger:
        files = len(ledger.files("pg00.v1"))
    assert all(len(runs) == 1 and list(runs.values()) == [files] for runs in events.values()), events
    assert set(events) == shares[0] | shares[1]


@pytest.mark.slow
@pytest.mark.postgres
def test_a_sigkill_mid_audit_loses_no_result_and_the_next_run_finishes(
        fresh_pg_url: str, make_bag: Callable[..., Path], tmp_path: Path) -> None:
    import signal
    import time

    count = 32
    _pg_collection(fresh_pg_url, make_bag, tmp_path, count=count, size=4 << 20)
    proc = _audit_process(fresh_pg_url, "--lease", "2")
    deadline = time.monotonic() + 120
    while not _fix_events_by_bag(fresh_pg_url):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGSTOP)  # freeze it, note what is recorded, then kill it outright
    before = _fix_events_by_bag(fresh_pg_url)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert 0 < len(before) < count, "the audit was not interrupted midway"
    assert _fix_events_by_bag(fresh_pg_url) == before  # nothing the killed run recorded is lost
    time.sleep(2.5)  # the killed run's claim on the bag it was reading lapses
    again = _audit_process(fresh_pg_url, "--older-than", "1h", "--lease", "2")
    out, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    after = _fix_events_by_bag(fresh_pg_url)
    assert set(after) == {f"pg{i:02d}.v1" for i in range(count)}
    assert all(len(runs) == 1 for runs in after.values()), "a bag was checked twice"
    assert {name: after[name] for name in before} == before
    assert f"audited {count - len(before)} bag(s)" in out
