"""One recorded copy of a bag as a repair sees it: read a file from it, stage and install a file in it.

A copy is a bag directory (the local bag, or a ``file://`` replica), an OCFL object version
(``ocfl://``) or objects under an S3 prefix (``s3://``).  Every kind follows the same order: the
bytes of a repaired file are first written to a *staged* file (hashed while they are read from the
source, see :mod:`pipeline.audit.repair`), flushed, and only then *installed* in one step that
leaves the old file or the repaired one, never a partial one:

* a bag directory: staged beside the file it replaces (``.<name>.strongroom-repair-partial``,
  same directory, so same filesystem), re-read, renamed over it; a whole missing bag is built in
  ``<parent>/.strongroom-repair/<bag>.<random>.partial`` and renamed into place;
* OCFL: staged in ``<root>/extensions/strongroom-repair/``, checked against the digest the
  object's inventory names, renamed over the content file (inventories never change);
* S3: staged in the bags directory's ``.strongroom-repair/``, uploaded as one object (S3 replaces
  an object whole), read back and re-hashed.  A tar-serialised copy is one object for the bag: every
  file is staged as a bag tree, the tar written from it to a temporary key, read back against the
  ledger and copied over the old tar.

A killed repair leaves only staged files, which the next repair of the bag removes first.
"""

from __future__ import annotations

import abc
import errno
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pipeline.bag.names import unsafe_reason
from pipeline.durable import flush_tree, fsync_path, rename_noreplace, staging_dir
from pipeline.errors import RepairError, StrongroomError
from pipeline.fixity import digest_file

#: Suffix of a file staged beside the one it repairs (a killed repair's leftover has it too).
PARTIAL = ".strongroom-repair-partial"
#: Work directory of repairs beside bag directories and in the bags directory (hidden: no listing sees it).
WORK_DIR = ".strongroom-repair"

#: ``readinto(buffer) -> octets``: how a repair reads a source file, block by block.
Reader = Callable[[memoryview], int]


def is_partial(path: str) -> bool:
    """True for a file a repair staged beside the file it repairs."""
    name = path.rsplit("/", 1)[-1]
    return name.startswith(".") and name.endswith(PARTIAL)


def safe_path(path: str) -> str:
    """``path`` (from the ledger) when it stays inside a bag; RepairError otherwise."""
    reason = unsafe_reason(path)
    if reason:
        raise RepairError(f"refusing path '{path}' from the ledger ({reason})")
    return path


class Copy(abc.ABC):
    """One copy of a bag at one recorded location."""

    kind: str = ""

    def __init__(self, location: str, bag_name: str) -> None:
        self.location, self.bag_name = location, bag_name

    @abc.abstractmethod
    def reader(self, path: str) -> Any:
        """A context manager giving a ``readinto`` (:data:`Reader`) of the copy's file ``path``."""

    @abc.abstractmethod
    def stage(self, path: str, *, whole: bool) -> Path:
        """A path (absent, its directory made) where the repaired bytes of ``path`` are written first."""

    @abc.abstractmethod
    def install(self, path: str, staged: Path, digests: Mapping[str, str]) -> None:
        """Put the flushed, verified ``staged`` file in place of ``path``, in one step."""

    def install_whole(self) -> None:
        """Publish a whole copy staged file by file (only bag directories stage whole copies)."""
        raise RepairError(f"{self.location}: a whole copy is restored by a deposit, not staged")

    def quarantine(self, path: str, dest: Path) -> None:
        """Move the copy's extra file ``path`` to ``dest`` (never deleted)."""
        raise RepairError(f"{self.location}: extra files cannot be moved out of this kind of copy")

    def strays(self, keep: Sequence[str]) -> list[str]:
        """Files of a copy the check cannot see (a whole missing one) that ``keep`` does not name and a
        deposit restoring it would delete; none for the kinds whose deposit deletes nothing."""
        return []

    def clean(self) -> None:
        """Remove what a killed repair of this copy left staged."""

    def discard(self) -> None:
        """Remove what this repair staged and did not install."""


