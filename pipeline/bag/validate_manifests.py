"""Manifests, tag manifests and fetch.txt: read line by line into the tree's index, then checked.

Manifest paths are only ever used as keys into the index built from the walk: a file is opened
by the name the walk found on disk, so no manifest line can make the validator open anything
outside the bag, and unsafe paths are reported and dropped before lookup.
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from pipeline.bag.names import decode_path, unsafe_reason
from pipeline.bag.validate_codes import Collector
from pipeline.bag.validate_text import iter_tag_lines
from pipeline.bag.validate_tree import Item, Tree, is_system_file, lookup_key, unicode_form
from pipeline.fixity import SUPPORTED_ALGORITHMS, digest_each

Progress = Callable[[int, int], None]

_MANIFEST_FILE = re.compile(r"^(tag)?manifest-(.*)\.txt$", re.IGNORECASE)
_ALGORITHM = re.compile(r"^[a-z0-9]+$")
_LINE = re.compile(r"^(?P<digest>\S+)[ \t]+(?P<path>.*)$")
_FETCH_LINE = re.compile(r"^(?P<url>\S+)[ \t]+(?P<length>\S+)[ \t]+(?P<path>.+)$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:\S+$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")
DIGEST_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}


@dataclass
class Manifests:
    """The bag's manifests as (file name, algorithm), in name order."""

    payload: list[tuple[str, str]] = field(default_factory=list)
    tag: list[tuple[str, str]] = field(default_factory=list)

    @property
    def tag_names(self) -> set[str]:
        """File names of the tag manifests."""
        return {name for name, _ in self.tag}


def find_manifests(c: Collector, tree: Tree) -> Manifests:
    """Sort the root's tag files into payload and tag manifests; report odd names and algorithms."""
    found = Manifests()
    for key in sorted(k for k in tree.tags if "/" not in k):
        m = _MANIFEST_FILE.match(key)
        if not m:
            continue
        alg = m.group(2)
        if not _ALGORITHM.match(alg) or key != key.lower():
            c.add("MANIFEST-NAME", key, f"looks like a manifest but is not named "
                  "(tag)manifest-<algorithm>.txt with a lowercase algorithm; treated as a tag file")
            continue
        (found.tag if m.group(1) else found.payload).append((key, alg))
    usable = [a for _, a in found.payload if a in SUPPORTED_ALGORITHMS]
    for name, alg in found.payload + found.tag:
        if alg not in SUPPORTED_ALGORITHMS:
            c.add("ALGORITHM-UNSUPPORTED", name, f"algorithm {alg!r} cannot be verified by Strongroom "
                  f"(it knows {', '.join(SUPPORTED_ALGORITHMS)})",
                  severity="warning" if usable or name.startswith("tag") else "error")
    if c.strict and usable and not set(usable) - {"md5", "sha1"}:
        c.add("ALGORITHM-WEAK", found.payload[0][0], "only md5/sha1 manifests: BagIt 1.0 bags "
              "should carry sha512 (or sha256) for fixity that resists tampering")
    return found


def _parse_line(c: Collector, rel: str, number: int, line: str, alg: str) -> tuple[str, bytes] | None:
    """(decoded safe path, raw digest) of one manifest line, or None after reporting why not."""
    if not line.strip():
        c.add("MANIFEST-BLANK-LINE", rel, f"line {number} is blank")
        return None
    m = _LINE.match(line)
    if not m or not m.group("path"):
        c.add("MANIFEST-LINE", rel, f"line {number} is not '<digest> <path>': {line[:80]!r}")
        return None
    digest, path = m.group("digest"), m.group("path")
    length = DIGEST_LENGTHS.get(alg)
    if not _HEX.match(digest) or (length is not None and len(digest) != length) or len(digest) % 2:
        c.add("MANIFEST-DIGEST-SYNTAX", rel, f"line {number}: {digest[:20]!r} is not a {alg} digest "
              f"({length or 'an even number of'} hexadecimal digits)", found=digest)
        return None
    if path.startswith("*"):
        c.add("MANIFEST-BINARY-MARKER", rel, f"line {number}: md5sum-style '*' before the path; ignored")
        path = path[1:]
    path = decode_path(path)
    if path.startswith("./"):
        c.add("PATH-DOT-SLASH", rel, f"line {number}: {path!r} starts with './'; paths are relative "
              "to the bag root without it")
        while path.startswith("./"):
            path = path[2:]
    reason = unsafe_reason(path)
    if reason:
        c.add("PATH-UNSAFE", rel, f"line {number}: {path!r} is unsafe ({reason}); never opened", found=path)
        return None
    return path, bytes.fromhex(digest)


