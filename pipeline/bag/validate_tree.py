"""What is on disk in a bag: one walk, never following a link, into a compact index.

The :class:`Index` keys each file by the NFC form of its bag path (RFC 8493 names are compared
after Unicode normalisation while files are opened by their on-disk names) and keeps everything
in flat columns: the keys as UTF-8 in one buffer behind an open-addressing table
(:class:`Keys`), on-disk names as entry numbers, sizes, and one raw digest per manifest packed
into a bytearray - or, from :data:`SPILL_ROWS` rows on, into a temporary file.  Measured with
tracemalloc (tests/test_memory.py): 180 bytes a file with the digests in memory, 84 with them
spilled, where the index before (a dict of path strings) held 241 and one object per file 540;
so a bag of 1,000,000 files validates in well under 150 MB.  A file's contents are never held.
"""

from __future__ import annotations

import os
import stat
import tempfile
import unicodedata
from array import array
from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

from pipeline.bag.validate_codes import Collector

#: Files operating systems drop into folders; worth a warning in a payload (LoC suite "warning").
SYSTEM_FILES = frozenset({".ds_store", "thumbs.db", "desktop.ini", "ehthumbs.db", ".spotlight-v100",
                          ".trashes", ".fseventsd", ".directory", "icon\r"})


#: Bytes per block of a digest column kept in a temporary file (a multiple of every digest width
#: below, so no digest straddles two blocks): one 4 KiB page of sha512 digests.
_SPILL_BLOCK_ROWS = 64
#: Columns of at least this many rows keep their digests in a temporary file, not in memory.
SPILL_ROWS = 100_000


class _SpilledBytes:
    """A bytearray's ``[a:b]`` get/set and ``extend``, kept in an unlinked temporary file.

    One block is cached (read, changed, written back when another is needed): the validator
    puts and gets digests in about row order, so a block is loaded once per 64 rows.
    """

    __slots__ = ("_file", "_fd", "_block", "_index", "_cached", "_dirty", "_size")

    def __init__(self, size: int, block: int) -> None:
        self._file = tempfile.TemporaryFile(prefix="strongroom-index-")  # unlinked: gone with the process
        self._fd = self._file.fileno()
        os.ftruncate(self._fd, size)
        self._block, self._size = block, size
        self._index = -1
        self._cached = bytearray()
        self._dirty = False

    def __len__(self) -> int:
        return self._size

    def _load(self, index: int) -> bytearray:
        if index != self._index:
            if self._dirty:
                os.pwrite(self._fd, self._cached, self._index * self._block)
            data = os.pread(self._fd, self._block, index * self._block)
            self._cached = bytearray(data.ljust(self._block, b"\0"))
            self._index, self._dirty = index, False
        return self._cached

    def __getitem__(self, span: slice) -> bytes:
        start, stop = span.start, span.stop
        index, offset = divmod(start, self._block)
        return bytes(self._load(index)[offset:offset + stop - start])

    def __setitem__(self, span: slice, value: bytes) -> None:
        index, offset = divmod(span.start, self._block)
        self._load(index)[offset:offset + len(value)] = value
        self._dirty = True

    def extend(self, value: bytes) -> None:
        self._size += len(value)
        os.ftruncate(self._fd, self._size)


class DigestColumn:
    """The digests one manifest gives, by row: fixed-width bytes in one bytearray.

    From SPILL_ROWS rows on, that bytearray is a temporary file (the digests are most of an
    index: 96 bytes a file for sha512 + sha256, where everything else takes about 70).  A
    manifest of an algorithm whose digest length Strongroom does not know (it only reports
    those) keeps its digests in a dict instead.
    """

    __slots__ = ("width", "data", "present", "other")

    def __init__(self, width: int | None, *, reserve: int = 0) -> None:
        self.width = width
        # Sized once for the files the walk found: growing by one row per line costs more.
        self.data: bytearray | _SpilledBytes = bytearray()
        if width is not None:
            self.data = (_SpilledBytes(reserve * width, width * _SPILL_BLOCK_ROWS) if reserve >= SPILL_ROWS
                         else bytearray(reserve * width))
        self.present = bytearray(reserve)  # 1 where this manifest lists the row
        self.other: dict[int, bytes] = {}

    def has(self, row: int) -> bool:
        """True when the manifest lists ``row``."""
        return row < len(self.present) and self.present[row] == 1

    def get(self, row: int) -> bytes | None:
        """The raw digest for ``row``, or None when the manifest does not list it."""
        if row >= len(self.present) or not self.present[row]:
            return None
        if self.width is None or row in self.other:
            return self.other[row]
        return bytes(self.data[row * self.width:(row + 1) * self.width])

    def put(self, row: int, digest: bytes) -> None:
        """Record the digest for ``row``."""
        width = self.width
        if width is not None and row < len(self.present) and len(digest) == width:
            self.present[row] = 1  # the usual case first: a row the walk found, a well-formed digest
            self.data[row * width:(row + 1) * width] = digest
            return
        if row >= len(self.present):
            grow = row + 1 - len(self.present)
            self.present.extend(bytes(grow))
            if self.width is not None:
                self.data.extend(bytes(grow * self.width))
        self.present[row] = 1
        if self.width is None or len(digest) != self.width:
            self.other[row] = digest
        else:
            self.data[row * self.width:(row + 1) * self.width] = digest


