"""The payload of a bag being written: found, checked and read back without per-file objects.

Strongroom's writer must stay flat in memory whatever the number of files (issue #6: 150 MB
for 100,000 files).  Before, it held a ``PayloadFile`` per file for the whole run (Path +
PurePosixPath, ~0.5 KB) and a ``PayloadDigest`` per file (~0.8 KB): 130 MB at 100,000 files.
Now:

* a directory is *walked*, not listed: :class:`DirectoryPayload` yields its files anew on each
  iteration, already in bag-path order (so manifests are written as files are copied, with no
  sort and nothing kept); only one directory's names are held at a time;
* the refusal of unsafe payload is a first pass that keeps 8 bytes a file (a hash of each
  name's collision key, in an ``array``), so nothing is written until the whole payload passed;
* what the writer measured is read back from the written manifests (:class:`PayloadView`) when
  a caller asks for it (PREMIS for ingest's few-file bags), instead of being kept.
"""

from __future__ import annotations

import heapq
import os
import stat
from array import array
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pipeline.bag.names import nfc, unsafe_reason
from pipeline.bag.tagfiles import iter_manifest, manifest_name
from pipeline.errors import PayloadError


@dataclass(frozen=True, slots=True)
class PayloadFile:
    """One file to bag: where it is read from and where it goes below ``data/``."""

    source: Path
    path: PurePosixPath


@dataclass(frozen=True, slots=True)
class PayloadDigest:
    """What the writer measured of one payload file while copying it."""

    path: str  # the bag path, e.g. "data/a.txt"
    size: int
    digests: dict[str, str]


#: Starts a new pass over the payload: (source file, path below data/) in bag-path order.
Pairs = Callable[[], Iterator[tuple[str, str]]]


class DirectoryPayload:
    """Every file below ``root`` as payload, walked anew on each iteration, in bag-path order.

    Symlinks and special files are yielded too, so that the writer refuses them by name.
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def __iter__(self) -> Iterator[PayloadFile]:
        for source, rel in self.pairs():
            yield PayloadFile(Path(source), PurePosixPath(rel))

    def pairs(self) -> Iterator[tuple[str, str]]:
        """(source path, path below data/) as plain strings: what the writer works with."""
        return walk_sorted(os.fspath(self.root))


def walk_sorted(root: str) -> Iterator[tuple[str, str]]:
    """Every non-directory below ``root`` as (path, relative path), relative paths in code-point order.

    Sorting each directory's entries by name, with ``/`` appended to subdirectories, gives the
    order of the whole relative paths ("a/b.txt" < "a/b/x" < "a/b0"), so the writer's manifests
    come out sorted with nothing held but the directories on the current path.
    """
    stack = [(root, "", iter(_sorted_entries(root, "")))]
    while stack:
        directory, prefix, entries = stack[-1]
        for key in entries:
            if key.endswith("/"):  # a real directory (a name never ends with "/")
                sub, sub_prefix = f"{directory}/{key[:-1]}", prefix + key
                stack.append((sub, sub_prefix, iter(_sorted_entries(sub, sub_prefix))))
                break
            yield f"{directory}/{key}", prefix + key
        else:
            stack.pop()


def _sorted_entries(directory: str, rel: str) -> list[str]:
    try:
        with os.scandir(directory) as found:
            return sorted(e.name + "/" if e.is_dir(follow_symlinks=False) else e.name for e in found)
    except OSError as exc:  # os.walk would skip it silently: a bag must not lose a subtree
        raise PayloadError(Path(directory), rel.rstrip("/") or ".",
                           f"cannot be listed: {exc.strerror}") from exc


def pairs_of(files: list[PayloadFile]) -> Pairs:
    """A caller's list as a payload pass, sorted by bag path (it is sorted in place)."""
    files.sort(key=lambda f: f.path.as_posix())
    return lambda: ((os.fspath(f.source), f.path.as_posix()) for f in files)


@dataclass(frozen=True)
class PayloadCheck:
    """What the check pass saw: the writer compares the copy pass with it."""

    root: Path  # where the payload comes from (for messages)
    files: int
    names: int  # sum of the names' hashes, modulo 2**64: the copy pass must see the same names
    octets: int = 0  # as the check pass saw them (the copy counts its own)


