"""BagIt Profiles 1.4: every key satisfied and violated, the fatal checks first, profile loading,
and the two profiles Strongroom ships (its own and Beyond the Repository) on real bags."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from pipeline.bag.profiles import Profile, check_profile, load_profile, shipped_profile, shipped_profiles
from pipeline.bag.validator import validate_bag
from pipeline.errors import UsageError

DATA = Path(__file__).parent / "data"
EVERY_KEY = DATA / "profiles" / "every-key-1.4.json"
EVERY_KEY_ID = "urn:example:strongroom-tests:every-key"
STRONGROOM_ID = "urn:strongroom:bagit-profile:1.0"
BTR_ID = "https://github.com/dpscollaborative/btr_bagit_profile/releases/download/1.0/btr-bagit-profile.json"


def _retag(bag: Path) -> None:
    for alg in ("sha512", "sha256"):
        names = sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file()
                       and p.relative_to(bag).parts[0] != "data" and not p.name.startswith("tagmanifest-"))
        lines = "".join(f"{hashlib.new(alg, (bag / n).read_bytes()).hexdigest()}  {n}\n" for n in names)
        (bag / f"tagmanifest-{alg}.txt").write_text(lines, encoding="utf-8")


def _bag(tmp_path: Path, *info: str, source: str = "VALID_plain-1.0") -> Path:
    """A private copy of a fixture bag with extra bag-info lines (tag manifests kept true)."""
    bag = tmp_path / "bag"
    shutil.copytree(DATA / "bags" / source, bag)
    with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
        fh.writelines(f"{line}\n" for line in info)
    _retag(bag)
    return bag


def _profile(tmp_path: Path, **changes: Any) -> Profile:
    """The every-key profile with some keys changed (pass JSON key names with '_' for '-')."""
    data = json.loads(EVERY_KEY.read_text(encoding="utf-8"))
    for key, value in changes.items():
        data[key.replace("_", "-").replace("Allow-Fetch-txt", "Allow-Fetch.txt")
             .replace("Fetch-txt-Required", "Fetch.txt-Required")] = value
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return load_profile(path)


def _codes(findings: list[Any]) -> set[str]:
    return {f.code for f in findings}


def test_every_key_profile_is_satisfied(tmp_path: Path) -> None:
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {EVERY_KEY_ID}")
    assert check_profile(bag, load_profile(EVERY_KEY)) == []


# (profile keys changed, bag-info lines added, bag change, expected code or None)
CASES: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    ("Accept-BagIt-Version ok", {"Accept_BagIt_Version": ["0.97", "1.0"]}, None, None),
    ("Accept-BagIt-Version violated", {"Accept_BagIt_Version": ["0.97"]}, None, "PROFILE-BAGIT-VERSION"),
    ("Serialization forbidden ok", {"Serialization": "forbidden"}, None, None),
    ("Serialization required violated", {"Serialization": "required"}, None, "PROFILE-SERIALIZATION"),
    ("Bag-Info required violated", {"Bag_Info": {"Contact-Name": {"required": True}}}, None,
     "PROFILE-BAGINFO-REQUIRED"),
    ("Bag-Info values violated", {"Bag_Info": {"Source-Organization": {"values": ["Elsewhere"]}}}, None,
     "PROFILE-BAGINFO-VALUE"),
    ("Bag-Info repeatable violated", {"Bag_Info": {"Bagging-Date": {"repeatable": False}}},
     "Bagging-Date: 2026-01-03", "PROFILE-BAGINFO-REPEATED"),
    ("Bag-Info repeatable ok", {"Bag_Info": {"Bagging-Date": {"repeatable": True}}},
     "Bagging-Date: 2026-01-03", None),
    ("Bag-Info recommended warns", {"Bag_Info": {"Contact-Email": {"recommended": True}}}, None,
     "PROFILE-BAGINFO-RECOMMENDED"),
    ("Manifests-Required violated", {"Manifests_Required": ["md5"], "Manifests_Allowed": None}, None,
     "PROFILE-MANIFEST-REQUIRED"),
    ("Manifests-Allowed violated", {"Manifests_Allowed": ["sha512"]}, None, "PROFILE-MANIFEST-NOT-ALLOWED"),
    ("Tag-Manifests-Required violated", {"Tag_Manifests_Required": ["sha384"], "Tag_Manifests_Allowed": None},
     None, "PROFILE-TAG-MANIFEST-REQUIRED"),
    ("Tag-Manifests-Allowed violated", {"Tag_Manifests_Allowed": ["sha512"]}, None,
     "PROFILE-TAG-MANIFEST-NOT-ALLOWED"),
    ("Allow-Fetch.txt violated", {"Allow_Fetch_txt": False}, "fetch", "PROFILE-FETCH-NOT-ALLOWED"),
    ("Allow-Fetch.txt ok", {"Allow_Fetch_txt": True}, "fetch", None),
    ("Fetch.txt-Required violated", {"Fetch_txt_Required": True}, None, "PROFILE-FETCH-REQUIRED"),
    ("Fetch.txt-Required ok", {"Fetch_txt_Required": True}, "fetch", None),
    ("Data-Empty violated", {"Data_Empty": True, "Payload_Files_Required": []}, None, "PROFILE-DATA-NOT-EMPTY"),
    ("Data-Empty ok", {"Data_Empty": True, "Payload_Files_Required": []}, "empty-data", None),
    ("Tag-Files-Required violated", {"Tag_Files_Required": ["metadata/dc.xml"]}, None,
     "PROFILE-TAG-FILE-REQUIRED"),
    ("Tag-Files-Required ok", {"Tag_Files_Required": ["metadata/dc.xml"]}, "metadata", None),
    ("Tag-Files-Allowed violated", {}, "extra-tag", "PROFILE-TAG-FILE-NOT-ALLOWED"),
    ("Tag-Files-Allowed ok", {"Tag_Files_Allowed": ["metadata/*", "notes.txt"]}, "extra-tag", None),
    ("Payload-Files-Required file violated", {"Payload_Files_Required": ["data/missing.txt"]}, None,
     "PROFILE-PAYLOAD-FILE-REQUIRED"),
    ("Payload-Files-Required dir violated", {"Payload_Files_Required": ["data/nowhere/"]}, None,
     "PROFILE-PAYLOAD-FILE-REQUIRED"),
    ("Payload-Files-Allowed violated", {"Payload_Files_Allowed": ["data/hello.txt", "data/sub/"],
                                        "Payload_Files_Required": ["data/hello.txt"]}, None,
     "PROFILE-PAYLOAD-FILE-NOT-ALLOWED"),
    ("Payload-Files-Allowed ok", {"Payload_Files_Allowed": ["data/hello.txt", "data/sub/*"]}, None, None),
]


def _change_bag(bag: Path, how: str | None) -> None:
    if how == "fetch":
        (bag / "fetch.txt").write_text("https://example.org/hello.txt 15 data/hello.txt\n", encoding="utf-8")
    elif how == "empty-data":
        shutil.rmtree(bag / "data")
        (bag / "data").mkdir()
        (bag / "data" / "placeholder").write_bytes(b"")
    elif how == "metadata":
        (bag / "metadata").mkdir()
        (bag / "metadata" / "dc.xml").write_text("<dc/>\n", encoding="utf-8")
    elif how == "extra-tag":
        (bag / "notes.txt").write_text("a tag file\n", encoding="utf-8")
    elif how:
        with open(bag / "bag-info.txt", "a", encoding="utf-8") as fh:
            fh.write(how + "\n")


@pytest.mark.parametrize("changes, bag_change, code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_profile_key(tmp_path: Path, changes: dict[str, Any], bag_change: str | None, code: str | None) -> None:
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {EVERY_KEY_ID}")
    _change_bag(bag, bag_change)
    findings = check_profile(bag, _profile(tmp_path, **changes))
    if code is None:
        assert findings == [], [f.line() for f in findings]
    else:
        assert code in _codes(findings), [f.line() for f in findings]


def test_fatal_checks_come_first_and_stop(tmp_path: Path) -> None:
    """A refused BagIt version is reported alone, however much else is wrong."""
    bag = _bag(tmp_path)  # no BagIt-Profile-Identifier either
    profile = _profile(tmp_path, Accept_BagIt_Version=["0.97"], Manifests_Required=["md5"],
                       Manifests_Allowed=None, Tag_Files_Required=["x.txt"], Tag_Files_Allowed=["*"])
    assert _codes(check_profile(bag, profile)) == {"PROFILE-BAGIT-VERSION"}


def test_bag_must_name_its_profile(tmp_path: Path) -> None:
    assert _codes(check_profile(_bag(tmp_path), load_profile(EVERY_KEY))) == {"PROFILE-IDENTIFIER"}


def test_a_bag_naming_another_profile_is_told_so(tmp_path: Path) -> None:
    """--profile FILE against a bag that names a different identifier: the message names both."""
    profile = load_profile(EVERY_KEY)
    found = [f for f in check_profile(_bag(tmp_path, "BagIt-Profile-Identifier: urn:example:other"), profile)
             if f.code == "PROFILE-IDENTIFIER"]
    assert len(found) == 1
    assert "'urn:example:other'" in found[0].message and profile.identifier in found[0].message
    assert "not this profile's own identifier" in found[0].message


@pytest.mark.parametrize("name, says", [("bad-required-not-allowed.json", "Manifests-Required"),
                                        ("bad-no-accept-version.json", "Accept-BagIt-Version"),
                                        ("bad-not-json.json", "not JSON")])
def test_bad_profiles_are_refused_in_one_line(name: str, says: str) -> None:
    with pytest.raises(UsageError) as exc:
        load_profile(DATA / "profiles" / name)
    assert says in str(exc.value) and name in str(exc.value) and "\n" not in str(exc.value)


def test_explicit_profile_through_validate_bag(tmp_path: Path) -> None:
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {EVERY_KEY_ID}")
    report = validate_bag(bag, profile=_profile(tmp_path, Manifests_Allowed=["sha512"]))
    assert not report.valid and _codes(report.findings) == {"PROFILE-MANIFEST-NOT-ALLOWED"}
    assert report.profiles == [EVERY_KEY_ID]


def test_named_but_unshipped_profile_is_said(tmp_path: Path) -> None:
    report = validate_bag(_bag(tmp_path, "BagIt-Profile-Identifier: urn:example:elsewhere"))
    assert report.valid and _codes(report.findings) == {"PROFILE-UNKNOWN"} and report.profiles == []


# --- the profiles Strongroom ships -----------------------------------------------------------

def test_shipped_profiles_load() -> None:
    ids = {p.identifier for p in shipped_profiles()}
    assert {STRONGROOM_ID, BTR_ID} <= ids
    assert shipped_profile(STRONGROOM_ID) is not None and shipped_profile("urn:nobody") is None


def _strongroom_bag(tmp_path: Path, *, algorithms: tuple[str, ...] = ("sha512", "sha256"),
                    info: tuple[tuple[str, str], ...] | None = None, metadata: bool = True,
                    verified: bool = False) -> Path:
    """A bag written by Strongroom's own writer, naming Strongroom's profile."""
    from pipeline.bag.writer import BagOptions, default_verifiers, scan_directory, write_bag

    src = tmp_path / "src"
    (src / "texts").mkdir(parents=True)
    (src / "texts" / "item.txt").write_text("an archived text\n", encoding="utf-8")
    info = info if info is not None else (("Source-Organization", "libcom.org"),
                                          ("External-Identifier", "item-1"),
                                          ("External-Description", "An archived text"))
    tags = {"metadata/dc.xml": b"<dc/>\n", "metadata/record.yaml": b"id: item-1\n"} if metadata else {}
    options = BagOptions(algorithms=algorithms, info=info, profile_id=STRONGROOM_ID,
                         tag_files=lambda _payload: tags, verifiers=default_verifiers() if verified else ())
    (tmp_path / "bags").mkdir()
    return write_bag(tmp_path / "bags" / "item-1.v1", scan_directory(src), options).path


def test_strongroom_profile_accepts_what_the_writer_makes(tmp_path: Path) -> None:
    """Written with the writer's own verifiers (this validator, then bagit-python) and re-checked."""
    report = validate_bag(_strongroom_bag(tmp_path, verified=True))
    assert report.valid and report.findings == [], [f.line() for f in report.findings]
    assert report.profiles == [STRONGROOM_ID]


