"""Build the validator's fixture bags: one directory per finding code, named ``<CODE>_<what>``.

Run ``python tests/data/bags/build_fixtures.py`` to (re)create them; the result is committed so
that reviewers see the exact bytes the table test (tests/test_validator.py) runs on.  Each fixture
starts as a clean BagIt 1.0 bag and gets one defect; tag manifests are recomputed afterwards
(``retag``) unless the defect is in what they protect, so that the named code is the point.

Fixtures git cannot hold (empty directories, FIFOs, unreadable files) are made by the tests.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import unicodedata
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
BAGIT_10 = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
PAYLOAD = {"data/hello.txt": b"hello, archive\n", "data/sub/notes.txt": b"notes on the item\n"}
INFO = [("Source-Organization", "Strongroom test archive"), ("External-Identifier", "fixture-1"),
        ("External-Description", "A fixture bag"), ("Bagging-Date", "2026-01-02"),
        ("Bag-Software-Agent", "Strongroom fixtures")]


def digest(data: bytes, alg: str) -> str:
    return hashlib.new(alg, data).hexdigest()


def write_bag(dest: Path, payload: dict[str, bytes] | None = None, *, algs: tuple[str, ...] = ("sha512", "sha256"),
              bagit: bytes = BAGIT_10, info: list[tuple[str, str]] | None = None) -> Path:
    """A clean bag at ``dest``: payload, manifests, bag-info with a true Payload-Oxum, tag manifests."""
    payload = PAYLOAD if payload is None else payload
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "data").mkdir()
    for rel, data in payload.items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    (dest / "bagit.txt").write_bytes(bagit)
    for alg in algs:
        lines = "".join(f"{digest(d, alg)}  {encode(r)}\n" for r, d in sorted(payload.items()))
        (dest / f"manifest-{alg}.txt").write_text(lines, encoding="utf-8")
    items = list(INFO if info is None else info)
    items.append(("Payload-Oxum", f"{sum(len(d) for d in payload.values())}.{len(payload)}"))
    (dest / "bag-info.txt").write_text("".join(f"{k}: {v}\n" for k, v in items), encoding="utf-8")
    retag(dest, algs)
    return dest


def encode(path: str) -> str:
    """RFC 8493 §2.1.3: only CR, LF and '%' are percent-encoded in manifest paths."""
    return path.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def retag(dest: Path, algs: tuple[str, ...] = ("sha512", "sha256"), *, skip: tuple[str, ...] = ()) -> None:
    """Recompute the tag manifests over every tag file present (except ``skip``)."""
    for alg in algs:
        (dest / f"tagmanifest-{alg}.txt").unlink(missing_ok=True)
    tags = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")
                  if p.is_file() and not p.is_symlink() and p.parts[len(dest.parts)] != "data")
    tags = [t for t in tags if not t.startswith("tagmanifest-") and t not in skip]
    for alg in algs:
        lines = "".join(f"{digest((dest / t).read_bytes(), alg)}  {t}\n" for t in tags)
        (dest / f"tagmanifest-{alg}.txt").write_text(lines, encoding="utf-8")


def edit(dest: Path, rel: str, old: str, new: str) -> None:
    text = (dest / rel).read_text(encoding="utf-8")
    assert old in text, (rel, old)
    (dest / rel).write_text(text.replace(old, new, 1), encoding="utf-8")


def append(dest: Path, rel: str, text: str | bytes) -> None:
    with open(dest / rel, "ab") as fh:
        fh.write(text.encode("utf-8") if isinstance(text, str) else text)


def _sha(rel: str) -> str:
    return digest(PAYLOAD[rel], "sha512")


# --- one function per fixture: (name, how) ------------------------------------------------------
Fixture = Callable[[Path], None]
FIXTURES: dict[str, Fixture] = {}


def fixture(name: str) -> Callable[[Fixture], Fixture]:
    def register(fn: Fixture) -> Fixture:
        FIXTURES[name] = fn
        return fn
    return register


@fixture("VALID_plain-1.0")
def _valid(d: Path) -> None:
    write_bag(d)


@fixture("VALID_percent-space-and-unicode-names")
def _valid_names(d: Path) -> None:
    # bagit-python 1.9.0 cannot read '%' names (it lacks %25 decoding); RFC 8493 requires it.
    nfd = unicodedata.normalize("NFD", "data/Núñez café.txt")
    write_bag(d, {"data/100% sure.txt": b"percent\n", "data/a%25b.txt": b"literal %25\n",
                  "data/with space.txt": b"", nfd: b"nfd name\n", "data/deep/a/b/c/d/e.txt": b"deep\n"})


@fixture("VALID_v0.97-md5")
def _valid_097(d: Path) -> None:
    write_bag(d, algs=("md5",), bagit=b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")


@fixture("BAGIT-TXT-MISSING_no-bagit-txt")
def _no_bagit(d: Path) -> None:
    write_bag(d)
    (d / "bagit.txt").unlink()
    retag(d)


@fixture("BAGIT-TXT-BOM_utf8-bom")
def _bom(d: Path) -> None:
    write_bag(d, bagit=b"\xef\xbb\xbf" + BAGIT_10)


@fixture("BAGIT-TXT-ENCODING_not-utf8")
def _bagit_enc(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\xff\n")


@fixture("BAGIT-TXT-LINES_encoding-line-missing")
def _lines(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 1.0\n")


@fixture("BAGIT-TXT-SYNTAX_space-before-colon")
def _syntax(d: Path) -> None:
    # bagit-python 1.9.0 accepts this; RFC 8493 fixes the form exactly.
    write_bag(d, bagit=b"BagIt-Version : 1.0\nTag-File-Character-Encoding : UTF-8\n")


@fixture("BAGIT-VERSION_not-m.n")
def _version(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 1\nTag-File-Character-Encoding: UTF-8\n")


@fixture("BAGIT-VERSION-UNKNOWN_2.0")
def _version_unknown(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 2.0\nTag-File-Character-Encoding: UTF-8\n")


@fixture("TAG-ENCODING-UNKNOWN_klingon")
def _enc_unknown(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 1.0\nTag-File-Character-Encoding: x-klingon\n")


@fixture("TAG-ENCODING-DECODE_latin1-bag-info")
def _enc_decode(d: Path) -> None:
    write_bag(d)
    append(d, "bag-info.txt", "Contact-Name: Jos\xe9\n".encode("latin-1"))
    retag(d)


@fixture("TAG-FILE-BOM_bag-info")
def _tag_bom(d: Path) -> None:
    write_bag(d)
    (d / "bag-info.txt").write_bytes(b"\xef\xbb\xbf" + (d / "bag-info.txt").read_bytes())
    retag(d)


@fixture("DATA-MISSING_no-data-dir")
def _no_data(d: Path) -> None:
    write_bag(d, {})
    (d / "data").rmdir()


@fixture("MANIFEST-MISSING_none")
def _no_manifest(d: Path) -> None:
    write_bag(d)
    for alg in ("sha512", "sha256"):
        (d / f"manifest-{alg}.txt").unlink()
    retag(d)


@fixture("MANIFEST-NAME_uppercase-algorithm")
def _manifest_name(d: Path) -> None:
    write_bag(d)
    shutil.copyfile(d / "manifest-sha256.txt", d / "manifest-SHA256.txt")
    retag(d)


@fixture("ALGORITHM-UNSUPPORTED_only-unknown")
def _alg_unsupported(d: Path) -> None:
    write_bag(d, algs=("sha512",))
    (d / "manifest-sha512.txt").rename(d / "manifest-whirlpool.txt")
    retag(d, ("sha512",))


@fixture("ALGORITHM-WEAK_md5-only-1.0")
def _alg_weak(d: Path) -> None:
    write_bag(d, algs=("md5",))


@fixture("MANIFEST-LINE_no-path")
def _manifest_line(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha256.txt", digest(b"x", "sha256") + "\n")
    retag(d)


@fixture("MANIFEST-BLANK-LINE_blank")
def _blank(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha256.txt", "\n")
    retag(d)


@fixture("MANIFEST-DIGEST-SYNTAX_short")
def _digest_syntax(d: Path) -> None:
    write_bag(d)
    edit(d, "manifest-sha512.txt", _sha("data/hello.txt"), "0123456789abcdef")
    retag(d)


@fixture("MANIFEST-BINARY-MARKER_star")
def _star(d: Path) -> None:
    write_bag(d)
    edit(d, "manifest-sha512.txt", "  data/hello.txt", " *data/hello.txt")
    retag(d)


@fixture("MANIFEST-DUPLICATE_same-digest-1.0")
def _dup(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha512.txt", f"{_sha('data/hello.txt')}  data/hello.txt\n")
    retag(d)


@fixture("MANIFEST-DUPLICATE_v0.97-same-digest")
def _dup_097(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n")
    append(d, "manifest-sha512.txt", f"{_sha('data/hello.txt')}  data/hello.txt\n")
    retag(d)


@fixture("MANIFEST-DUPLICATE_different-digests")
def _dup_diff(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha512.txt", f"{'0' * 128}  data/hello.txt\n")
    retag(d)


@fixture("MANIFEST-DUPLICATE-NORMALIZATION_nfc-and-nfd")
def _dup_norm(d: Path) -> None:
    write_bag(d, {"data/café.txt": b"coffee\n"})
    nfd = unicodedata.normalize("NFD", "data/café.txt")
    append(d, "manifest-sha512.txt", f"{digest(b'coffee' + bytes([10]), 'sha512')}  {nfd}\n")
    retag(d)


@fixture("MANIFEST-DUPLICATE-CASE_hello-and-HELLO")
def _dup_case(d: Path) -> None:
    write_bag(d)
    for alg in ("sha512", "sha256"):
        append(d, f"manifest-{alg}.txt", f"{digest(PAYLOAD['data/hello.txt'], alg)}  data/HELLO.txt\n")
    retag(d)


@fixture("MANIFEST-DIRECTORY_lists-a-directory")
def _manifest_dir(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha512.txt", f"{'1' * 128}  data/sub\n")
    retag(d)


@fixture("MANIFEST-DIRECTORY_tag-manifest-lists-a-directory")
def _tag_manifest_dir(d: Path) -> None:
    # Another implementation's bag: a tag manifest lists metadata/ itself, not only its files.
    write_bag(d)
    (d / "metadata").mkdir()
    (d / "metadata/dc.xml").write_text("<dc/>\n", encoding="utf-8")
    retag(d)
    append(d, "tagmanifest-sha512.txt", f"{'2' * 128}  metadata\n")
    append(d, "tagmanifest-sha256.txt", f"{'2' * 64}  metadata\n")


@fixture("PATH-DOT-SLASH_leading-dot-slash")
def _dot_slash(d: Path) -> None:
    write_bag(d)
    edit(d, "manifest-sha512.txt", "  data/hello.txt", "  ./data/hello.txt")
    retag(d)


@fixture("PATH-UNSAFE_dot-dot")
def _unsafe(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha512.txt", f"{'2' * 128}  data/../../outside.txt\n")
    retag(d)


@fixture("PATH-UNSAFE_absolute-in-fetch")
def _unsafe_fetch(d: Path) -> None:
    write_bag(d)
    (d / "fetch.txt").write_text("https://example.org/x 5 /etc/passwd\n", encoding="utf-8")
    retag(d)


@fixture("PATH-NOT-PAYLOAD_tag-file-in-payload-manifest")
def _not_payload(d: Path) -> None:
    write_bag(d)
    append(d, "manifest-sha512.txt", f"{digest((d / 'bagit.txt').read_bytes(), 'sha512')}  bagit.txt\n")
    retag(d)


@fixture("PAYLOAD-UNLISTED_missing-from-one-of-two-manifests")
def _unlisted_one(d: Path) -> None:
    # bagit-python 1.9.0 accepts this; RFC 8493 says every payload file in every manifest.
    write_bag(d)
    lines = (d / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (d / "manifest-sha256.txt").write_text("".join(l for l in lines if "notes" not in l), encoding="utf-8")
    retag(d)


@fixture("PAYLOAD-UNLISTED_extra-file")
def _unlisted(d: Path) -> None:
    write_bag(d)
    (d / "data/extra.txt").write_bytes(b"")


@fixture("PAYLOAD-MISSING_deleted")
def _missing(d: Path) -> None:
    write_bag(d)
    (d / "data/hello.txt").unlink()


@fixture("PAYLOAD-DIGEST-MISMATCH_one-byte-flipped")
def _flipped(d: Path) -> None:
    write_bag(d)
    (d / "data/hello.txt").write_bytes(b"Hello, archive\n")


@fixture("NAME-NORMALIZATION-COLLISION_two-forms-on-disk")
def _norm_collision(d: Path) -> None:
    nfc = "data/é.txt"
    write_bag(d, {nfc: b"nfc\n", unicodedata.normalize("NFD", nfc): b"nfd\n"})


@fixture("NAME-CASE-COLLISION_readme-and-README")
def _case_collision(d: Path) -> None:
    write_bag(d, {"data/readme.txt": b"a\n", "data/README.txt": b"b\n"})


@fixture("SYSTEM-FILE_ds-store")
def _system(d: Path) -> None:
    write_bag(d, {**PAYLOAD, "data/.DS_Store": b""})


@fixture("TAG-MANIFEST-OMITS-MANIFEST_sha256-payload-manifest")
def _omits(d: Path) -> None:
    write_bag(d)
    retag(d, skip=("manifest-sha256.txt",))


@fixture("TAG-MANIFEST-LISTS-TAG-MANIFEST_sha512-in-sha256")
def _lists_tagmanifest(d: Path) -> None:
    write_bag(d)
    text = (d / "tagmanifest-sha512.txt").read_bytes()
    append(d, "tagmanifest-sha256.txt", f"{digest(text, 'sha256')}  tagmanifest-sha512.txt\n")


@fixture("TAG-MANIFEST-LISTS-PAYLOAD_hello")
def _lists_payload(d: Path) -> None:
    write_bag(d)
    append(d, "tagmanifest-sha512.txt", f"{_sha('data/hello.txt')}  data/hello.txt\n")


@fixture("TAG-UNLISTED_extra-tag-file")
def _tag_unlisted(d: Path) -> None:
    write_bag(d)
    (d / "notes").mkdir()
    (d / "notes/readme.txt").write_text("not in the tag manifests\n", encoding="utf-8")


@fixture("TAG-MISSING_listed-metadata-file")
def _tag_missing(d: Path) -> None:
    write_bag(d)
    (d / "metadata").mkdir()
    (d / "metadata/dc.xml").write_text("<dc/>\n", encoding="utf-8")
    retag(d)
    shutil.rmtree(d / "metadata")


@fixture("TAG-DIGEST-MISMATCH_tampered-bag-info")
def _tampered_info(d: Path) -> None:
    # bagit-python's fast validation passes this; Strongroom checks tag files at every depth.
    write_bag(d)
    edit(d, "bag-info.txt", "A fixture bag", "A tampered bag")


@fixture("BAGINFO-SYNTAX_no-colon")
def _info_syntax(d: Path) -> None:
    write_bag(d)
    append(d, "bag-info.txt", "This line has no label\n")
    retag(d)


@fixture("BAGINFO-SYNTAX_space-before-colon-1.0")
def _info_syntax_10(d: Path) -> None:
    write_bag(d)
    append(d, "bag-info.txt", "Contact-Name : Archivist\n")
    retag(d)


@fixture("BAGINFO-DATE_not-iso")
def _info_date(d: Path) -> None:
    write_bag(d, info=[(k, "02/01/2026" if k == "Bagging-Date" else v) for k, v in INFO])


@fixture("BAGINFO-BAG-COUNT_malformed")
def _info_count(d: Path) -> None:
    write_bag(d, info=[*INFO, ("Bag-Count", "3 of 2")])


@fixture("BAGINFO-REPEATED_bagging-date-twice")
def _info_repeated(d: Path) -> None:
    write_bag(d, info=[*INFO, ("Bagging-Date", "2026-01-03")])


@fixture("OXUM-SYNTAX_not-numbers")
def _oxum_syntax(d: Path) -> None:
    # bagit-python 1.9.0 crashes on this with a raw ValueError.
    write_bag(d)
    edit(d, "bag-info.txt", "Payload-Oxum: 33.2", "Payload-Oxum: 33 bytes, 2 files")
    retag(d)


@fixture("OXUM-REPEATED_twice")
def _oxum_repeated(d: Path) -> None:
    write_bag(d)
    append(d, "bag-info.txt", "Payload-Oxum: 33.2\n")
    retag(d)


@fixture("OXUM-MISMATCH_wrong-count")
def _oxum_mismatch(d: Path) -> None:
    write_bag(d)
    edit(d, "bag-info.txt", "Payload-Oxum: 33.2", "Payload-Oxum: 33.3")
    retag(d)


def _holey(d: Path, fetch_line: str, *, fetched: bool = False) -> None:
    remote = b"fetched later\n"
    write_bag(d, {**PAYLOAD, "data/remote.txt": remote})
    if not fetched:
        (d / "data/remote.txt").unlink()
    (d / "fetch.txt").write_text(fetch_line, encoding="utf-8")
    retag(d)


@fixture("FETCH-LINE_two-fields")
def _fetch_line(d: Path) -> None:
    _holey(d, "https://example.org/remote.txt data/remote.txt\n", fetched=True)


@fixture("FETCH-URL_relative")
def _fetch_url(d: Path) -> None:
    _holey(d, "remote.txt 14 data/remote.txt\n", fetched=True)


@fixture("FETCH-LENGTH_not-a-number")
def _fetch_length(d: Path) -> None:
    _holey(d, "https://example.org/remote.txt fourteen data/remote.txt\n", fetched=True)


@fixture("FETCH-NOT-IN-MANIFEST_unlisted")
def _fetch_unlisted(d: Path) -> None:
    _holey(d, "https://example.org/other.txt - data/other.txt\n", fetched=True)


@fixture("FETCH-PENDING_not-fetched")
def _fetch_pending(d: Path) -> None:
    _holey(d, "https://example.org/remote.txt 14 data/remote.txt\n")


@fixture("SYMLINK_payload-link-outside")
def _link_out(d: Path) -> None:
    write_bag(d)
    os.symlink("/etc/hostname", d / "data/link.txt")


@fixture("SYMLINK_payload-link-inside")
def _link_in(d: Path) -> None:
    write_bag(d)
    os.symlink("hello.txt", d / "data/link.txt")


V097 = b"BagIt-Version: 0.97\nTag-File-Character-Encoding: UTF-8\n"


@fixture("PAYLOAD-UNLISTED_v0.97-missing-from-one-of-two-manifests")
def _unlisted_one_097(d: Path) -> None:
    # The drafts asked only that a file be in *a* manifest: a warning there, an error in 1.0.
    write_bag(d, bagit=V097)
    lines = (d / "manifest-sha256.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (d / "manifest-sha256.txt").write_text("".join(l for l in lines if "notes" not in l), encoding="utf-8")
    retag(d)


@fixture("BAGIT-TXT-SYNTAX_v0.97-space-before-colon")
def _syntax_097(d: Path) -> None:
    write_bag(d, bagit=b"BagIt-Version : 0.97\nTag-File-Character-Encoding : UTF-8\n")


@fixture("TAG-MANIFEST-OMITS-MANIFEST_v0.97")
def _omits_097(d: Path) -> None:
    write_bag(d, bagit=V097)
    retag(d, skip=("manifest-sha256.txt",))


@fixture("UNREADABLE_bagit-txt-is-a-directory")
def _unreadable(d: Path) -> None:
    write_bag(d)
    (d / "bagit.txt").unlink()
    (d / "bagit.txt").mkdir()
    (d / "bagit.txt" / "keep").write_bytes(b"")
    retag(d)


def build_all(root: Path = HERE) -> list[Path]:
    """(Re)create every fixture under ``root``; returns their paths."""
    made = []
    for name, how in FIXTURES.items():
        how(root / name)
        made.append(root / name)
    not_dir = root / "BAG-NOT-DIRECTORY_a-plain-file"
    not_dir.write_text("not a bag\n", encoding="utf-8")
    return [*made, not_dir]


if __name__ == "__main__":
    for path in build_all():
        print(path.relative_to(HERE))
