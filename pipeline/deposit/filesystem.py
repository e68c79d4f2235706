"""``file:///path``: a directory repository (a mounted store, another disk, a NAS share).

A bag ``rec.v1`` is held as the directory ``<root>/rec.v1``, byte for byte the bag.  A deposit
copies into a private staging directory ``<root>/.strongroom-deposit/rec.v1.<random>.partial``,
flushes it to disk, re-reads and verifies it against the bag's manifests, and only then renames it
to ``<root>/rec.v1``: a reader sees no bag or a whole verified one.  Deposits of one bag name are
serialised by an advisory lock (``flock``, released by the kernel if the process dies), and the
next deposit of that name removes the staging directories a killed deposit left behind.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from pipeline.deposit.base import (
    DepositResult, already_held, Fixity, Target, bag_expectations, bag_files, bag_identity, compare,
    is_plain_file, mismatch, os_errors, redact, result_counts, tree_fixity, algorithms_of, wants_create,
)
from pipeline.durable import flush_tree, fsync_path, staging_dir
from pipeline.errors import DepositError, UsageError

WORK_DIR = ".strongroom-deposit"


class FilesystemTarget(Target):
    """Bags kept as plain directories below one root directory."""

    scheme = "file"
    max_concurrency = 2  # disk-bound: more parallel copies only make the heads seek

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qs(parts.query, keep_blank_values=True)
        if parts.netloc not in ("", "localhost") or set(query) - {"create"} or parts.fragment:
            raise UsageError(f"'{redact(url)}': use file:///absolute/path[?create=1] (no host or fragment)")
        self.create = wants_create(url, query)
        root = Path(unquote(parts.path))
        if not root.is_absolute() or str(root) == "/":
            raise UsageError(f"'{redact(url)}': the repository must be an absolute path below /")
        self.root = root
        super().__init__(root.as_uri())

    # -- Target

    def put(self, bag: Path) -> DepositResult:
        with os_errors(self.url):
            return self._put(bag)

    def _put(self, bag: Path) -> DepositResult:
        name, _ = bag_identity(bag)
        expected = bag_expectations(bag)
        self._make_root()
        with self._locked(name):
            self._remove_leftovers(name)
            dest = self.root / name
            if dest.exists() or dest.is_symlink():
                return self._already_held(name, expected)
            staging = staging_dir(self.root / WORK_DIR, f"{name}.", ".partial")
            try:
                self._copy(bag, staging)
                findings = compare(tree_fixity(staging, algorithms_of(expected)), expected)
                if findings:
                    raise mismatch(self._location(name), findings, "the copy does not match the bag's manifests")
                os.rename(staging, dest)  # dest is known absent and we hold the name's lock
                fsync_path(self.root)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        files, octets = result_counts(expected)
        return DepositResult(bag=name, outcome="deposited", location=self._location(name),
                             files=files, bytes=octets, verified=True)

    def locate(self, bag_name: str) -> str | None:
        held = self.root / bag_name
        if (bag_name.startswith(".") or "/" in bag_name or held.is_symlink()
                or not is_plain_file(held / "bagit.txt")):
            return None  # a link is no held copy, and reading through it would leave the repository
        return self._location(bag_name)

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(e.name for e in self.root.iterdir()
                      if not e.name.startswith(".") and (e / "bagit.txt").is_file() and not e.is_symlink())

    def fixity(self, bag_name: str, algorithms: Sequence[str]) -> Fixity:
        if self.locate(bag_name) is None:
            raise DepositError(f"{self.url}: holds no bag named {bag_name}")
        return tree_fixity(self.root / bag_name, algorithms)

    # -- internals

    def _location(self, name: str) -> str:
        return (self.root / name).as_uri()

    def _already_held(self, name: str, expected: Fixity) -> DepositResult:
        return already_held(name, self._location(name), self.verify(name, expected), expected)

    def destination_problem(self) -> str | None:
        if self.root.is_dir() or self.create:
            return None
        problem = "is not a directory" if os.path.lexists(self.root) else "no such directory"
        return (f"{self.url}: {problem} (a missing repository is never created unless the URL "
                "asks for it with ?create=1)")

    def _make_root(self) -> None:
        problem = self.destination_problem()  # also here: the mount may have gone since the command started
        if problem:
            raise DepositError(problem)
        try:
            (self.root / WORK_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DepositError(f"{self.root}: cannot create the repository directory: {exc.strerror}") from exc

    @contextmanager
    def _locked(self, name: str) -> Iterator[None]:
        # flock, not a lock file's existence: the kernel drops it when a deposit is killed.
        fd = os.open(self.root / WORK_DIR / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _remove_leftovers(self, name: str) -> None:
        """Roll back what an interrupted deposit of ``name`` left (we hold its lock: it is dead)."""
        for entry in (self.root / WORK_DIR).glob(f"{name}.*.partial"):
            shutil.rmtree(entry, ignore_errors=True)

    def _copy(self, bag: Path, staging: Path) -> None:
        for rel, source in bag_files(bag):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                # A kernel-side streamed copy; the copy is re-read and hashed by the verification.
                shutil.copyfile(source, target, follow_symlinks=False)
            except OSError as exc:
                raise DepositError(f"{target}: cannot copy '{rel}': {exc.strerror}") from exc
        flush_tree(staging)