def read_manifest(c: Collector, tree: Tree, found: Manifests, index: int, *, tag: bool) -> None:
    """Stream one (tag) manifest into the index, reporting bad lines and duplicates."""
    rel, alg = (found.tag if tag else found.payload)[index]
    count = len(found.tag if tag else found.payload)
    table = tree.tags if tag else tree.payload
    for number, line in iter_tag_lines(c, rel):
        parsed = _parse_line(c, rel, number, line, alg)
        if parsed is None:
            continue
        path, digest = parsed
        if not _belongs(c, rel, number, path, tag, found):
            continue
        key = lookup_key(table, path)
        item = table.get(key)
        if item is None:
            item = table[key] = Item(None)
        _record(c, rel, number, item, key, path, index, count, digest)


def _belongs(c: Collector, rel: str, number: int, path: str, tag: bool, found: Manifests) -> bool:
    if not tag and not path.startswith("data/"):
        c.add("PATH-NOT-PAYLOAD", rel, f"line {number}: {path!r} is not under data/; payload "
              "manifests list payload files only")
        return False
    if tag and path.startswith("data/"):
        c.add("TAG-MANIFEST-LISTS-PAYLOAD", rel, f"line {number}: lists the payload file {path!r}")
        return False
    if tag and path in found.tag_names:
        c.add("TAG-MANIFEST-LISTS-TAG-MANIFEST", rel, f"line {number}: lists the tag manifest {path!r}")
        return False
    return True


def _record(c: Collector, rel: str, number: int, item: Item, key: str, path: str, index: int,
            count: int, digest: bytes) -> None:
    if item.digests is None:
        item.digests = [None] * count
    previous = item.digests[index]
    if previous is None:
        item.digests[index] = digest
        if path != key and item.listed is None:
            item.listed = path
        return
    first = item.listed if item.listed is not None else key
    same = previous == digest
    if path == first and same:
        c.by_version("MANIFEST-DUPLICATE", path, f"listed twice in {rel} (again on line {number}); "
                     "each file must appear exactly once")
    elif path == first:
        c.add("MANIFEST-DUPLICATE", path, f"listed twice in {rel} with different digests "
              f"(line {number}): at most one can be right", expected=previous.hex(), found=digest.hex())
    else:
        c.add("MANIFEST-DUPLICATE-NORMALIZATION", path, f"listed twice in {rel} in different Unicode "
              f"normal forms ({unicode_form(first)} first, {unicode_form(path)} on line {number}); one file",
              severity="warning" if same else "error")


def read_fetch(c: Collector, tree: Tree, found: Manifests) -> None:
    """Check fetch.txt: syntax, safe payload paths, in every payload manifest, fetched or not."""
    if "fetch.txt" not in tree.tags or tree.tags["fetch.txt"].disk is None:
        return
    for number, line in iter_tag_lines(c, "fetch.txt"):
        m = _FETCH_LINE.match(line)
        if not m:
            c.add("FETCH-LINE", "fetch.txt", f"line {number} is not '<URL> <length|-> <path>': {line[:80]!r}")
            continue
        url, length, path = m.group("url"), m.group("length"), decode_path(m.group("path"))
        if not _URI.match(url):
            c.add("FETCH-URL", "fetch.txt", f"line {number}: {url[:80]!r} is not an absolute URI")
        if length != "-" and not length.isdigit():
            c.add("FETCH-LENGTH", "fetch.txt", f"line {number}: length must be a number or '-', found {length!r}")
        reason = unsafe_reason(path)
        if reason:
            c.add("PATH-UNSAFE", "fetch.txt", f"line {number}: {path!r} is unsafe ({reason}); never fetched")
        elif not path.startswith("data/"):
            c.add("PATH-NOT-PAYLOAD", "fetch.txt", f"line {number}: {path!r} is not under data/")
        else:
            _fetch_entry(c, tree, found, number, url, length, path)


def _fetch_entry(c: Collector, tree: Tree, found: Manifests, number: int, url: str, length: str,
                 path: str) -> None:
    item = tree.payload.get(lookup_key(tree.payload, path))
    if item is None or any(item.digest(i) is None for i in range(len(found.payload))):
        c.add("FETCH-NOT-IN-MANIFEST", path, f"fetch.txt line {number} names it, but it is not in every "
              "payload manifest")
    if item is None:
        return
    item.fetch = True
    if item.disk is None:
        c.add("FETCH-PENDING", path, f"not fetched yet from {url}: the bag is incomplete until it is")
    elif length.isdigit() and int(length) != item.size:
        c.add("FETCH-LENGTH", path, f"has {item.size} bytes, fetch.txt line {number} says {length}",
              expected=length, found=str(item.size))


def check_payload_completeness(c: Collector, tree: Tree, found: Manifests) -> None:
    """Every payload file in every payload manifest; every listed file present."""
    names = [name for name, _ in found.payload]
    folded: dict[str, str] | None = None
    for key, item in tree.payload.items():
        if is_system_file(key):
            c.add("SYSTEM-FILE", key, "is an operating-system metadata file, rarely meant as payload")
        listed = [i for i in range(len(names)) if item.digest(i) is not None]
        if item.disk is not None:
            _check_listed(c, key, names, listed)
        elif key in tree.links or item.fetch:
            continue  # reported as SYMLINK / FETCH-PENDING already
        elif key in tree.dirs:
            c.add("MANIFEST-DIRECTORY", key, "is a directory; manifests list files only")
        else:
            if folded is None:
                folded = {k.casefold(): k for k, it in tree.payload.items() if it.disk is not None}
            _report_missing(c, tree, key, item, [names[i] for i in listed], folded)