def _encode(key: str) -> bytes:
    # surrogatepass: a name os.scandir decoded with surrogateescape (undecodable bytes) round-trips.
    return key.encode("utf-8", "surrogatepass")


class Keys(MutableMapping[str, int]):
    """``dict[str, int]`` (key -> row, insertion order kept) in flat arrays, for a million files.

    A dict of a million path strings costs about 180 bytes a file (the ``str`` objects and the
    hash table); here every key is UTF-8 in one ``bytearray``, located by an ``array`` of end
    offsets, and found through an open-addressing table of entry numbers: about 40 bytes a file.
    Keys are never removed (``del`` is refused); setting an existing key changes its value in
    place, as a dict does.
    """

    __slots__ = ("_blob", "_ends", "_values", "_slots", "_mask")

    def __init__(self) -> None:
        self._blob = bytearray()
        self._ends = array("q", [0])  # entry e's key is _blob[_ends[e]:_ends[e + 1]]
        self._values = array("q")
        self._mask = 7
        self._slots = array("q", bytes(8 * (self._mask + 1)))  # entry number + 1; 0: empty

    def __len__(self) -> int:
        return len(self._values)

    def _key(self, entry: int) -> bytes:
        return bytes(self._blob[self._ends[entry]:self._ends[entry + 1]])

    def _find(self, key: str) -> tuple[int, bytes]:
        """(slot, encoded key): the slot holding ``key``, or the empty one where it would go."""
        raw = _encode(key)
        mask, slots, ends, blob = self._mask, self._slots, self._ends, self._blob
        i = hash(key) & mask
        while True:
            entry = slots[i]
            if not entry or blob[ends[entry - 1]:ends[entry]] == raw:
                return i, raw
            i = (i + 1) & mask

    def __getitem__(self, key: str) -> int:
        slot, _ = self._find(key)
        entry = self._slots[slot]
        if not entry:
            raise KeyError(key)
        return self._values[entry - 1]

    def get(self, key: str, default: int | None = None) -> int | None:  # type: ignore[override]
        """The row of ``key``, or ``default`` (the hot path: no exception)."""
        slot, _ = self._find(key)
        entry = self._slots[slot]
        return self._values[entry - 1] if entry else default

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and bool(self._slots[self._find(key)[0]])

    def __setitem__(self, key: str, value: int) -> None:
        slot, raw = self._find(key)
        entry = self._slots[slot]
        if entry:
            self._values[entry - 1] = value
            return
        self._blob += raw
        self._ends.append(len(self._blob))
        self._values.append(value)
        self._slots[slot] = len(self._values)
        if 2 * len(self._values) > self._mask:
            self._grow()

    def __delitem__(self, key: str) -> None:
        raise TypeError("an index never forgets a key")

    def _grow(self) -> None:
        mask = 2 * self._mask + 1
        slots = array("q", bytes(8 * (mask + 1)))
        for entry, key in enumerate(self):
            i = hash(key) & mask
            while slots[i]:
                i = (i + 1) & mask
            slots[i] = entry + 1
        self._slots, self._mask = slots, mask

    def __iter__(self) -> Iterator[str]:
        blob, ends = self._blob, self._ends
        for e in range(len(self._values)):
            yield blob[ends[e]:ends[e + 1]].decode("utf-8", "surrogatepass")

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]
        """(key, row) pairs in insertion order, decoded one at a time."""
        return zip(iter(self), self._values)

    def values(self) -> Iterator[int]:  # type: ignore[override]
        """Rows in the keys' insertion order."""
        return iter(self._values)

    def entry_key(self, entry: int) -> str:
        """The key inserted ``entry``-th (0-based)."""
        return self._key(entry).decode("utf-8", "surrogatepass")