def test_strongroom_profile_without_record_files(tmp_path: Path) -> None:
    """The metadata/ tag files are allowed, not required ('strongroom bag' has no record)."""
    assert validate_bag(_strongroom_bag(tmp_path, metadata=False)).valid


@pytest.mark.parametrize("change, code", [
    ("sha512-only", "PROFILE-MANIFEST-REQUIRED"),
    ("no-external-identifier", "PROFILE-BAGINFO-REQUIRED"),
    ("stray-tag-file", "PROFILE-TAG-FILE-NOT-ALLOWED"),
    ("fetch", "PROFILE-FETCH-NOT-ALLOWED"),
    ("version-0.97", "PROFILE-BAGIT-VERSION"),
])
def test_strongroom_profile_refuses(tmp_path: Path, change: str, code: str) -> None:
    if change == "sha512-only":
        bag = _strongroom_bag(tmp_path, algorithms=("sha512",))
    elif change == "no-external-identifier":
        bag = _strongroom_bag(tmp_path, info=(("Source-Organization", "x"), ("External-Description", "y")))
    else:
        bag = _strongroom_bag(tmp_path)
        _change_bag(bag, {"stray-tag-file": "extra-tag", "fetch": "fetch"}.get(change))
        if change == "version-0.97":
            (bag / "bagit.txt").write_text("BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")
    report = validate_bag(bag)
    assert not report.valid and code in _codes(report.findings), [f.line() for f in report.findings]


