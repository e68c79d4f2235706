"""The small interface every deposit target implements, and what the targets share.

A target is a repository that holds copies of bags under their names (``<record-id>.v<N>``):
it can *put* a bag (copy, verify at the destination, then publish so that a reader never sees a
partial copy), *locate* and *list* the bags it holds, and re-read a held bag to give its *fixity*
(path in bag -> size and digests), which *verify* compares with what the bag's own manifests
say.  Checks return findings; actions raise :class:`~pipeline.errors.DepositError`.
"""

from __future__ import annotations

import abc
import hashlib
import builtins
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import ClassVar, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict

from pipeline.bag.names import unsafe_reason
from pipeline.bag.tagfiles import info_value, iter_manifest, manifest_algorithms, manifest_name, read_bag_info
from pipeline.errors import DepositError, DepositMismatchError, UsageError
from pipeline.findings import Finding
from pipeline.fixity import CHUNK, DEFAULT_ALGORITHMS, Digests, digest_file

#: path in bag -> (size in octets, {algorithm: hexdigest})
Fixity = dict[str, tuple[int, dict[str, str]]]

#: Finding codes of a deposit verification (stable: the README documents them).
MISSING = "DEP001"  # a file of the bag is absent at the destination
EXTRA = "DEP002"  # the destination holds a file the bag does not have
SIZE = "DEP003"  # sizes differ
DIGEST = "DEP004"  # a digest differs
ABSENT = "DEP005"  # the destination holds no bag of that name

_BAG_NAME = re.compile(r"^(?P<id>.+)\.v(?P<n>[1-9][0-9]*)$")


class DepositResult(BaseModel):
    """What one deposit did: where the copy is, how much was copied and whether it was verified."""

    model_config = ConfigDict(frozen=True)

    bag: str
    outcome: Literal["deposited", "unchanged"]
    location: str
    files: int
    bytes: int
    verified: bool
    detail: str = ""

    def line(self) -> str:
        """One human-readable line for the CLI."""
        how = "verified" if self.verified else "NOT verified"
        extra = f"; {self.detail}" if self.detail else ""
        return f"{self.outcome} {self.bag} -> {self.location} ({self.files} files, {self.bytes} bytes, {how}{extra})"