_MASK = (1 << 64) - 1


def add_name(total: int, rel: str) -> int:
    """``total`` with the name ``rel`` (below data/) added: the check and copy passes compare sums."""
    return (total + hash(rel)) & _MASK


def check_payload(pairs: Pairs, root: Path) -> PayloadCheck:
    """Refuse unsafe, unreadable or colliding payload before anything is written.

    Keeps 8 bytes a file: the hash of each name's collision key (NFC, case-folded).  Equal
    hashes are rare; only then is the payload read again to name the colliding files.
    """
    keys: array[int] = array("q")
    files = names = octets = 0
    for source, rel in pairs():
        octets += _check_file(source, rel)
        keys.append(hash(nfc(rel).casefold()))
        files += 1
        names = add_name(names, rel)
    suspects = _repeated(keys)
    del keys
    if suspects:
        _name_collision(pairs, suspects)
    return PayloadCheck(root, files, names, octets)


def _check_file(source: str, rel: str) -> int:
    """The file's size, once it is known safe to bag (else PayloadError)."""
    reason = unsafe_reason(f"data/{rel}")  # checked as the bag path: "~x" is fine below data/
    if reason:
        raise PayloadError(Path(source), rel, f"cannot be placed in a bag: {reason}")
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise PayloadError(Path(source), rel, "not found") from None
    except OSError as exc:
        raise PayloadError(Path(source), rel, f"cannot be read: {exc.strerror}") from exc
    if stat.S_ISLNK(st.st_mode):
        raise PayloadError(Path(source), rel, "is a symbolic link (refused: bag real files only)")
    if not stat.S_ISREG(st.st_mode):
        raise PayloadError(Path(source), rel, "is not a regular file (device, FIFO or directory)")
    if not os.access(source, os.R_OK):
        raise PayloadError(Path(source), rel, "is not readable")
    return st.st_size


#: Hashes sorted at a time when looking for repeats (a list of this many ints is ~2.6 MB).
_RUN = 1 << 16


def _repeated(keys: array[int]) -> set[int]:
    """The values that occur more than once; sorted in runs and merged, never all as Python ints."""
    runs = [array("q", sorted(keys[i:i + _RUN])) for i in range(0, len(keys), _RUN)]
    repeated: set[int] = set()
    last: int | None = None
    for key in heapq.merge(*runs):
        if key == last:
            repeated.add(key)
        last = key
    return repeated


def _name_collision(pairs: Pairs, suspects: set[int]) -> None:
    seen: dict[str, str] = {}
    for source, rel in pairs():
        key = nfc(rel).casefold()
        if hash(key) not in suspects:
            continue
        if key in seen:
            raise PayloadError(Path(source), rel, f"collides with '{seen[key]}' (same name after "
                               "Unicode normalisation or case folding)")
        seen[key] = rel


class PayloadView(Collection[PayloadDigest]):
    """The payload of a written bag, read back from its manifests on each iteration.

    ``len()`` and :attr:`octets` are the writer's counts; iterating reads the manifests (all in
    the same bag-path order) and each file's size from the bag, holding one entry at a time.
    """

    def __init__(self, bag: Path, algorithms: tuple[str, ...], files: int, octets: int) -> None:
        self.bag, self.algorithms, self.files, self.octets = bag, algorithms, files, octets

    def __len__(self) -> int:
        return self.files

    def __iter__(self) -> Iterator[PayloadDigest]:
        manifests = [iter_manifest(self.bag / manifest_name(alg)) for alg in self.algorithms]
        for rows in zip(*manifests, strict=True):
            path = rows[0][0]
            if any(row[0] != path for row in rows):
                raise ValueError(f"{self.bag}: payload manifests list different files")
            size = os.lstat(self.bag.joinpath(*path.split("/"))).st_size
            yield PayloadDigest(path, size, {alg: digest for alg, (_, digest) in zip(self.algorithms, rows)})

    def __contains__(self, item: object) -> bool:
        return any(entry == item for entry in self)
