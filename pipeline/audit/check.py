"""Checking one copy of a bag: read every file once, compare with the ledger, classify each difference.

The damage classes and their codes are documented in :mod:`pipeline.audit`, the public face of
the audit; this module does the reading and the classifying, and also reads a bag's own manifests
when it is registered (:func:`reference_from_bag`).  It only ever reads.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.bag.names import decode_path
from pipeline.bag.tagfiles import info_value, parse_bag_info
from pipeline.errors import BagInvalidError, LedgerError, StrongroomError
from pipeline.findings import Finding
from pipeline.fixity import CHUNK, SUPPORTED_ALGORITHMS, digest_file, raw_digests
from pipeline.ledger import FileReference, RegisteredContent

CHANGED, MISSING, EXTRA, TRUNCATED = "AUD001", "AUD002", "AUD003", "AUD004"
TAG_CHANGED, REWRITTEN, BAG_MISSING, UNREADABLE = "AUD005", "AUD006", "AUD007", "AUD008"
#: Code -> the damage class's name, as reports print it.
CLASSES: dict[str, str] = {
    CHANGED: "changed content", MISSING: "missing file", EXTRA: "extra file", TRUNCATED: "truncated file",
    TAG_CHANGED: "changed manifest or tag file", REWRITTEN: "manifest and content changed together",
    BAG_MISSING: "bag missing", UNREADABLE: "bag unreadable",
}
_MANIFEST = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_LINE = re.compile(r"^([0-9A-Fa-f]+)[ \t]+\*?(.+)$")

#: The size recorded for a symbolic link or special file found where a file should be.
NOT_REGULAR = -1
#: path in bag -> (size, {algorithm: hexdigest}); the shape deposit targets' ``fixity`` returns.
Fixity = dict[str, tuple[int, dict[str, str]]]


@dataclass(frozen=True)
class LocationCheck:
    """The result of checking one copy of a bag."""

    location: str
    findings: tuple[Finding, ...]
    observed: Fixity = field(default_factory=dict)
    bytes_read: int = 0

    @property
    def damaged(self) -> bool:
        """True when any error finding was made at this location."""
        return any(f.severity == "error" for f in self.findings)



# -- reading a bag ----------------------------------------------------------------------------------


def list_files(bag: Path) -> dict[str, os.stat_result]:
    """Every non-directory entry below ``bag`` (bag path -> lstat), symlinks not followed.

    Raises OSError when a directory cannot be listed.
    """
    found: dict[str, os.stat_result] = {}
    pending = [(os.fspath(bag), "")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                rel = f"{prefix}{entry.name}"
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    pending.append((entry.path, f"{rel}/"))
                else:
                    found[rel] = st
    return found


def parse_manifest(path: Path) -> dict[str, str] | None:
    """A manifest's (decoded path -> lowercase digest), or None when it cannot be read or parsed."""
    entries: dict[str, str] = {}
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            for raw in fh:
                m = _LINE.match(raw.rstrip("\r\n"))
                if m is None:
                    return None
                entries[decode_path(m.group(2))] = m.group(1).lower()
    except (OSError, UnicodeDecodeError):
        return None
    return entries


def read_manifests(bag: Path, names: Sequence[str]) -> dict[str, dict[str, str] | None]:
    """Manifest and tag manifest name -> parsed entries (None when unparsable), for ``names`` present."""
    return {n: parse_manifest(bag / n) for n in names if _MANIFEST.match(n)}