class Target(abc.ABC):
    """A repository that holds deposited bags.  One module per kind, registered by URL scheme."""

    scheme: ClassVar[str]
    #: How many bags may be deposited into this target at once (the flow sizes its pool with it).
    max_concurrency: int = 2

    def __init__(self, url: str) -> None:
        self.url = url

    @abc.abstractmethod
    def put(self, bag: Path) -> DepositResult:
        """Copy ``bag`` here, verify the copy against the bag's manifests, then publish it.

        The same bag again is a no-op (outcome ``unchanged``, after re-verifying the copy here).
        A different or damaged bag already held under the same name raises
        :class:`~pipeline.errors.DepositMismatchError`; nothing is overwritten.  Leftovers of an
        interrupted deposit of this bag are resumed or rolled back first.
        """

    @abc.abstractmethod
    def locate(self, bag_name: str) -> str | None:
        """The location URL of the complete bag ``bag_name`` held here, or None."""

    @abc.abstractmethod
    def list(self) -> list[str]:
        """Names of the complete bags held here, sorted."""

    @abc.abstractmethod
    def fixity(self, bag_name: str, algorithms: Sequence[str]) -> Fixity:
        """Re-read every file of the held bag ``bag_name`` and digest it: path in bag -> (size, digests).

        Raises DepositError when no complete bag of that name is held here.
        """

    def check_destination(self) -> None:
        """Raise UsageError when the repository itself is missing and was not asked to be created.

        Called by the CLI before any work starts, so that a storage mount that is not there fails
        loudly instead of becoming copies on the local disk (``put`` refuses it too).
        """
        problem = self.destination_problem()
        if problem:
            raise UsageError(problem)

    def destination_problem(self) -> str | None:
        """Why this repository cannot take a deposit as it stands (missing, not one), or None."""
        return None

    def verify(self, bag_name: str,
               expected: Mapping[str, tuple[int, Mapping[str, str]]]) -> builtins.list[Finding]:
        """Compare the held copy of ``bag_name`` with ``expected``; no findings means identical."""
        if self.locate(bag_name) is None:
            return [Finding(code=ABSENT, message=f"{redact(self.url)}: holds no bag named {bag_name}")]
        return compare(self.fixity(bag_name, algorithms_of(expected)), expected)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def redact(url: str) -> str:
    """A URL fit to print in an error: any user:password part and every query value replaced.

    Query values are hidden because a malformed URL may carry a secret where a known parameter
    was expected (``?aws_secret_access_key=...``); the parameter names stay, so the message still
    says what was wrong.
    """
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rpartition("@")[2]
    query = "&".join(f"{k}=***" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    head = f"{parts.scheme}:" if parts.scheme else ""
    if url[len(head):].startswith("//"):
        head += f"//{netloc}"
    return head + parts.path + (f"?{query}" if query else "")


# --------------------------------------------------------------------------- the bag being deposited


def wants_create(url: str, query: Mapping[str, Sequence[str]]) -> bool:
    """The value of a ``?create=`` query parameter: 1/yes/true asks to create a missing directory."""
    values = query.get("create", ["0"])
    value = values[-1].lower() if values else "0"
    if value not in ("0", "1", "no", "yes", "false", "true"):
        raise UsageError(f"'{redact(url)}': create must be 1 or 0")
    return value in ("1", "yes", "true")


def bag_files(bag: Path) -> list[tuple[str, Path]]:
    """(path in bag, file on disk) for every file of ``bag``, sorted; refuses links and specials."""
    if not (bag / "bagit.txt").is_file():
        raise DepositError(f"{bag}: not a bag (no bagit.txt)")
    found: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(bag):
        dirs.sort()
        base = Path(root)
        for name in [*files, *dirs]:
            path = base / name
            mode = path.lstat().st_mode
            rel = path.relative_to(bag).as_posix()
            if stat.S_ISLNK(mode) or not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise DepositError(f"{bag}: '{rel}' is a link or special file; only regular files are deposited")
            if stat.S_ISREG(mode):
                found.append((rel, path))
    return sorted(found)


def bag_expectations(bag: Path) -> Fixity:
    """What a faithful copy of ``bag`` must hold: every file, its size and digests.

    Digests come from the bag's own payload and tag manifests; files no manifest lists (the tag
    manifests themselves, unlisted tag files) are digested here with the manifests' algorithms.
    """
    files = bag_files(bag)
    stated: dict[str, dict[str, str]] = {}
    algorithms = manifest_algorithms(bag) or list(DEFAULT_ALGORITHMS)
    for tag in (False, True):
        for alg in manifest_algorithms(bag, tag=tag):
            manifest = manifest_name(alg, tag=tag)
            for listed, digest in iter_manifest(bag / manifest):
                reason = unsafe_reason(listed)
                if reason:  # the copy could never match, and the message would only mislead
                    raise DepositError(f"{bag}: {manifest} lists an unsafe path '{listed}' ({reason}); "
                                       "not deposited (run strongroom validate)")
                stated.setdefault(listed, {})[alg] = digest
    expected: Fixity = {}
    for rel, path in files:
        size = path.stat().st_size
        expected[rel] = (size, stated[rel]) if rel in stated else (size, digest_file(path, algorithms)[1])
    for rel in stated.keys() - expected.keys():
        expected[rel] = (-1, stated[rel])  # listed but absent locally: the copy cannot match either
    return expected


def bag_identity(bag: Path) -> tuple[str, str]:
    """(bag name, External-Identifier) of a bag; the identifier falls back to the name's record id."""
    name = bag.resolve().name
    check_bag_name(name)
    external = info_value(read_bag_info(bag), "External-Identifier")
    if external:
        return name, external
    m = _BAG_NAME.match(name)
    return name, m.group("id") if m else name


def split_bag_name(name: str) -> tuple[str, int] | None:
    """``rec.v2`` -> (``rec``, 2); None when the name does not follow ``<record-id>.v<N>``."""
    m = _BAG_NAME.match(name)
    return (m.group("id"), int(m.group("n"))) if m else None


def check_bag_name(name: str) -> str:
    """A bag name usable as one path segment at every target, or DepositError."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name:
        raise DepositError(f"'{name}': not a usable bag name (one path segment, not hidden)")
    return name


# --------------------------------------------------------------------------- comparing fixity


def algorithms_of(expected: Mapping[str, tuple[int, Mapping[str, str]]]) -> list[str]:
    """Every algorithm named in ``expected``, sorted (sha512 and sha256 for Strongroom bags)."""
    return sorted({alg for _, digests in expected.values() for alg in digests}) or list(DEFAULT_ALGORITHMS)


def compare(found: Mapping[str, tuple[int, Mapping[str, str]]],
            expected: Mapping[str, tuple[int, Mapping[str, str]]]) -> list[Finding]:
    """Findings for every difference between the files found at a destination and those expected."""
    findings: list[Finding] = []
    for path in sorted(expected.keys() | found.keys()):
        if path not in found:
            findings.append(Finding(code=MISSING, path=path, message="missing at the destination"))
            continue
        if path not in expected:
            findings.append(Finding(code=EXTRA, path=path, message="at the destination but not in the bag"))
            continue
        (size, digests), (want_size, want) = found[path], expected[path]
        if want_size >= 0 and size != want_size:
            findings.append(Finding(code=SIZE, path=path, message="size differs",
                                    expected=str(want_size), found=str(size)))
        for alg, hexdigest in sorted(want.items()):
            got = digests.get(alg)
            if got is not None and got != hexdigest.lower():
                findings.append(Finding(code=DIGEST, path=path, message=f"{alg} differs",
                                        expected=hexdigest.lower(), found=got))
    return findings


def digest_reader(read: Callable[[int], bytes], algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Digest a stream given only its ``read(n)`` (HTTP bodies, tar members) in CHUNK blocks."""
    hashers = [(alg, hashlib.new(alg)) for alg in algorithms]
    size = 0
    while block := read(CHUNK):
        for _, h in hashers:
            h.update(block)
        size += len(block)
    return size, {alg: h.hexdigest() for alg, h in hashers}


def tree_fixity(root: Path, algorithms: Sequence[str]) -> Fixity:
    """Fixity of every regular file below ``root`` (a bag copy on a filesystem).

    Links are left out, so a file replaced by a link is reported missing: a link is no copy, and
    following it would read outside the repository.
    """
    result: Fixity = {}
    for rel, path in _walk_files(root):
        result[rel] = digest_file(path, algorithms)
    return result


def _walk_files(root: Path) -> Iterator[tuple[str, Path]]:
    for base, dirs, files in os.walk(root):  # never descends into linked directories
        dirs.sort()
        for name in sorted(files):
            path = Path(base) / name
            if is_plain_file(path):
                yield path.relative_to(root).as_posix(), path


def is_plain_file(path: Path, *, below: Path | None = None) -> bool:
    """True for a regular file that is not a link, reached from ``below`` through no link either."""
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return False
        if below is not None:
            parents = path.relative_to(below).parents
            return not any((below / p).is_symlink() for p in parents if str(p) != ".")
    except (OSError, ValueError):
        return False
    return True


def safe_join(root: Path, rel: str) -> Path:
    """``root / rel`` for a path read from a repository's own records, refusing any escape."""
    reason = unsafe_reason(rel)
    if reason:
        raise DepositError(f"{root}: refusing path '{rel}' ({reason})")
    return root.joinpath(*PurePosixPath(rel).parts)


def mismatch(location: str, findings: Sequence[Finding], problem: str) -> DepositMismatchError:
    """The error for a copy that differs from the bag (kept in one place so messages agree).

    The message shows the location with its query values masked (an S3 ``endpoint=``); the
    exception keeps the real location for the ledger's failed replication event.
    """
    error = DepositMismatchError(redact(location), findings, problem=problem)
    error.location = location
    return error


def already_held(name: str, location: str, findings: Sequence[Finding], expected: Fixity, *,
                 held: str = "bag") -> DepositResult:
    """The outcome of depositing a bag a target already holds under its name: ``unchanged`` when
    the held copy matched (no ``findings``), else DepositMismatchError - nothing is overwritten."""
    if findings:
        raise mismatch(location, findings,
                       f"already holds a different or damaged {held} under this name; nothing overwritten")
    files, octets = result_counts(expected)
    return DepositResult(bag=name, outcome="unchanged", location=location, files=files, bytes=octets,
                         verified=True, detail="already held, identical")


def result_counts(expected: Mapping[str, tuple[int, Mapping[str, str]]]) -> tuple[int, int]:
    """(files, octets) of a bag from its expectations."""
    return len(expected), sum(max(size, 0) for size, _ in expected.values())




@contextmanager
def os_errors(where: str) -> Iterator[None]:
    """An OSError (disk full, permission denied, ...) as a DepositError that names the place."""
    try:
        yield
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        raise DepositError(f"{where}: {what}" + (f": {exc.filename}" if exc.filename else "")) from exc