def test_btr_profile_satisfied_with_warnings_for_recommended(tmp_path: Path) -> None:
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {BTR_ID}")
    report = validate_bag(bag)
    assert report.valid and report.profiles == [BTR_ID]
    assert _codes(report.findings) == {"PROFILE-BAGINFO-RECOMMENDED"}
    assert any("Contact-Email" in f.message for f in report.findings)


@pytest.mark.parametrize("change, code", [
    ("no-source-organization", "PROFILE-BAGINFO-REQUIRED"),
    ("fetch", "PROFILE-FETCH-NOT-ALLOWED"),
    ("sha384-manifest", "PROFILE-MANIFEST-NOT-ALLOWED"),
    ("version-0.96", "PROFILE-BAGIT-VERSION"),
])
def test_btr_profile_refuses(tmp_path: Path, change: str, code: str) -> None:
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {BTR_ID}")
    if change == "no-source-organization":
        text = (bag / "bag-info.txt").read_text(encoding="utf-8")
        (bag / "bag-info.txt").write_text(text.replace("Source-Organization: Strongroom test archive\n", ""),
                                          encoding="utf-8")
    elif change == "sha384-manifest":
        data = (bag / "data" / "hello.txt").read_bytes()
        (bag / "manifest-sha384.txt").write_text(f"{hashlib.sha384(data).hexdigest()}  data/hello.txt\n")
    elif change == "version-0.96":
        (bag / "bagit.txt").write_text("BagIt-Version: 0.96\nTag-File-Character-Encoding: UTF-8\n")
    else:
        _change_bag(bag, change)
    findings = check_profile(bag, shipped_profile(BTR_ID))  # type: ignore[arg-type]
    assert code in _codes(findings), [f.line() for f in findings]


