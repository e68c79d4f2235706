"""The file:// deposit target, the scheme registry and deposit_bag's ledger recording."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path
from typing import Any

import bagit
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.deposit import deposit_bag, location_of, open_location, open_target, split_location
from pipeline.deposit.base import DIGEST, MISSING, bag_expectations
from pipeline.deposit.filesystem import WORK_DIR, FilesystemTarget
from pipeline.deposit.replication import RetryPolicy
from pipeline.errors import DepositError, DepositMismatchError, LedgerError, UsageError
from pipeline.audit import register_bag


def _same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        return False
    _, mismatched, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not mismatched and not errors and all(_same_tree(a / d, b / d) for d in cmp.common_dirs)


def test_deposit_copies_the_bag_verified_and_publishes_it_whole(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n", "sub dir/bé.txt": b"beta\n"})  # bagit-python misreads %
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    result = target.put(bag)
    held = tmp_path / "store" / "rec.v1"
    assert result.outcome == "deposited" and result.verified
    assert result.location == held.as_uri()
    assert (result.files, result.bytes) == (len(bag_expectations(bag)), sum(
        p.stat().st_size for p in bag.rglob("*") if p.is_file()))
    assert _same_tree(bag, held)
    assert bagit.Bag(str(held)).is_valid()  # bagit-python, as a second opinion on the copy
    assert target.list() == ["rec.v1"] and target.locate("rec.v1") == held.as_uri()
    assert target.locate("other.v1") is None
    # nothing left in the work area but the (empty) lock file
    assert [p.name for p in (tmp_path / "store" / WORK_DIR).iterdir()] == ["rec.v1.lock"]


def test_same_bag_twice_is_a_no_op_that_says_so(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    target.put(bag)
    inode = (tmp_path / "store" / "rec.v1" / "bagit.txt").stat().st_ino
    again = target.put(bag)
    assert again.outcome == "unchanged" and again.verified
    assert "already held" in again.line()
    assert (tmp_path / "store" / "rec.v1" / "bagit.txt").stat().st_ino == inode


def test_a_different_bag_under_the_same_name_is_refused_and_nothing_overwritten(make_bag: Any,
                                                                                tmp_path: Path) -> None:
    first = make_bag("rec", files={"a.txt": b"first\n"})
    other = make_bag("rec", files={"a.txt": b"second\n"}, bags=tmp_path / "elsewhere")
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    target.put(first)
    with pytest.raises(DepositMismatchError) as caught:
        target.put(other)
    assert "nothing overwritten" in str(caught.value)
    assert {f.code for f in caught.value.findings} >= {DIGEST}
    assert (tmp_path / "store" / "rec.v1" / "data" / "a.txt").read_bytes() == b"first\n"


def test_verify_and_fixity_read_the_held_copy_again(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n", "b.txt": b"beta\n"})
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    target.put(bag)
    expected = bag_expectations(bag)
    fixity = target.fixity("rec.v1", ["sha256", "sha512"])
    assert {p: f[1] for p, f in fixity.items()} == {p: e[1] for p, e in expected.items()}
    assert target.verify("rec.v1", expected) == []
    held = tmp_path / "store" / "rec.v1"
    (held / "data" / "a.txt").write_bytes(b"alphA\n")  # silent damage at the destination
    (held / "data" / "b.txt").unlink()
    codes = {(f.code, f.path) for f in target.verify("rec.v1", expected)}
    assert codes == {(DIGEST, "data/a.txt"), (MISSING, "data/b.txt")}
    with pytest.raises(DepositMismatchError):  # a damaged copy is reported, never silently replaced
        target.put(bag)
    assert (held / "data" / "a.txt").read_bytes() == b"alphA\n"


def test_leftovers_of_a_killed_deposit_are_rolled_back(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")
    work = tmp_path / "store" / WORK_DIR
    partial = work / "rec.v1.abc123.partial"
    (partial / "data").mkdir(parents=True)
    (partial / "data" / "text.txt").write_bytes(b"half")
    result = open_target(((tmp_path / "store").as_uri() + "?create=1")).put(bag)
    assert result.outcome == "deposited"
    assert not partial.exists()
    assert _same_tree(bag, tmp_path / "store" / "rec.v1")


def test_a_bag_with_a_symlink_is_refused_before_anything_is_copied(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")
    os.symlink("/etc/passwd", bag / "data" / "link")
    with pytest.raises(DepositError, match="link or special file"):
        open_target(((tmp_path / "store").as_uri() + "?create=1")).put(bag)
    assert not (tmp_path / "store" / "rec.v1").exists()


@pytest.mark.parametrize("url, message", [
    ("ftp://host/x", "unknown deposit target"),
    ("file://relative/path", "file:///absolute/path"),
    ("s3://AKIAXXX:verysecret@bucket/p", "credentials do not belong"),
    ("s3://bucket/p?colour=blue", "unknown: colour"),
    ("ocfl:///tmp/x?layout=a&extra=1", "ocfl:///absolute/path"),
    # a password in the endpoint would be kept with every location in the ledger and printed
    ("s3://bucket/p?endpoint=http://minio:verysecret@127.0.0.1:9000", "credentials do not belong"),
    ("s3://bucket/p?aws_secret_access_key=verysecret", "unknown: aws_secret_access_key"),
    ("ftp://host/x?token=verysecret", "unknown deposit target"),
    ("file:///srv/x?token=verysecret", "file:///absolute/path"),
    ("ocfl:///srv/x?token=verysecret", "ocfl:///absolute/path"),
    ("s3://bucket/p?endpoint=127.0.0.1:9000", "endpoint must be an http:// or https:// URL"),
    ("s3://bucket/p?endpoint=ftp://host", "endpoint must be an http:// or https:// URL"),
])
def test_bad_target_urls_are_usage_errors_that_never_echo_secrets(url: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        open_target(url)
    assert message in str(caught.value)
    assert "verysecret" not in str(caught.value)


@pytest.mark.parametrize("url", ["file:///srv/copies", "ocfl:///srv/ocfl",
                                 "s3://bucket/some/prefix?endpoint=http://127.0.0.1:9000&serialization=tar"])
@pytest.mark.parametrize("name", ["rec.v1", "odd name%2F.v3", "ünï.v12"])
def test_a_location_names_its_target_and_bag(url: str, name: str) -> None:
    location = location_of(url, name)
    assert split_location(location) == (url, name)


@given(name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\\\x00"),
                   min_size=1, max_size=30).filter(lambda n: not n.startswith(".")),
       query=st.sampled_from(["", "?endpoint=http://127.0.0.1:9000", "?serialization=tar&region=eu-west-1"]))
def test_any_bag_name_survives_a_location_round_trip(name: str, query: str) -> None:
    url = f"s3://bucket/some prefix{query}"
    assert split_location(location_of(url, name)) == (url, name)


def test_open_location_reopens_the_target_holding_a_deposit(make_bag: Any, tmp_path: Path) -> None:
    result = open_target(((tmp_path / "store").as_uri() + "?create=1")).put(make_bag("rec"))
    target, name = open_location(result.location)
    assert isinstance(target, FilesystemTarget) and name == "rec.v1"
    assert target.root == tmp_path / "store"


def test_deposit_bag_records_location_and_a_replication_event(make_bag: Any, tmp_path: Path) -> None:
    from pipeline.ledger import Ledger

    bag = make_bag("rec")
    url = ((tmp_path / "store").as_uri() + "?create=1")
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        register_bag(ledger, bag, origin="ingest")
        result = deposit_bag(bag, url, ledger=ledger)
        assert result.location in ledger.locations("rec.v1")
        reps = [e for e in ledger.events("rec.v1") if e.event_type == "rep"]
        assert len(reps) == 1 and reps[0].outcome == "suc" and result.location in (reps[0].detail or "")
        assert deposit_bag(bag, url, ledger=ledger).outcome == "unchanged"
        assert len([e for e in ledger.events("rec.v1") if e.event_type == "rep"]) == 1  # nothing new


def test_a_copy_made_without_the_ledger_is_recorded_when_found_later(make_bag: Any, tmp_path: Path) -> None:
    from pipeline.ledger import Ledger

    bag = make_bag("rec")
    url = ((tmp_path / "store").as_uri() + "?create=1")
    assert deposit_bag(bag, url).outcome == "deposited"  # no ledger
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        register_bag(ledger, bag, origin="ingest")
        result = deposit_bag(bag, url, ledger=ledger)
        assert result.outcome == "unchanged" and result.location in ledger.locations("rec.v1")
        [rep] = [e for e in ledger.events("rec.v1") if e.event_type == "rep"]
        assert rep.outcome == "suc" and "identical copy already held" in (rep.outcome_detail or "")


def test_a_failed_verification_is_recorded_as_a_failed_replication(make_bag: Any, tmp_path: Path) -> None:
    from pipeline.ledger import Ledger

    bag = make_bag("rec", files={"a.txt": b"mine\n"})
    other = make_bag("rec", files={"a.txt": b"theirs\n"}, bags=tmp_path / "elsewhere")
    url = ((tmp_path / "store").as_uri() + "?create=1")
    open_target(url).put(other)
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        register_bag(ledger, bag, origin="ingest")
        with pytest.raises(DepositMismatchError):
            deposit_bag(bag, url, ledger=ledger)
        reps = [e for e in ledger.events("rec.v1") if e.event_type == "rep"]
        assert [e.outcome for e in reps] == ["fai"]
        assert ledger.locations("rec.v1") == [bag.resolve().as_uri()]


def test_deposit_bag_with_a_ledger_that_lacks_the_bag_copies_nothing(make_bag: Any, tmp_path: Path) -> None:
    from pipeline.ledger import Ledger

    bag = make_bag("rec")
    with Ledger.open(None, bags_dir=bag.parent) as ledger, pytest.raises(LedgerError):
        deposit_bag(bag, ((tmp_path / "store").as_uri() + "?create=1"), ledger=ledger)
    assert not (tmp_path / "store" / "rec.v1").exists()


def test_retry_backoff_grows_and_stays_bounded() -> None:
    policy = RetryPolicy(attempts=5, first_delay=1.0, factor=2.0, max_delay=5.0)
    delays = [policy.delay(n) for n in range(1, 6)]
    assert 0.5 <= delays[0] <= 1.0 and 1.0 <= delays[1] <= 2.0 and 2.0 <= delays[2] <= 4.0
    assert all(d <= 5.0 for d in delays)


def test_a_held_file_replaced_by_a_link_is_not_taken_for_the_copy(make_bag: Any, tmp_path: Path) -> None:
    # A link at the destination, even to identical bytes, is no copy: the store holds nothing.
    bag = make_bag("rec")
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    target.put(bag)
    held = tmp_path / "store" / "rec.v1" / "data" / "text.txt"
    held.unlink()
    held.symlink_to(bag / "data" / "text.txt")
    findings = target.verify("rec.v1", bag_expectations(bag))
    assert [(f.code, f.path) for f in findings] == [(MISSING, "data/text.txt")]


def test_a_held_bag_directory_that_is_a_link_is_not_held(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")
    (tmp_path / "store").mkdir()
    (tmp_path / "store" / "rec.v1").symlink_to(bag)
    target = open_target(((tmp_path / "store").as_uri() + "?create=1"))
    assert target.locate("rec.v1") is None
    with pytest.raises(DepositError, match="holds no bag"):
        target.fixity("rec.v1", ["sha256"])


@pytest.mark.parametrize("listed", ["../outside.txt", "/etc/passwd", "data/../../outside.txt"])
def test_a_bag_whose_manifest_names_a_path_outside_it_is_refused_before_copying(
        make_bag: Any, tmp_path: Path, listed: str) -> None:
    bag = make_bag("rec")
    (tmp_path / "outside.txt").write_text("not part of the bag\n")
    with open(bag / "manifest-sha256.txt", "a", encoding="utf-8") as fh:
        fh.write(f"{'0' * 64}  {listed}\n")
    with pytest.raises(DepositError, match="unsafe path"):
        open_target(((tmp_path / "store").as_uri() + "?create=1")).put(bag)
    assert not (tmp_path / "store" / "rec.v1").exists()
