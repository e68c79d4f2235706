"""The validator's fast paths give exactly what the general ones give.

Strongroom's validator reads the usual manifest line with one regex and hashes files smaller than
a read block on the calling thread, larger ones through pipeline.fixity (files of
PARALLEL_THRESHOLD or more several at once, after the small ones).  These tests hold the fast
paths to the general ones: same parse, same findings, findings still in index order.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.bag.validate_codes import Collector
from pipeline.bag.validate_manifests import _parse_line, _plain_line, _plain_path
from pipeline.bag.validate_tree import DigestColumn, walk
from pipeline.bag.validator import validate_bag
from pipeline.bag.writer import bag_directory
from pipeline.fixity import CHUNK, PARALLEL_THRESHOLD

_PIECES = st.sampled_from(["data/", "a", "/", ".", "..", "./", "*", "%0A", "%25", "%", "~", "C:", "\\",
                           "\x00", " ", "\t", "é", "b.txt", "//", "x"])
_PATHS = st.lists(_PIECES, min_size=0, max_size=6).map("".join)
_SEPARATORS = st.sampled_from([" ", "  ", "\t", " \t ", "", "x"])


@settings(max_examples=400, deadline=None)
@given(digest_bytes=st.binary(min_size=32, max_size=32), upper=st.booleans(), sep=_SEPARATORS, path=_PATHS,
       trim=st.booleans())
def test_a_line_the_regex_takes_parses_as_the_general_parser_would(digest_bytes: bytes, upper: bool, sep: str,
                                                                    path: str, trim: bool) -> None:
    hexdigest = digest_bytes.hex().upper() if upper else digest_bytes.hex()
    line = f"{hexdigest[:-1] if trim else hexdigest}{sep}{path}"
    m = _plain_line("sha256").fullmatch(line)  # type: ignore[union-attr]
    if m is None or not _plain_path(m.group(2)):
        return  # the general parser alone decides
    c = Collector(bag=Path("unused"))
    assert _parse_line(c, "manifest-sha256.txt", 1, line, "sha256") == (m.group(2), bytes.fromhex(m.group(1)))
    assert c.findings == []


def test_the_regex_takes_the_usual_line() -> None:
    """The fast path is not dead code: a writer's line goes through it."""
    line = f"{'ab' * 64}  data/box-0001/page-000001.bin"
    m = _plain_line("sha512").fullmatch(line)  # type: ignore[union-attr]
    assert m is not None and _plain_path(m.group(2))


def test_digest_column_keeps_fixed_and_odd_widths() -> None:
    column = DigestColumn(4, reserve=2)
    column.put(1, b"\x01\x02\x03\x04")
    column.put(5, b"\x09\x09")  # a row past the reserve, a digest of another width
    assert [column.get(r) for r in range(7)] == [None, b"\x01\x02\x03\x04", None, None, None, b"\x09\x09", None]
    assert column.has(1) and not column.has(0) and not column.has(99)


def _flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_every_size_class_is_verified_and_findings_keep_index_order(tmp_path: Path) -> None:
    sizes = {"a-small.bin": 3000, "b-medium.bin": 2 * CHUNK, "c-large.bin": PARALLEL_THRESHOLD + 5,
             "d-small.bin": 10, "e-fine.bin": 7}
    src = tmp_path / "src"
    src.mkdir()
    for name, size in sizes.items():
        (src / name).write_bytes(hashlib.shake_256(name.encode()).digest(size))
    bag = bag_directory(src, tmp_path / "bag", verifiers=[]).path
    for name in ("a-small.bin", "b-medium.bin", "c-large.bin", "d-small.bin"):
        _flip(bag / "data" / name, sizes[name] - 1)
    calls: list[tuple[int, int]] = []
    report = validate_bag(bag, progress=lambda b, f: calls.append((b, f)))
    # The index (walk) order, which the large file - hashed last - must not change.
    order = [key for key in walk(Collector(bag=bag)).payload.rows if not key.endswith("e-fine.bin")]
    assert order.index("data/c-large.bin") != len(order) - 1, "the test needs a file after the large one"
    mismatches = [(f.path, f.message.split()[0]) for f in report.findings]
    expected = [(key, alg) for key in order for alg in ("sha256", "sha512")]
    assert [f.code for f in report.findings] == ["PAYLOAD-DIGEST-MISMATCH"] * len(expected)
    assert mismatches == expected
    for f in report.findings:
        assert f.expected is not None and f.found is not None and f.expected != f.found
    assert calls[-1] == (report.payload_bytes, report.payload_files) == (sum(sizes.values()), len(sizes))
    assert calls == sorted(calls)


def test_a_spilled_index_gives_the_same_findings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Digests kept in a temporary file (as for bags of SPILL_ROWS files or more), manifests in any order."""
    from pipeline.bag import validate_tree

    src = tmp_path / "src"
    for i in range(300):
        (src / f"d{i % 7}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 7}" / f"f{i:03d}.txt").write_bytes(f"{i}\n".encode() * (i % 5 + 1))
    bag = bag_directory(src, tmp_path / "bag", verifiers=[]).path
    manifest = bag / "manifest-sha256.txt"
    manifest.write_text("".join(reversed(manifest.read_text().splitlines(keepends=True))))  # out of row order
    _flip(bag / "data" / "d3" / "f150.txt", 0)
    (bag / "data" / "d1" / "f001.txt").unlink()
    in_memory = validate_bag(bag).findings
    monkeypatch.setattr(validate_tree, "SPILL_ROWS", 1)
    spilled = validate_bag(bag).findings
    assert spilled == in_memory
    assert {f.code for f in spilled} >= {"PAYLOAD-DIGEST-MISMATCH", "PAYLOAD-MISSING", "TAG-DIGEST-MISMATCH"}


def test_the_flat_keys_behave_as_a_dict() -> None:
    from pipeline.bag.validate_tree import Keys

    keys, plain = Keys(), {}
    names = [f"data/{i}/n\u00e9-{i * 7919 % 1000}" for i in range(2000)] + ["data/\udcff-undecodable", "data/0/n\u00e9-0"]
    for value, name in enumerate(names):
        keys[name] = value
        plain[name] = value
    assert len(keys) == len(plain) and list(keys.items()) == list(plain.items())
    assert all(keys.get(name) == plain[name] for name in plain) and keys.get("data/absent") is None
    assert "data/\udcff-undecodable" in keys and "data/absent" not in keys
