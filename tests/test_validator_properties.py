"""Property tests: any bag Strongroom's writer makes from a random tree is valid, and any single
damage to it - a flipped byte in a payload or tag file, a file deleted or added, a manifest line
edited - makes it invalid with the code that names the damage."""

from __future__ import annotations

import random
import tempfile
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.bag.validator import validate_bag
from pipeline.bag.writer import bag_directory

# Names with spaces, '%', CR/LF, non-ASCII in both normal forms: everything RFC 8493 must carry.
_PIECES = st.sampled_from(["a", "B", " ", "%", "%25", "\n", "\r", "x.txt", "é",
                           unicodedata.normalize("NFD", "é"), "ñ", "~", "-", "0D", "雪"])
_NAME = st.lists(_PIECES, min_size=1, max_size=4).map("".join).filter(
    lambda n: n.strip() not in ("", ".", "..") and not n.startswith("."))
# The writer refuses a top-level payload name starting with '~' (it checks the path relative to
# data/ for home references, although data/~x is safe in a bag): reported to the lead.
_PATH = st.lists(_NAME, min_size=1, max_size=5).filter(lambda p: not p[0].startswith("~"))
_TREE = st.lists(st.tuples(_PATH, st.binary(max_size=40)), min_size=1, max_size=6)
_SETTINGS = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _write_tree(root: Path, tree: list[tuple[list[str], bytes]]) -> int:
    """Write the files that do not clash (a name used as both file and directory); return count."""
    written: set[tuple[str, ...]] = set()
    for parts, content in tree:
        key = tuple(unicodedata.normalize("NFC", p).casefold() for p in parts)
        clash = any(key[:i] in written for i in range(1, len(key) + 1)) or any(
            w[:len(key)] == key for w in written)
        if clash:
            continue
        target = root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.add(key)
    return len(written)


def _make_bag(base: Path, tree: list[tuple[list[str], bytes]]) -> Path:
    src = base / "src"
    src.mkdir()
    _write_tree(src, tree)
    (base / "bags").mkdir()
    # verifiers=[]: this test is the validator's own judgement of what the writer made.
    return bag_directory(src, base / "bags" / "b.v1", verifiers=[]).path


def _codes(bag: Path) -> tuple[bool, set[str]]:
    report = validate_bag(bag)
    return report.valid, {f.code for f in report.errors}


@_SETTINGS
@given(tree=_TREE)
def test_writer_bags_are_valid(tree: list[tuple[list[str], bytes]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bag = _make_bag(Path(tmp), tree)
        report = validate_bag(bag)
        assert report.valid, [f.line() for f in report.errors]
        assert report.payload_files == len(list((bag / "data").rglob("*"))) - len(
            [p for p in (bag / "data").rglob("*") if p.is_dir()])


def _payload(bag: Path) -> list[Path]:
    return sorted(p for p in (bag / "data").rglob("*") if p.is_file())


def _flip(path: Path, rng: random.Random) -> tuple[int, int]:
    """Flip one random bit of the file; return the byte's offset and its value before."""
    data = bytearray(path.read_bytes())
    i = rng.randrange(len(data))
    before = data[i]
    data[i] ^= 1 << rng.randrange(8)
    path.write_bytes(bytes(data))
    return i, before


def _only_digest_case(path: Path, flipped: tuple[int, int]) -> bool:
    """Whether the flipped byte turned a digest's hex letter into the same letter's other case.

    RFC 8493 (2.1.3) lets a checksum use upper- or lowercase letters, and nothing lists a tag
    manifest's own digest: such a flip in a tag manifest leaves the bag valid, and must."""
    offset, before = flipped
    data = path.read_bytes()
    line_start = data.rfind(b"\n", 0, offset) + 1
    in_digest = b" " not in data[line_start:offset + 1]
    old, new = chr(before), chr(data[offset])
    return in_digest and old in "abcdefABCDEF" and new != old and new.lower() == old.lower()


@_SETTINGS
@given(tree=_TREE, seed=st.integers(0, 2**32 - 1),
       damage=st.sampled_from(["flip-payload", "flip-tag", "flip-tagmanifest", "delete-payload",
                               "add-payload", "delete-tag", "edit-digest", "edit-path"]))
def test_any_damage_is_caught_with_its_code(tree: list[tuple[list[str], bytes]], seed: int, damage: str) -> None:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        bag = _make_bag(Path(tmp), tree)
        payload = _payload(bag)
        tags = ["bagit.txt", "bag-info.txt", "manifest-sha512.txt", "manifest-sha256.txt"]
        expected: set[str]
        if damage == "flip-payload":
            candidates = [p for p in payload if p.stat().st_size]
            if not candidates:
                return
            _flip(rng.choice(candidates), rng)
            expected = {"PAYLOAD-DIGEST-MISMATCH"}
        elif damage == "flip-tag":
            _flip(bag / rng.choice(tags), rng)
            expected = {"TAG-DIGEST-MISMATCH"}
        elif damage == "flip-tagmanifest":
            tagmanifest = bag / rng.choice(["tagmanifest-sha512.txt", "tagmanifest-sha256.txt"])
            if _only_digest_case(tagmanifest, _flip(tagmanifest, rng)):
                report = validate_bag(bag)
                assert report.valid, [f.line() for f in report.findings]
                return
            expected = {"TAG-DIGEST-MISMATCH", "MANIFEST-DIGEST-SYNTAX", "TAG-MISSING", "MANIFEST-LINE",
                        "TAG-ENCODING-DECODE", "PATH-UNSAFE", "TAG-MANIFEST-OMITS-MANIFEST"}
        elif damage == "delete-payload":
            rng.choice(payload).unlink()
            expected = {"PAYLOAD-MISSING"}
        elif damage == "add-payload":
            (bag / "data" / "added by someone.bin").write_bytes(b"")
            expected = {"PAYLOAD-UNLISTED"}
        elif damage == "delete-tag":
            (bag / rng.choice(tags[1:])).unlink()
            expected = {"TAG-MISSING"}
        else:
            _edit_manifest_line(bag, rng, damage)
            expected = {"PAYLOAD-DIGEST-MISMATCH"} if damage == "edit-digest" else {"PAYLOAD-MISSING"}
        valid, codes = _codes(bag)
        assert not valid and codes & expected, (damage, codes)


def _edit_manifest_line(bag: Path, rng: random.Random, damage: str) -> None:
    manifest = bag / rng.choice(["manifest-sha512.txt", "manifest-sha256.txt"])
    lines = manifest.read_text(encoding="utf-8").splitlines(keepends=True)
    i = rng.randrange(len(lines))
    digest, sep, path = lines[i].partition("  ")
    if damage == "edit-digest":
        j = rng.randrange(len(digest))
        digest = digest[:j] + ("0" if digest[j] != "0" else "1") + digest[j + 1:]
    else:
        path = path.replace("data/", "data/renamed-", 1)
    lines[i] = digest + sep + path
    manifest.write_text("".join(lines), encoding="utf-8")
