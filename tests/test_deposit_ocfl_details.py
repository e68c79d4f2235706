"""OCFL details an independent validator found: object ids are URIs, OCFL 1.0 storage roots, and an
object another tool made under the bag's id.  ocfl-py (not Strongroom) judges every result."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import ocfl
import pytest
from ocfl.validator import Validator

from pipeline.deposit.ocfl import OcflTarget, object_id_of
from pipeline.errors import DepositError

from .test_deposit_ocfl import assert_valid_root


def _target(root: Path, create: bool = True) -> OcflTarget:
    return OcflTarget(f"ocfl://{root}" + ("?create=1" if create else ""))


def _objdir(root: Path, object_id: str) -> Path:
    return root / ocfl.StorageRoot(root=str(root)).object_path(object_id)


def _foreign_object(root: Path, object_id: str, tmp_path: Path, *, bag: Path | None = None) -> Path:
    """An object made by ocfl-py directly (another tool), holding a plain folder or ``bag``."""
    source = bag or tmp_path / "foreign-src"
    if bag is None:
        source.mkdir()
        (source / "scan-0001.tif").write_bytes(b"II*\x00 not a bag")
    objdir = _objdir(root, object_id)
    objdir.parent.mkdir(parents=True, exist_ok=True)
    meta = ocfl.VersionMetadata(created="2026-01-01T00:00:00Z", message="ingest", name="OtherTool",
                                address="mailto:other@example.org")
    ocfl.Object(identifier=object_id, spec_version="1.1").create(srcdir=str(source), metadata=meta,
                                                                 objdir=str(objdir))
    return objdir


def test_the_inventory_id_is_the_records_uri_and_ocfl_py_warns_nothing(make_bag: Any, tmp_path: Path) -> None:
    root = tmp_path / "ocfl"
    _target(root).put(make_bag("rec"))
    objdir = _objdir(root, "urn:strongroom:record:rec")
    assert json.loads((objdir / "inventory.json").read_text())["id"] == "urn:strongroom:record:rec"
    validator = Validator(log_warnings=True, check_digests=True)
    assert validator.validate_object(str(objdir)), validator.status_str()
    assert "W005" not in validator.status_str() and validator.log.num_warnings == 0, validator.status_str()
    assert _target(root).list() == ["rec.v1"] and _target(root).locate("rec.v1")


@pytest.mark.parametrize(("identifier", "object_id"), [
    ("icg-peru-1986", "urn:strongroom:record:icg-peru-1986"), ("ark:/12345/x9", "ark:/12345/x9"),
    ("doi:10.1/x", "doi:10.1/x"), ("a:b", "a:b")])
def test_object_ids(identifier: str, object_id: str) -> None:
    assert object_id_of(identifier) == object_id


def test_an_ocfl_1_0_storage_root_is_written_as_ocfl_1_0(make_bag: Any, tmp_path: Path) -> None:
    root = tmp_path / "ocfl10"
    ocfl.StorageRoot(root=str(root), layout_name="0003-hash-and-id-n-tuple-storage-layout").initialize(
        spec_version="1.0")
    target = _target(root, create=False)
    assert target.destination_problem() is None
    target.put(make_bag("rec", 1, {"a.txt": b"one\n"}))
    target.put(make_bag("rec", 2, {"a.txt": b"two\n", "b.txt": b"new\n"}))
    objdir = _objdir(root, "urn:strongroom:record:rec")
    assert (objdir / "0=ocfl_object_1.0").is_file() and not (root / "0=ocfl_1.1").exists()
    types = {json.loads(p.read_text())["type"] for p in objdir.rglob("inventory.json")}
    assert types == {"https://ocfl.io/1.0/spec/#inventory"}
    assert_valid_root(root, objects=1)
    assert target.list() == ["rec.v1", "rec.v2"]


def test_a_storage_root_of_another_ocfl_version_is_refused_saying_which(make_bag: Any, tmp_path: Path) -> None:
    root = tmp_path / "future"
    root.mkdir()
    (root / "0=ocfl_2.0").write_text("ocfl_2.0\n")
    with pytest.raises(DepositError, match=r"declares 0=ocfl_2\.0; Strongroom writes OCFL 1\.1 and 1\.0"):
        _target(root).put(make_bag("rec"))
    assert sorted(p.name for p in root.iterdir()) == ["0=ocfl_2.0"]


@pytest.mark.parametrize("object_id", ["urn:strongroom:record:rec", "rec"])
def test_an_object_another_tool_made_under_the_bags_id_is_named_and_left_alone(
        make_bag: Any, tmp_path: Path, object_id: str) -> None:
    root = tmp_path / "ocfl"
    _target(root).put(make_bag("other"))  # the root exists, made by Strongroom
    objdir = _foreign_object(root, object_id, tmp_path)
    before = {p: p.read_bytes() for p in objdir.rglob("*") if p.is_file()}
    for version in (1, 2):
        bag = make_bag("rec", version)
        with pytest.raises(DepositError) as caught:
            _target(root).put(bag)
        text = str(caught.value)
        assert f"already holds OCFL object '{object_id}', not made by Strongroom" in text
        assert "version v1 (made by OtherTool) holds no bag" in text and "DEP001" not in text
        shutil.rmtree(bag)
    assert {p: p.read_bytes() for p in objdir.rglob("*") if p.is_file()} == before


def test_an_object_an_earlier_strongroom_made_under_the_bare_id_is_extended(make_bag: Any,
                                                                           tmp_path: Path) -> None:
    root = tmp_path / "ocfl"
    _target(root).put(make_bag("other"))
    _foreign_object(root, "rec", tmp_path, bag=make_bag("rec", 1))  # the bag itself as v1: as before
    result = _target(root).put(make_bag("rec", 2, {"text.txt": b"changed\n"}))
    assert result.outcome == "deposited" and "OCFL object rec v2" in (result.detail or "")
    assert not _objdir(root, "urn:strongroom:record:rec").exists()
    assert_valid_root(root, objects=2)
