"""The ocfl:// deposit target: bags as versions of OCFL 1.1 objects, checked by ocfl-py's validator."""

from __future__ import annotations

import filecmp
import shutil
from pathlib import Path
from typing import Any

import ocfl
import pytest
from ocfl.validator import Validator

from pipeline.bag.validator import validate_bag
from pipeline.deposit import open_target
from pipeline.deposit.base import DIGEST, bag_expectations
from pipeline.deposit.ocfl import OcflTarget, object_id_of
from pipeline.errors import DepositError, DepositMismatchError


def assert_valid_root(root: Path, objects: int) -> None:
    """ocfl-py's validator, over the whole storage root and every object, digests included."""
    store = ocfl.StorageRoot(root=str(root))
    store.open_root_fs()
    store.check_root_structure()
    found, good, errors = store.validate_hierarchy(validate_objects=True, check_digests=True)
    assert (found, good, errors) == (objects, objects, [])


def checkout(root: Path, identifier: str, version: int, dest: Path) -> Path:
    """Extract one version with ocfl-py (not with Strongroom) into ``dest``."""
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of(identifier))
    ocfl.Object(path=str(objdir)).extract(objdir=str(objdir), version=f"v{version}", dstdir=str(dest))
    return dest


def same_tree(a: Path, b: Path) -> bool:
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only:
        return False
    _, bad, errs = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    return not bad and not errs and all(same_tree(a / d, b / d) for d in cmp.common_dirs)


@pytest.fixture
def two_versions(make_bag: Any, tmp_path: Path) -> tuple[Path, Path]:
    odd = "sub dir/ünï 50%25 [x].txt"  # spaces, non-ASCII, '%' and brackets in a content path
    v1 = make_bag("icg-peru", 1, {"a.txt": b"first text\n", "b.txt": b"kept\n", odd: b"odd\n"})
    v2 = make_bag("icg-peru", 2, {"a.txt": b"second text\n", "b.txt": b"kept\n", "c.txt": b"new\n",
                                  odd: b"odd, changed\n"})
    return v1, v2


def test_each_bag_version_becomes_a_version_of_one_valid_ocfl_object(two_versions: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    v1, v2 = two_versions
    root = tmp_path / "ocfl"
    target = open_target(f"ocfl://{root}?create=1")
    first = target.put(v1)
    assert first.outcome == "deposited" and first.verified and first.location == f"ocfl://{root}/icg-peru.v1"
    assert_valid_root(root, objects=1)
    second = target.put(v2)
    assert second.outcome == "deposited" and "v2" in second.detail
    assert_valid_root(root, objects=1)
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("icg-peru"))
    inventory = ocfl.Object(path=str(objdir)).parse_inventory()
    assert inventory.id == "urn:strongroom:record:icg-peru" and inventory.version_directories == ["v1", "v2"]
    # every version, checked out by ocfl-py, is the whole bag (tag files too) and a valid bag
    for n, bag in ((1, v1), (2, v2)):
        out = checkout(root, "icg-peru", n, tmp_path / f"out{n}")
        assert same_tree(bag, out)
        assert validate_bag(out).valid  # (bagit-python misreads the '%' name, a known shortfall)
    assert target.list() == ["icg-peru.v1", "icg-peru.v2"]
    assert not (root / "extensions" / "strongroom-staging").exists()


def test_same_versions_again_are_no_ops(two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    v1, v2 = two_versions
    target = open_target(f"ocfl://{tmp_path / 'ocfl'}?create=1")
    target.put(v1)
    target.put(v2)
    assert [target.put(v1).outcome, target.put(v2).outcome] == ["unchanged", "unchanged"]
    assert_valid_root(tmp_path / "ocfl", objects=1)


def test_versions_are_deposited_in_order(two_versions: tuple[Path, Path], tmp_path: Path) -> None:
    _, v2 = two_versions
    with pytest.raises(DepositError, match="deposit icg-peru.v1 first"):
        open_target(f"ocfl://{tmp_path / 'ocfl'}?create=1").put(v2)


def test_a_different_bag_under_a_held_version_is_refused(two_versions: tuple[Path, Path], make_bag: Any,
                                                        tmp_path: Path) -> None:
    v1, _ = two_versions
    impostor = make_bag("icg-peru", 1, {"a.txt": b"not the same\n"}, bags=tmp_path / "elsewhere")
    root = tmp_path / "ocfl"
    target = open_target(f"ocfl://{root}?create=1")
    target.put(v1)
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("icg-peru"))
    before = (objdir / "inventory.json").read_bytes()
    with pytest.raises(DepositMismatchError, match="nothing overwritten"):
        target.put(impostor)
    assert (objdir / "inventory.json").read_bytes() == before
    assert_valid_root(root, objects=1)