def reference_from_bag(bag: Path, *, verify_payload: bool) -> RegisteredContent:
    """What the ledger records for a bag: every file, its size and digests.

    Payload digests come from the payload manifests.  Tag files are hashed (every algorithm of the
    payload manifests) and, where a tag manifest lists them, must match it.  With
    ``verify_payload`` every payload file is also re-read and must match its manifest lines.
    Raises BagInvalidError when the bag is incomplete or does not match its own manifests.
    """
    if not bag.is_dir():
        raise BagInvalidError(bag, [Finding(code=BAG_MISSING, message="is not a bag directory")])
    files = list_files(bag)
    _refuse_irregular(bag, files)
    manifests = read_manifests(bag, list(files))
    payload_algs = sorted(_MANIFEST.match(n).group(2) for n in manifests  # type: ignore[union-attr]
                          if not n.startswith("tag"))
    problems = [Finding(code=TAG_CHANGED, path=n, message="manifest cannot be parsed")
                for n, entries in manifests.items() if entries is None]
    if not payload_algs:
        problems.append(Finding(code=MISSING, path="manifest-sha512.txt", message="the bag has no payload manifest"))
    if problems:
        raise BagInvalidError(bag, problems)
    algorithms = tuple(a for a in payload_algs if a in SUPPORTED_ALGORITHMS)
    refs, problems = _payload_references(bag, files, manifests, algorithms, verify_payload)
    tag_refs, tag_problems = _tag_references(bag, files, manifests, algorithms)
    if problems or tag_problems:
        raise BagInvalidError(bag, problems + tag_problems)
    info = parse_bag_info((bag / "bag-info.txt").read_text("utf-8", "replace")) if "bag-info.txt" in files else []
    puids = _puids(bag) if PREMIS_TAG_FILE in files else {}
    refs = [dataclasses.replace(r, puid=puids[r.path]) if r.path in puids else r for r in refs]
    return RegisteredContent(bag.name, info_value(info, "External-Identifier"),
                             info_value(info, "BagIt-Profile-Identifier"), algorithms, tuple(refs + tag_refs))


#: Where a Strongroom bag keeps its PREMIS record.
PREMIS_TAG_FILE = "metadata/premis.xml"


def _puids(bag: Path) -> dict[str, str]:
    """Each payload file's PRONOM identifier as the bag's ``metadata/premis.xml`` states it.

    A PREMIS record Strongroom cannot read (another tool's) gives none: the PUIDs are a
    description, the digests are the reference.
    """
    from pipeline.premis import PremisObject, parse_premis

    try:
        objects, _, _ = parse_premis((bag / PREMIS_TAG_FILE).read_bytes())
    except (OSError, StrongroomError):
        return {}
    return {o.identifier: o.puid for o in objects if isinstance(o, PremisObject) and o.puid}


def _refuse_irregular(bag: Path, files: Mapping[str, os.stat_result]) -> None:
    """Raise LedgerError naming the first file that is a symbolic link, FIFO, socket or device.

    Checked on the ``lstat`` before anything is opened: reading a FIFO would wait forever for a
    writer, and a link may point outside the bag, so its content is no reference to record.
    """
    for path, st in sorted(files.items()):
        if not stat.S_ISREG(st.st_mode):
            raise LedgerError(f"{bag / path}: not a regular file ({_file_type(st.st_mode)}); "
                              "a bag to register holds regular files and directories only")


def _file_type(mode: int) -> str:
    kinds = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISCHR, "a character device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def _payload_references(bag: Path, files: Mapping[str, os.stat_result],
                        manifests: Mapping[str, dict[str, str] | None], algorithms: Sequence[str],
                        verify: bool) -> tuple[list[FileReference], list[Finding]]:
    listed: dict[str, dict[str, str]] = {}
    for alg in algorithms:
        for path, digest in (manifests[f"manifest-{alg}.txt"] or {}).items():
            listed.setdefault(path, {})[alg] = digest
    on_disk = {p for p in files if p.startswith("data/")}
    problems = [Finding(code=MISSING, path=p, message="listed in a manifest but absent") for p in listed
                if p not in on_disk]
    problems += [Finding(code=EXTRA, path=p, message="payload file in no manifest") for p in sorted(on_disk)
                 if p not in listed]
    refs: list[FileReference] = []
    for path in sorted(on_disk & set(listed)):
        digests = listed[path]
        if len(digests) != len(algorithms):
            problems.append(Finding(code=TAG_CHANGED, path=path, message="not listed in every payload manifest"))
        elif verify:
            size, found = digest_file(bag / path, algorithms)
            if found != digests:
                problems.append(Finding(code=CHANGED, path=path, message="does not match its manifest lines",
                                        expected=_fmt(digests), found=_fmt(found)))
        refs.append(FileReference(path, "payload", files[path].st_size, dict(digests), "manifest"))
    return refs, problems


