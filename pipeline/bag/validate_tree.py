"""What is on disk in a bag: one walk, never following a link, into a compact index.

The index holds one small :class:`Item` per file (its on-disk name, size and, once manifests are
read, one raw digest per manifest), keyed by the NFC form of its bag path: RFC 8493 names are
compared after Unicode normalisation while files are opened by their on-disk names.  A
100,000-file bag costs a few tens of megabytes, never the files' contents.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.bag.validate_codes import Collector

#: Files operating systems drop into folders; worth a warning in a payload (LoC suite "warning").
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".spotlight-v100",
                          ".trashes", ".fseventsd", ".directory", "icon\r"})


class Item:
    """One file of the bag (or one path a manifest lists): kept small on purpose."""

    __slots__ = ("disk", "size", "listed", "digests", "fetch")

    def __init__(self, disk: str | None, size: int = 0) -> None:
        self.disk = disk  # bag path as on disk, None when only listed
        self.size = size
        self.listed: str | None = None  # first listed spelling, when it differs from the key
        self.digests: list[bytes | None] | None = None  # per manifest, in manifest order
        self.fetch = False  # named in fetch.txt

    def digest(self, index: int) -> bytes | None:
        """The raw digest the manifest number ``index`` gives, or None if it does not list this."""
        return self.digests[index] if self.digests is not None else None


@dataclass
class Tree:
    """The bag as found on disk."""

    payload: dict[str, Item] = field(default_factory=dict)
    tags: dict[str, Item] = field(default_factory=dict)
    dirs: set[str] = field(default_factory=set)  # NFC paths of payload directories
    links: set[str] = field(default_factory=set)  # NFC paths of symlinks (already reported)
    has_data: bool = False
    payload_files: int = 0
    payload_bytes: int = 0


def nfc_key(path: str) -> str:
    """The comparison key of a bag path (NFC); the same object when already normalised."""
    return path if unicodedata.is_normalized("NFC", path) else unicodedata.normalize("NFC", path)


def walk(c: Collector) -> Tree:
    """Walk the whole bag once, reporting links, special files and name collisions."""
    tree = Tree()
    stack: list[str] = [""]
    while stack:
        rel_dir = stack.pop()
        entries = _list_dir(c, rel_dir)
        if entries is None:
            continue
        if rel_dir.startswith("data/") and not entries:  # an empty data/ is an empty bag: fine
            c.add("EMPTY-DIRECTORY", rel_dir, "empty directory: manifests cannot record it, "
                  "so copies of the bag may lose it (add a placeholder file if it matters)")
        _check_collisions(c, rel_dir, [e.name for e in entries])
        for entry in reversed(entries):  # reversed: the stack then yields names in order
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            _visit(c, tree, entry, rel, stack)
    return tree


def _list_dir(c: Collector, rel_dir: str) -> list[os.DirEntry[str]] | None:
    try:
        with os.scandir(c.bag / rel_dir if rel_dir else c.bag) as it:
            return sorted(it, key=lambda e: e.name)
    except OSError as exc:
        c.add("UNREADABLE", rel_dir, f"directory cannot be listed: {exc.strerror or exc}")
        return None


def _visit(c: Collector, tree: Tree, entry: os.DirEntry[str], rel: str, stack: list[str]) -> None:
    in_payload = rel.startswith("data/")
    try:
        mode = entry.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        c.add("UNREADABLE", rel, f"cannot be examined: {exc.strerror or exc}")
        return
    if stat.S_ISLNK(mode):
        _report_link(c, tree, rel)
    elif stat.S_ISDIR(mode):
        if rel == "data":
            tree.has_data = True
        if in_payload or rel == "data":
            tree.dirs.add(nfc_key(rel))
        stack.append(rel)
    elif stat.S_ISREG(mode):
        size = entry.stat(follow_symlinks=False).st_size
        if in_payload:
            _index(tree.payload, rel, size)
            tree.payload_files += 1
            tree.payload_bytes += size
        elif rel != "data":
            _index(tree.tags, rel, size)
    else:
        c.add("SPECIAL-FILE", rel, "is a device, FIFO or socket; a bag holds only files and directories")


def _index(table: dict[str, Item], rel: str, size: int) -> None:
    """Key a file by its NFC path; when two on-disk names share one NFC form (reported as a
    collision), the name already in NFC keeps the NFC key and the other is keyed as written."""
    key = nfc_key(rel)
    existing = table.get(key)
    if existing is not None and existing.disk is not None:
        if rel == key:
            table[existing.disk] = existing
        else:
            key = rel
    table[key] = Item(rel, size)


def lookup_key(table: dict[str, Item], path: str) -> str:
    """The index key for a path read from a manifest: exact on-disk spelling first, then NFC."""
    return path if path in table else nfc_key(path)


def _report_link(c: Collector, tree: Tree, rel: str) -> None:
    tree.links.add(nfc_key(rel))
    try:
        target = os.readlink(c.bag / rel)
    except OSError:
        target = "?"
    root = os.path.realpath(c.bag)
    resolved = os.path.realpath(c.bag / rel)
    outside = os.path.commonpath([root, resolved]) != root
    where = "outside the bag" if outside else "inside the bag"
    c.add("SYMLINK", rel, f"is a symbolic link to {target!r} ({where}); Strongroom never follows "
          "links in a bag, so its content is not part of the bag", found=target)


def _check_collisions(c: Collector, rel_dir: str, names: list[str]) -> None:
    """Siblings whose names are equal after NFC, or differ only by case, cannot coexist everywhere."""
    by_form: dict[str, str] = {}
    by_case: dict[str, str] = {}
    where = f"{rel_dir}/" if rel_dir else ""
    for name in names:
        form = nfc_key(name)
        if form in by_form:
            c.add("NAME-NORMALIZATION-COLLISION", where + name,
                  f"({unicode_form(name)}) and {where}{by_form[form]} ({unicode_form(by_form[form])}) "
                  "are the same name in different Unicode forms; "
                  "they collide on normalising filesystems (macOS) and in name comparisons")
        by_form.setdefault(form, name)
        folded = form.casefold()
        if folded in by_case and by_case[folded] != name and by_form[form] == name:
            c.add("NAME-CASE-COLLISION", where + name,
                  f"and {where}{by_case[folded]} differ only by case; they collide on "
                  "case-insensitive filesystems (Windows, macOS)")
        by_case.setdefault(folded, name)


def unicode_form(name: str) -> str:
    """'NFC', 'NFD' (ASCII names are both: 'NFC') or 'mixed form', to tell look-alike names apart."""
    for form in ("NFC", "NFD"):
        if unicodedata.is_normalized(form, name):
            return form
    return "mixed form"


def is_system_file(path: str) -> bool:
    """True for names like .DS_Store, Thumbs.db or AppleDouble ``._x`` files."""
    name = path.rsplit("/", 1)[-1]
    return name.lower() in SYSTEM_FILES or name.startswith("._")