def _check_listed(c: Collector, key: str, names: list[str], listed: list[int]) -> None:
    if not listed:
        which = f" ({', '.join(names)})" if names else " (the bag has none)"
        c.add("PAYLOAD-UNLISTED", key, f"is not listed in any payload manifest{which}")
    elif len(listed) < len(names):
        missing = [n for i, n in enumerate(names) if i not in listed]
        c.by_version("PAYLOAD-UNLISTED", key, f"is not listed in {', '.join(missing)}; every payload "
                     "file must be in every payload manifest")


def _report_missing(c: Collector, tree: Tree, key: str, item: Item, manifests: list[str],
                    folded: dict[str, str]) -> None:
    twin_key = folded.get(key.casefold())
    twin = tree.payload.get(twin_key) if twin_key else None
    if twin is not None and item.digests is not None and all(
            d is None or twin.digest(i) == d for i, d in enumerate(item.digests)):
        c.add("MANIFEST-DUPLICATE-CASE", key, f"is listed, but only {twin_key} exists: the names differ "
              "only by case and the digests agree, so on a case-insensitive filesystem they are one file")
        return
    hint = f" ({twin_key} exists, which differs only by case)" if twin_key else ""
    c.add("PAYLOAD-MISSING", key, f"is listed in {', '.join(manifests)} but absent{hint}")


def check_tag_completeness(c: Collector, tree: Tree, found: Manifests) -> None:
    """Tag manifests list every payload manifest; listed tag files exist; other tag files listed."""
    for j, (tag_name, _) in enumerate(found.tag):
        for name, _ in found.payload:
            item = tree.tags.get(name)
            if item is None or item.digest(j) is None:
                c.by_version("TAG-MANIFEST-OMITS-MANIFEST", tag_name, f"does not list the payload manifest {name}")
    payload_manifests = {name for name, _ in found.payload}
    for key, item in tree.tags.items():
        if item.disk is None:
            if key not in tree.links:
                c.add("TAG-MISSING", key, "is listed in a tag manifest but absent")
        elif found.tag and key not in found.tag_names and key not in payload_manifests:
            missing = [n for j, (n, _) in enumerate(found.tag) if item.digest(j) is None]
            if missing:
                c.add("TAG-UNLISTED", key, f"is a tag file not listed in {', '.join(missing)}")


@dataclass
class _Meter:
    progress: Progress | None
    done_bytes: int = 0
    done_files: int = 0
    # Bytes are counted from digest_each's reading threads, files from the caller's thread.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, octets: int, files: int = 0) -> None:
        with self.lock:
            self.done_bytes += octets
            self.done_files += files
            if self.progress is not None:
                self.progress(self.done_bytes, self.done_files)


def verify_digests(c: Collector, table: dict[str, Item], manifests: list[tuple[str, str]], *,
                   tag: bool, progress: Progress | None = None) -> None:
    """Read each listed file once, computing all its manifests' algorithms in that one read."""
    meter = _Meter(progress)
    code = "TAG-DIGEST-MISMATCH" if tag else "PAYLOAD-DIGEST-MISMATCH"
    # digest_each hashes large files concurrently (results still in table order); the queue pairs
    # each result with its item, and holds only the few files in flight.
    queue: deque[tuple[Item, list[tuple[int, tuple[str, str]]]]] = deque()

    def jobs() -> Iterator[tuple[Path, list[str]]]:
        for item in table.values():
            if item.disk is None or item.digests is None:
                continue
            wanted = [(i, manifests[i]) for i, d in enumerate(item.digests)
                      if d is not None and manifests[i][1] in SUPPORTED_ALGORITHMS]
            if wanted:
                queue.append((item, wanted))
                yield c.bag / item.disk, sorted({alg for _, (_, alg) in wanted})

    for result in digest_each(jobs(), on_bytes=meter.advance):
        item, wanted = queue.popleft()
        if result.error is not None or result.digests is None:
            c.add("UNREADABLE", cast(str, item.disk), f"cannot be read: {_why(result.error)}")
            continue
        got, disk, stated = result.digests, cast(str, item.disk), cast(list[bytes | None], item.digests)
        meter.advance(0, 1)
        for i, (manifest, alg) in wanted:
            expected = cast(bytes, stated[i]).hex()
            if got[alg] != expected:
                c.add(code, disk, f"{alg} mismatch: {manifest} says {expected[:16]}…, the file has "
                      f"{got[alg][:16]}…", expected=expected, found=got[alg])


def _why(exc: OSError | None) -> str:
    return str(exc.strerror or exc) if exc is not None else "unknown error"