def _tag_references(bag: Path, files: Mapping[str, os.stat_result],
                    manifests: Mapping[str, dict[str, str] | None], algorithms: Sequence[str]
                    ) -> tuple[list[FileReference], list[Finding]]:
    tag_listed: dict[str, dict[str, str]] = {}
    for name, entries in manifests.items():
        alg = name.removeprefix("tagmanifest-").removesuffix(".txt")
        if name.startswith("tag") and alg in SUPPORTED_ALGORITHMS:
            for path, digest in (entries or {}).items():
                tag_listed.setdefault(path, {})[alg] = digest
    refs: list[FileReference] = []
    problems: list[Finding] = []
    for path in sorted(p for p in files if not p.startswith("data/")):
        algs = sorted(set(algorithms) | set(tag_listed.get(path, {})))
        size, found = digest_file(bag / path, algs)
        stated = tag_listed.get(path, {})
        if any(found[a] != d for a, d in stated.items()):
            problems.append(Finding(code=TAG_CHANGED, path=path, message="does not match its tag manifest lines",
                                    expected=_fmt(stated), found=_fmt(found)))
        refs.append(FileReference(path, "tag", size, found, "manifest" if stated else "computed"))
    return refs, problems


def _fmt(digests: Mapping[str, str]) -> str:
    return " ".join(f"{alg}:{value}" for alg, value in sorted(digests.items()))


# -- checking one copy ------------------------------------------------------------------------------


def check_location(location: str, bag_name: str, reference: Mapping[str, FileReference],
                   algorithms: Sequence[str]) -> LocationCheck:
    """Check the copy of ``bag_name`` at ``location`` against the ledger's ``reference``."""
    if urlsplit(location).scheme == "file":
        return check_local(Path(unquote(urlsplit(location).path)), reference, algorithms, location=location)
    return check_remote(location, bag_name, reference, algorithms)


def check_local(bag: Path, reference: Mapping[str, FileReference], algorithms: Sequence[str], *,
                location: str | None = None) -> LocationCheck:
    """Re-read every file of a bag directory and classify every difference from ``reference``."""
    where = location or bag.resolve().as_uri()
    if not os.path.lexists(bag):
        return LocationCheck(where, (Finding(code=BAG_MISSING, message=f"no bag at {bag}"),))
    try:
        if not bag.is_dir():
            raise NotADirectoryError(f"{bag} is not a directory")
        files = list_files(bag)
    except OSError as exc:
        return LocationCheck(where, (Finding(code=UNREADABLE, message=f"cannot read {bag}: {_why(exc)}"),))
    observed, unreadable = _digest_all(bag, files, reference, algorithms)
    findings = unreadable
    if not _intact(reference, observed):
        # The bag's own manifests only explain a difference (AUD006 against AUD001/AUD005); an
        # intact copy's manifests are tag files whose bytes were just read and matched the ledger.
        findings = classify(reference, observed, read_manifests(bag, [p for p in files if "/" not in p])) + findings
    return LocationCheck(where, tuple(sorted(findings, key=_order)), observed,
                         sum(max(size, 0) for size, _ in observed.values()))