class _DiskNames(Sequence[str | None]):
    """``disk[row]``: the on-disk bag path of each row, or None when only a manifest lists it.

    Nearly always the row's own key (the walk files a row under its on-disk name's NFC form,
    the same string when the name is NFC), so a row holds the number of that key's entry in
    :class:`Keys`; the rare others are kept as strings.
    """

    __slots__ = ("_keys", "_entries", "_other")

    _NONE, _OTHER = -1, -2

    def __init__(self, keys: Keys) -> None:
        self._keys = keys
        self._entries = array("q")
        self._other: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, row: int) -> str | None: ...
    @overload
    def __getitem__(self, row: slice) -> Sequence[str | None]: ...

    def __getitem__(self, row: int | slice) -> str | None | Sequence[str | None]:
        if isinstance(row, slice):
            return [self[r] for r in range(*row.indices(len(self)))]
        entry = self._entries[row]
        if entry >= 0:
            return self._keys.entry_key(entry)
        return None if entry == self._NONE else self._other[row]

    def append(self, disk: str | None, key_entry: int | None) -> None:
        """Add a row: ``key_entry`` is the number of the key entry equal to ``disk``, if any."""
        if disk is None:
            self._entries.append(self._NONE)
        elif key_entry is not None:
            self._entries.append(key_entry)
        else:
            self._other[len(self._entries)] = disk
            self._entries.append(self._OTHER)


class Index:
    """Files of the bag (and paths the manifests list), keyed by NFC bag path, one row each.

    ``disk[row]`` is the bag path as on disk (None when only listed), ``size[row]`` its size;
    ``listed`` holds the first listed spelling where it differs from the key, ``fetch`` the rows
    fetch.txt names, ``columns`` one :class:`DigestColumn` per manifest, in manifest order.
    Everything per row is in flat arrays (:class:`Keys`, :class:`DigestColumn`): about 70 bytes
    a file in memory plus the digests (in a temporary file from SPILL_ROWS rows).
    """

    __slots__ = ("rows", "disk", "size", "listed", "fetch", "columns")

    def __init__(self) -> None:
        self.rows = Keys()
        self.disk = _DiskNames(self.rows)
        self.size = array("q")
        self.listed: dict[int, str] = {}
        self.fetch: set[int] = set()
        self.columns: list[DigestColumn] = []

    def __contains__(self, key: object) -> bool:
        return key in self.rows

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, key: str) -> int | None:
        """The row of ``key``, or None."""
        return self.rows.get(key)

    def new_row(self, key: str, disk: str | None, size: int = 0) -> int:
        """A new row, filed under ``key``."""
        row = len(self.disk)
        entries = len(self.rows)
        self.rows[key] = row
        new_entry = len(self.rows) > entries
        self.disk.append(disk, entries if disk is not None and disk == key and new_entry else None)
        self.size.append(size)
        return row

    def digest(self, row: int, index: int) -> bytes | None:
        """The raw digest manifest number ``index`` gives for ``row``, or None if it does not list it."""
        return self.columns[index].get(row) if index < len(self.columns) else None

    def digests(self, row: int) -> list[bytes | None] | None:
        """Per manifest, the raw digest for ``row``; None when no manifest lists it."""
        found = [col.get(row) for col in self.columns]
        return found if any(d is not None for d in found) else None


@dataclass
class Tree:
    """The bag as found on disk."""

    payload: Index = field(default_factory=Index)
    tags: Index = field(default_factory=Index)
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


def _index(table: Index, rel: str, size: int) -> None:
    """Key a file by its NFC path; when two on-disk names share one NFC form (reported as a
    collision), the name already in NFC keeps the NFC key and the other is keyed as written."""
    key = nfc_key(rel)
    existing = table.rows.get(key)
    if existing is not None:
        existing_disk = table.disk[existing]
        if existing_disk is not None:
            if rel == key:
                table.rows[existing_disk] = existing
            else:
                key = rel
    table.new_row(key, rel, size)


def lookup_key(table: Index, path: str) -> str:
    """The index key for a path read from a manifest: exact on-disk spelling first, then NFC."""
    return path if path in table.rows else nfc_key(path)


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