def verify_staged(staged: Path, digests: Mapping[str, str], *, what: str) -> None:
    """Flush ``staged`` and re-read it once (one algorithm): the bytes on disk are the bytes hashed."""
    fd = os.open(staged, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    algorithm = cheapest(digests)
    _, found = digest_file(staged, [algorithm])
    if found[algorithm] != digests[algorithm]:
        raise RepairError(f"{what}: the staged copy does not read back as written ({algorithm} differs)")


def cheapest(digests: Mapping[str, str]) -> str:
    """The reference algorithm quickest to re-compute (SHA-512 outruns SHA-256 on 64-bit CPUs without SHA-NI)."""
    for algorithm in ("sha256", "sha512", "sha384", "sha1", "md5", "sha224"):
        if algorithm in digests:
            return algorithm
    return sorted(digests)[0]


class DirectoryCopy(Copy):
    """A bag directory: the local bag or a ``file://`` replica (checked with the bag's manifests)."""

    kind = "file"

    def __init__(self, location: str, bag_name: str) -> None:
        super().__init__(location, bag_name)
        self.root = Path(unquote(urlsplit(location).path))
        self._whole: Path | None = None

    @contextmanager
    def reader(self, path: str) -> Iterator[Reader]:
        fd = os.open(self.root / safe_path(path), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            yield fh.readinto

    def stage(self, path: str, *, whole: bool) -> Path:
        rel = Path(safe_path(path))
        if whole:
            if self._whole is None:
                work = self.root.parent / WORK_DIR
                work.mkdir(parents=True, exist_ok=True)
                self._whole = staging_dir(work, f"{self.bag_name}.", ".partial")
            staged = self._whole / rel
        else:
            dest = self.root / rel
            staged = dest.parent / f".{dest.name}{PARTIAL}"
        staged.parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(staged):
            staged.unlink()
        return staged

    def install(self, path: str, staged: Path, digests: Mapping[str, str]) -> None:
        verify_staged(staged, digests, what=f"{self.location}: {path}")
        dest = self.root / safe_path(path)
        os.replace(staged, dest)
        fsync_path(dest.parent)

    def install_whole(self) -> None:
        if self._whole is None:
            raise RepairError(f"{self.location}: nothing was staged")
        flush_tree(self._whole)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        rename_noreplace(self._whole, self.root)
        fsync_path(self.root.parent)
        self._whole = None

    def quarantine(self, path: str, dest: Path) -> None:
        source = self.root / safe_path(path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            rename_noreplace(source, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            shutil.copy2(source, dest, follow_symlinks=False)  # another filesystem: copy, flush, then remove
            fsync_path(dest)
            source.unlink()
        fsync_path(dest.parent)
        fsync_path(source.parent)

    def clean(self) -> None:
        if self.root.is_dir() and not self.root.is_symlink():
            for base, _, files in os.walk(self.root):
                for name in files:
                    if is_partial(name):
                        os.unlink(Path(base) / name)
        work = self.root.parent / WORK_DIR
        if work.is_dir():
            for leftover in work.glob(f"{self.bag_name}.*.partial"):
                shutil.rmtree(leftover, ignore_errors=True)

    def discard(self) -> None:
        if self._whole is not None:
            shutil.rmtree(self._whole, ignore_errors=True)
            self._whole = None
        self.clean()
        _remove_if_empty(self.root.parent / WORK_DIR)


class OcflCopy(Copy):
    """A version of an OCFL object (``ocfl://``)."""

    kind = "ocfl"

    def __init__(self, location: str, bag_name: str, target: Any) -> None:
        super().__init__(location, bag_name)
        self.target = target
        self._staging: Path | None = None
        self._count = 0

    @contextmanager
    def reader(self, path: str) -> Iterator[Reader]:
        from pipeline.deposit.ocfl import content_file

        content, _, _ = content_file(self.target, self.bag_name, safe_path(path))
        fd = os.open(content, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb", buffering=0) as fh:
            yield fh.readinto

    def stage(self, path: str, *, whole: bool) -> Path:
        from pipeline.deposit.ocfl import repair_staging

        if self._staging is None:
            self._staging = repair_staging(self.target)
        self._count += 1
        return self._staging / f"{self._count}.partial"

    def install(self, path: str, staged: Path, digests: Mapping[str, str]) -> None:
        from pipeline.deposit.ocfl import content_file, replace_content

        content, algorithm, digest = content_file(self.target, self.bag_name, safe_path(path))
        fsync_path(staged)
        _, found = digest_file(staged, [algorithm])
        if found[algorithm] != digest:
            raise RepairError(f"{self.location}: {path}: the repaired bytes do not have the {algorithm} "
                              "digest the OCFL inventory names; not installed")
        replace_content(self.target, content, staged)

    def clean(self) -> None:
        from pipeline.deposit.ocfl import remove_repair_staging

        remove_repair_staging(self.target)

    def discard(self) -> None:
        self._staging = None
        self.clean()


class S3Copy(Copy):
    """Objects under an S3 prefix (``s3://``), staged through the bags directory."""

    kind = "s3"

    def __init__(self, location: str, bag_name: str, target: Any, work: Path) -> None:
        super().__init__(location, bag_name)
        self.target, self.work = target, work
        self._staging: Path | None = None
        self._count = 0

    @contextmanager
    def reader(self, path: str) -> Iterator[Reader]:
        from pipeline.deposit.s3 import open_object

        with open_object(self.target, self.bag_name, safe_path(path)) as read:
            def readinto(view: memoryview) -> int:
                data = read(len(view))
                view[:len(data)] = data
                return len(data)

            yield readinto

    @property
    def tar(self) -> bool:
        """True for a tar-serialised copy: one object for the whole bag, rebuilt whole from a staged tree."""
        return bool(self.target.serialization == "tar")

    def stage(self, path: str, *, whole: bool) -> Path:
        if self._staging is None:
            self.work.mkdir(parents=True, exist_ok=True)
            self._staging = staging_dir(self.work, f"{self.bag_name}.s3.", ".partial")
        if self.tar:  # every file of the bag, as a bag tree the tar is written from
            staged = self._staging / "bag" / safe_path(path)
            staged.parent.mkdir(parents=True, exist_ok=True)
            return staged
        self._count += 1
        return self._staging / f"{self._count}.partial"

    def install_tar(self, expected: Mapping[str, tuple[int, Mapping[str, str]]]) -> None:
        """Rebuild the tar object from the staged tree (every file of the bag, each verified as it was read)."""
        from pipeline.deposit.s3 import replace_tar

        if self._staging is None:
            raise RepairError(f"{self.location}: nothing was staged")
        tree = self._staging / "bag"
        flush_tree(tree)
        replace_tar(self.target, self.bag_name, tree, {p: (n, dict(d)) for p, (n, d) in expected.items()})

    def strays(self, keep: Sequence[str]) -> list[str]:
        """Objects under the bag's prefix that ``keep`` does not name (what a deposit would delete)."""
        from pipeline.deposit.s3 import stray_objects

        return stray_objects(self.target, self.bag_name, keep)

    def install(self, path: str, staged: Path, digests: Mapping[str, str]) -> None:
        from pipeline.deposit.s3 import replace_object

        replace_object(self.target, self.bag_name, safe_path(path), staged, digests)

    def quarantine(self, path: str, dest: Path) -> None:
        from pipeline.deposit.s3 import quarantine_object

        dest.parent.mkdir(parents=True, exist_ok=True)
        quarantine_object(self.target, self.bag_name, safe_path(path), dest)
        fsync_path(dest.parent)

    def clean(self) -> None:
        if self.tar:
            from pipeline.deposit.s3 import remove_tar_repair

            try:
                remove_tar_repair(self.target, self.bag_name)
            except StrongroomError:
                pass  # the store unreachable: the check reports it; a leftover only costs storage until next time
        if self.work.is_dir():
            for leftover in self.work.glob(f"{self.bag_name}.s3.*.partial"):
                shutil.rmtree(leftover, ignore_errors=True)

    def discard(self) -> None:
        self._staging = None
        self.clean()
        _remove_if_empty(self.work)


def _remove_if_empty(directory: Path) -> None:
    try:
        directory.rmdir()
    except OSError:
        pass  # absent, or another repair's work is in it


def open_copy(location: str, bag_name: str, work: Path) -> Copy:
    """The copy of ``bag_name`` at ``location``; UsageError for a location no target can open."""
    if urlsplit(location).scheme == "file":
        return DirectoryCopy(location, bag_name)
    from pipeline.deposit import open_location

    target, held = open_location(location)
    if target.scheme == "ocfl":
        return OcflCopy(location, held, target)
    if target.scheme == "s3":
        return S3Copy(location, held, target, work)
    raise RepairError(f"{location}: repair does not know this kind of copy")