def check_remote(location: str, bag_name: str, reference: Mapping[str, FileReference],
                 algorithms: Sequence[str]) -> LocationCheck:
    """Have the deposit target re-read its copy and classify the differences (no manifest view)."""
    try:
        from pipeline.deposit import open_location

        target, held_name = open_location(location)
        if target.locate(held_name) is None:
            return LocationCheck(location, (Finding(code=BAG_MISSING, message=f"no bag {held_name} at {location}"),))
        observed: Fixity = dict(target.fixity(held_name, list(algorithms)))
    except ImportError:
        return LocationCheck(location, (Finding(code=UNREADABLE, message="deposit targets are not available"),))
    except (StrongroomError, OSError) as exc:
        return LocationCheck(location, (Finding(code=UNREADABLE, message=f"cannot read the copy: {exc}"),))
    findings = classify(reference, observed, None)
    return LocationCheck(location, tuple(sorted(findings, key=_order)), observed,
                         sum(max(size, 0) for size, _ in observed.values()))


def _digest_all(bag: Path, files: Mapping[str, os.stat_result], reference: Mapping[str, FileReference],
                algorithms: Sequence[str]) -> tuple[Fixity, list[Finding]]:
    observed: Fixity = {}
    problems: list[Finding] = []
    root = f"{os.fspath(bag)}/"
    usual = sorted(set(algorithms))
    for path, st in sorted(files.items()):
        if stat.S_ISLNK(st.st_mode) or not stat.S_ISREG(st.st_mode):
            # Never follow a link out of the bag: a file turned into a link is a changed file.
            observed[path] = (NOT_REGULAR, {})
            continue
        ref = reference.get(path)
        algs = usual if ref is None or ref.digests.keys() <= set(usual) else sorted(set(usual) | set(ref.digests))
        try:
            observed[path] = _digest(root + path, st.st_size, algs)
        except OSError as exc:
            problems.append(Finding(code=UNREADABLE, path=path, message=f"cannot be read: {_why(exc)}"))
    return observed, problems


def _digest(path: str, listed_size: int, algorithms: Sequence[str]) -> tuple[int, dict[str, str]]:
    """(octets, {algorithm: hexdigest}) of one file, read to its end whatever its size now.

    Files listed under one block are hashed on this thread (:func:`raw_digests`: no per-file
    buffer, thread or ``Path``); larger ones by :func:`digest_file`, which hashes each algorithm
    on its own thread.
    """
    if listed_size < CHUNK:
        size, raw = raw_digests(path, algorithms)
        return size, {alg: d.hex() for alg, d in zip(algorithms, raw)}
    return digest_file(Path(path), algorithms)


def _intact(reference: Mapping[str, FileReference], observed: Fixity) -> bool:
    """True when the copy holds exactly the reference's files, each of its size and digests."""
    if len(reference) != len(observed):
        return False
    for path, ref in reference.items():
        seen = observed.get(path)
        if seen is None or not _matches(ref, seen):
            return False
    return True


def classify(reference: Mapping[str, FileReference], observed: Fixity,
             manifests: Mapping[str, dict[str, str] | None] | None) -> list[Finding]:
    """Every difference between the reference and what was read, one finding per damaged file.

    ``manifests`` (the bag's current manifests, None for a copy read remotely) tell a consistent
    manifest-and-content rewrite (AUD006) from plain changed content and explain manifest changes.
    """
    findings: list[Finding] = []
    changed_tags: list[str] = []
    for path in sorted(set(reference) | set(observed)):
        ref, seen = reference.get(path), observed.get(path)
        if ref is None and seen is not None:
            findings.append(Finding(code=EXTRA, path=path, message="file not in the ledger",
                                    found=_fmt_seen(seen)))
        elif ref is not None and seen is None:
            findings.append(Finding(code=MISSING, path=path, message="file is missing", expected=_fmt_ref(ref)))
        elif ref is not None and seen is not None and not _matches(ref, seen):
            if ref.kind == "tag":
                changed_tags.append(path)
            else:
                findings.append(_payload_finding(ref, seen, manifests))
    explained = _explained_manifests(changed_tags, reference, manifests, findings)
    for path in changed_tags:
        if path not in explained:
            findings.append(Finding(code=TAG_CHANGED, path=path, message="tag file differs from the ledger",
                                    expected=_fmt_ref(reference[path]), found=_fmt_seen(observed[path])))
    return findings