def test_every_profile_code_is_exercised() -> None:
    from pipeline.bag.validate_codes import CODES

    covered = {code for *_, code in CASES if code} | {"PROFILE-IDENTIFIER", "PROFILE-UNKNOWN"}
    assert {c for c in CODES if c.startswith("PROFILE-")} == covered


def test_profile_check_never_walks_a_linked_data_dir(tmp_path: Path) -> None:
    """data/ as a link to a directory outside: the profile check does not look inside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "forbidden.exe").write_bytes(b"MZ")
    bag = _bag(tmp_path, f"BagIt-Profile-Identifier: {EVERY_KEY_ID}")
    shutil.rmtree(bag / "data")
    (bag / "data").symlink_to(outside)
    findings = check_profile(bag, _profile(tmp_path, Payload_Files_Allowed=["data/*.txt"],
                                           Payload_Files_Required=[]))
    assert not any("forbidden" in f.path for f in findings)


@pytest.mark.parametrize("changes, says", [
    ({"BagIt_Profile_Info": {"BagIt-Profile-Identifier": "urn:x", "Source-Organization": "x", "Version": "1"}},
     "lacks External-Description"),
    ({"Allow_Fetch_txt": False, "Fetch_txt_Required": True}, "Fetch.txt-Required"),
    ({"Serialization": "required", "Accept_Serialization": []}, "Accept-Serialization"),
    ({"Tag_Files_Required": ["other/x.txt"]}, "Tag-Files-Required"),
    ({"Payload_Files_Required": ["extra/x.txt"], "Payload_Files_Allowed": ["data/*"]}, "Payload-Files-Required"),
    ({"Tag_Manifests_Required": ["md5"]}, "Tag-Manifests-Required"),
    ({"Serialization": "sometimes"}, "Serialization"),
    ({"Accept_BagIt_Version": []}, "Accept-BagIt-Version"),
])
def test_self_contradictory_profiles_are_refused(tmp_path: Path, changes: dict[str, Any], says: str) -> None:
    with pytest.raises(UsageError) as exc:
        _profile(tmp_path, **changes)
    assert says in str(exc.value)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("make, says", [
    (lambda p: os.mkfifo(p), "not a regular file"),  # opening a FIFO would wait forever
    (lambda p: p.mkdir(), "not a regular file"),
    (lambda p: None, "No such file or directory"),
    (lambda p: p.write_text("[1, 2]"), "not a BagIt profile: the profile must be a JSON object"),
    (lambda p: p.write_bytes(b" " * (2 << 20) + b"{}"), "larger than"),
])
def test_unusable_profile_files_are_one_clear_line(tmp_path: Path, make: Any, says: str) -> None:
    path = tmp_path / "profile.json"
    make(path)
    with pytest.raises(UsageError) as exc:
        load_profile(path)
    assert str(exc.value).startswith(f"{path}: ") and says in str(exc.value) and "\n" not in str(exc.value)
    assert "Errno" not in str(exc.value)