@pytest.mark.parametrize("published", ["nothing", "inventory-only"])
def test_a_version_renamed_in_but_not_published_is_rolled_forward(two_versions: tuple[Path, Path],
                                                                  tmp_path: Path, published: str) -> None:
    """The crash windows of a new version: vN is in the object, the root inventory (or sidecar) is not yet."""
    v1, v2 = two_versions
    root = tmp_path / "ocfl"
    target = open_target(f"ocfl://{root}?create=1")
    target.put(v1)
    target.put(v2)
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("icg-peru"))
    shutil.copyfile(objdir / "v1" / "inventory.json.sha512", objdir / "inventory.json.sha512")
    if published == "nothing":
        shutil.copyfile(objdir / "v1" / "inventory.json", objdir / "inventory.json")
    assert not Validator(check_digests=True).validate_object(str(objdir))  # the object as a crash left it
    assert target.put(v2).outcome == "unchanged"
    assert_valid_root(root, objects=1)


def test_fixity_rereads_the_version_and_verify_catches_damage(two_versions: tuple[Path, Path],
                                                              tmp_path: Path) -> None:
    v1, v2 = two_versions
    root = tmp_path / "ocfl"
    target = open_target(f"ocfl://{root}?create=1")
    target.put(v1)
    target.put(v2)
    expected = bag_expectations(v2)
    assert target.verify("icg-peru.v2", expected) == []
    found = target.fixity("icg-peru.v2", ["sha512"])
    assert {p: d["sha512"] for p, (_, d) in found.items()} == {p: d["sha512"] for p, (_, d) in expected.items()}
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("icg-peru"))
    (objdir / "v1" / "content" / "data" / "b.txt").write_bytes(b"kapt\n")  # v2 inherits b.txt from v1
    findings = target.verify("icg-peru.v2", expected)
    assert {(f.code, f.path) for f in findings} == {(DIGEST, "data/b.txt")}
    with pytest.raises(DepositError, match="holds no bag named icg-peru.v3"):
        target.fixity("icg-peru.v3", ["sha512"])


def test_a_directory_that_is_not_a_storage_root_is_refused(make_bag: Any, tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "someone-elses.txt").write_text("x")
    with pytest.raises(DepositError, match="not an OCFL 1.1 storage root"):
        OcflTarget(f"ocfl://{tmp_path / 'busy'}?create=1").put(make_bag("rec"))


def test_a_bag_whose_name_and_identifier_disagree_is_refused(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")
    renamed = bag.rename(bag.parent / "other.v1")
    with pytest.raises(DepositError, match="External-Identifier is 'rec'"):
        open_target(f"ocfl://{tmp_path / 'ocfl'}?create=1").put(renamed)


def test_an_unusable_place_is_one_deposit_error_not_a_raw_os_error(make_bag: Any, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(DepositError, match="a-file"):
        open_target(f"ocfl://{tmp_path / 'a-file' / 'ocfl'}").put(make_bag("rec"))


def test_a_content_file_replaced_by_a_link_is_not_read(make_bag: Any, tmp_path: Path) -> None:
    # A link inside the storage root could point anywhere; it is no copy and is never followed.
    bag = make_bag("rec")
    target = OcflTarget((tmp_path / "ocfl").as_uri().replace("file:", "ocfl:") + "?create=1")
    target.put(bag)
    [held] = (tmp_path / "ocfl").rglob("v1/content/data/text.txt")
    held.unlink()
    held.symlink_to(bag / "data" / "text.txt")
    assert "data/text.txt" not in target.fixity("rec.v1", ["sha256"])
    assert "data/text.txt" in {f.path for f in target.verify("rec.v1", bag_expectations(bag))}


@pytest.mark.parametrize("damage", [
    lambda inv: inv["versions"].update(v1="garbage"),
    lambda inv: inv.update(versions={"vX": {}}),
    lambda inv: inv.update(manifest=["not", "a", "map"]),
    lambda inv: inv["versions"]["v1"].update(state={"abc": "data/x"}),
])
def test_a_malformed_inventory_is_one_deposit_error(make_bag: Any, tmp_path: Path, damage: Any) -> None:
    # Inventories are read from a repository anyone may have edited: a bad one is named, not a crash.
    import hashlib
    import json

    bag = make_bag("rec")
    target = OcflTarget((tmp_path / "ocfl").as_uri().replace("file:", "ocfl:") + "?create=1")
    target.put(bag)
    [inventory] = [p for p in (tmp_path / "ocfl").rglob("inventory.json") if p.parent.name == "urn%3astrongroom%3arecord%3arec"]
    data = json.loads(inventory.read_text())
    damage(data)
    raw = json.dumps(data).encode()
    inventory.write_bytes(raw)
    inventory.with_name("inventory.json.sha512").write_text(f"{hashlib.sha512(raw).hexdigest()} inventory.json\n")
    with pytest.raises(DepositError, match="not an OCFL inventory"):
        target.put(bag)
    with pytest.raises(DepositError, match="not an OCFL inventory"):
        target.fixity("rec.v1", ["sha256"])