def _matches(ref: FileReference, seen: tuple[int, dict[str, str]]) -> bool:
    size, digests = seen
    return size == ref.size and all(digests.get(a) == v for a, v in ref.digests.items())


def _payload_finding(ref: FileReference, seen: tuple[int, dict[str, str]],
                     manifests: Mapping[str, dict[str, str] | None] | None) -> Finding:
    size, digests = seen
    expected, found = _fmt_ref(ref), _fmt_seen(seen)
    if size == NOT_REGULAR:
        return Finding(code=CHANGED, path=ref.path, expected=expected, found=found,
                       message="no longer a regular file (a symbolic link or special file; not followed)")
    lines = {}
    for name, entries in (manifests or {}).items():
        if not name.startswith("tag") and entries is not None and ref.path in entries:
            lines[name.removeprefix("manifest-").removesuffix(".txt")] = entries[ref.path]
    if lines and all(digests.get(a) == d for a, d in lines.items()):
        return Finding(code=REWRITTEN, path=ref.path, expected=expected, found=found,
                       message="content and manifest rewritten together: matches the bag's manifests, "
                               "not the ledger")
    if size < ref.size:
        return Finding(code=TRUNCATED, path=ref.path, expected=expected, found=found,
                       message=f"truncated: {size} of {ref.size} bytes")
    return Finding(code=CHANGED, path=ref.path, expected=expected, found=found, message="content changed")


def _explained_manifests(changed: Sequence[str], reference: Mapping[str, FileReference],
                         manifests: Mapping[str, dict[str, str] | None] | None,
                         findings: Sequence[Finding]) -> set[str]:
    """Changed manifests whose every differing line belongs to a consistently rewritten file (AUD006)."""
    by_code: dict[str, set[str]] = {}
    for f in findings:
        by_code.setdefault(f.code, set()).add(f.path)
    explained: set[str] = set()
    # Payload manifests first: a tag manifest's line for a manifest is explained by that manifest.
    for name in sorted(changed, key=lambda n: n.startswith("tag")):
        m = _MANIFEST.match(name)
        entries = (manifests or {}).get(name)
        if m is None or entries is None:
            continue
        alg, is_tag = m.group(2), bool(m.group(1))
        accounted = explained if is_tag else by_code.get(REWRITTEN, set())
        if _diffs_explained(entries, alg, is_tag, reference, accounted):
            explained.add(name)
    return explained


def _diffs_explained(entries: Mapping[str, str], alg: str, is_tag: bool, reference: Mapping[str, FileReference],
                     accounted: set[str]) -> bool:
    kind = "tag" if is_tag else "payload"
    expected = {p: r.digests[alg] for p, r in reference.items() if r.kind == kind and alg in r.digests}
    paths = set(entries) | (set() if is_tag else set(expected))
    diffs = [p for p in paths if entries.get(p) != expected.get(p)]
    # Only a consistent rewrite (AUD006) explains a manifest change: that rewrite *is* the change.
    # A line removed with a deleted file, or added with a new one, is still reported (AUD005): the
    # manifest was edited, which a curator must see beside the missing or extra file.
    return bool(diffs) and all(p in accounted and p in entries and p in expected for p in diffs)


def _fmt_ref(ref: FileReference) -> str:
    return f"{ref.size} bytes {_fmt(ref.digests)}"


def _fmt_seen(seen: tuple[int, Mapping[str, str]]) -> str:
    if seen[0] == NOT_REGULAR:
        return "not a regular file"
    return f"{seen[0]} bytes {_fmt(seen[1])}"


def _order(f: Finding) -> tuple[str, str]:
    return (f.path, f.code)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
