"""The copy-mode, atomic BagIt 1.0 writer.

bagit-python's ``make_bag`` bags *in place*: it moves the source into ``data/`` and calls
``os.chdir`` (unsafe in Prefect's thread pool), and an interrupted run leaves a half-moved tree.
Strongroom instead:

1. refuses unsafe payload (symlinks, devices, names escaping ``data/``, names colliding after
   NFC and case folding) in a first pass over it, before writing anything;
2. copies each payload file once into a private staging directory
   (``<bags>/.strongroom-staging/<name>~<host>~<pid>~<random>``), computing every manifest
   algorithm in that same single read, checks stated digests and appends each file's manifest
   lines as it is done (payload comes in bag-path order, so the manifests are sorted as written);
3. writes ``bagit.txt`` (1.0), ``bag-info.txt`` (label order kept; Payload-Oxum counted during
   the copy), the caller's tag files and the tag manifests;
4. flushes the staging tree to disk once while the verifiers (Strongroom's validator re-reading
   every staged file with one strong digest, and bagit-python as a second opinion, see
   :mod:`pipeline.bag.verifiers`) read it, and when both are done publishes the bag with one
   ``rename``.

A reader therefore sees either no bag or a whole, verified, durable bag.  Memory does not grow
with the number of files: nothing per file is kept (see :mod:`pipeline.bag.payload`).  Measured
on the 2-core VM, ``strongroom bag`` of 100,000 files of 1 KiB: 354 MB peak RSS before; now the
Strongroom process peaks at 59 MB (its own validator's index included) and bagit-python's second
opinion, in its child process, at 163 MB (see :mod:`pipeline.bag.second_opinion`).  A crash leaves only a
staging directory, which :func:`remove_stale_staging` recognises (dead owner process) and removes.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import socket
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TextIO

from pipeline import SOFTWARE_NAME, __version__
from pipeline.bag.names import unsafe_reason
from pipeline.bag.payload import (
    DirectoryPayload,
    Pairs,
    PayloadCheck,
    PayloadDigest,
    PayloadFile,
    PayloadView,
    add_name,
    check_payload,
    pairs_of,
)
from pipeline.bag.tagfiles import BAGIT_TXT, format_bag_info, format_manifest_line, manifest_name
from pipeline.durable import flush_tree, fsync_path, rename_noreplace, staging_dir
from pipeline.errors import BagInvalidError, BagWriteError, FixityError, PayloadError
from pipeline.findings import Finding, errors
from pipeline.bag.verifiers import Verifier, default_verifiers, reread_algorithms, strongroom_verifier
from pipeline.fixity import DEFAULT_ALGORITHMS, check_algorithms, copy_files

__all__ = [
    "STAGING_DIR", "STRONGROOM_PROFILE_ID", "BagOptions", "DirectoryPayload", "PayloadDigest", "PayloadFile",
    "PayloadView", "Progress", "TagFileMaker", "Verifier", "WrittenBag", "bag_directory", "default_verifiers",
    "reread_algorithms", "remove_stale_staging", "scan_directory", "strongroom_verifier", "write_bag",
]

STAGING_DIR = ".strongroom-staging"
#: The profile Strongroom's ingest bags conform to (schemas/profiles/strongroom-1.0.json).
STRONGROOM_PROFILE_ID = "urn:strongroom:bagit-profile:1.0"

@dataclass(frozen=True)
class WrittenBag:
    """A bag the writer published."""

    path: Path
    #: Read back from the bag's manifests when iterated; ``len()`` costs nothing.
    payload: PayloadView
    tag_files: tuple[str, ...]
    algorithms: tuple[str, ...]
    second_opinion: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def octets(self) -> int:
        return self.payload.octets


#: Builds tag files (bag path -> bytes) once the payload digests are known (a view of the staged
#: bag's manifests: iterate it only when needed, it reads them back).
TagFileMaker = Callable[[PayloadView], Mapping[str, bytes]]
#: Called as payload is copied: (bytes done, files done), cumulative; possibly from copying threads.
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class BagOptions:
    """How to write one bag (everything but the payload and the destination)."""

    algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS
    info: Sequence[tuple[str, str]] = ()
    profile_id: str | None = None
    tag_files: TagFileMaker | None = None
    #: bag path -> {algorithm: hex} that the copy must match (e.g. stated in a record).
    expected: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    verifiers: Sequence[Verifier] = ()
    #: Tag files that can only be written once the bag is verified (e.g. a PREMIS record of that
    #: verification); given the verifiers' notes.  The tag manifests are then rewritten and checked.
    after_verify: Callable[[PayloadView, str], Mapping[str, bytes]] | None = None
    bagging_date: dt.date | None = None
    progress: Progress | None = None


def write_bag(dest: Path, payload: Iterable[PayloadFile], options: BagOptions = BagOptions()) -> WrittenBag:
    """Write a new bag at ``dest`` from copies of ``payload``; publish it only when verified.

    ``payload`` is read twice (a check pass before anything is written, then the copy pass): a
    :class:`DirectoryPayload` walks its directory each time; anything else is taken as a list
    and sorted by bag path.  Raises PayloadError (bad payload, nothing written), FixityError (a
    stated digest differs, nothing published), BagInvalidError (a verifier rejected the bag,
    nothing published) or BagWriteError (the destination exists or cannot be written).
    """
    algorithms = check_algorithms(options.algorithms)
    if isinstance(payload, DirectoryPayload):
        pairs, root = payload.pairs, payload.root
    else:
        pairs, root = pairs_of(list(payload)), Path(".")
    checked = check_payload(pairs, root)
    _check_destination(dest)
    staging = _new_staging(dest)
    try:
        for verify in options.verifiers:  # e.g. bagit-python's child starts while the payload is copied
            prepare = getattr(verify, "prepare", None)
            if prepare is not None:
                prepare(checked.files, checked.octets)
        files, octets = _copy_payload(staging, pairs, checked, algorithms, options)
        staged = PayloadView(staging, algorithms, files, octets)
        tag_names = _write_tag_files(staging, staged, algorithms, options)
        notes = _flush_and_verify(staging, options.verifiers, side_by_side=_side_by_side(files, octets))
        if options.after_verify:
            tag_names = _add_final_tag_files(staging, tag_names, algorithms, options.after_verify(staged, notes))
        _publish(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        for verify in options.verifiers:
            close = getattr(verify, "close", None)
            if close is not None:
                close()
    return WrittenBag(dest, PayloadView(dest, algorithms, files, octets), tuple(tag_names), algorithms, notes)


def bag_directory(source_dir: Path, dest: Path, *, algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
                  info: Sequence[tuple[str, str]] = (), verifiers: Sequence[Verifier] | None = None,
                  progress: Progress | None = None, second_opinion: bool = True) -> WrittenBag:
    """Bag every regular file below ``source_dir`` into a new bag at ``dest`` (copy mode).

    The source is only read.  ``verifiers`` default to Strongroom's validator and bagit-python
    (``second_opinion=False``: Strongroom's re-read of the staged copy only).
    """
    if not source_dir.is_dir():
        raise PayloadError(source_dir, ".", "is not a directory")
    if verifiers is None:
        verifiers = default_verifiers(second_opinion=second_opinion)
    options = BagOptions(algorithms=tuple(algorithms), info=info, verifiers=verifiers, progress=progress)
    return write_bag(dest, scan_directory(source_dir), options)


def scan_directory(source_dir: Path) -> DirectoryPayload:
    """Every file below ``source_dir`` as payload, found lazily (symlinks and special files are
    yielded too, for the writer to refuse by name)."""
    return DirectoryPayload(source_dir)


def remove_stale_staging(bags_dir: Path) -> list[Path]:
    """Remove staging directories left by writers on this host that no longer run; return them."""
    root = bags_dir / STAGING_DIR
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    host = socket.gethostname()
    for entry in root.iterdir():
        parts = entry.name.rsplit("~", 3)
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit():
            continue
        if not _process_alive(int(parts[2])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _check_destination(dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise BagWriteError(f"{dest}: already exists (bags are never overwritten)")
    parent = dest.parent
    if not parent.is_dir():
        raise BagWriteError(f"{parent}: bags directory does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BagWriteError(f"{parent}: bags directory is not writable")


def _new_staging(dest: Path) -> Path:
    root = dest.parent / STAGING_DIR
    try:
        root.mkdir(exist_ok=True)
        prefix = f"{dest.name}~{socket.gethostname()}~{os.getpid()}~"
        return staging_dir(root, prefix)
    except OSError as exc:
        raise BagWriteError(f"{root}: cannot create a staging directory: {exc.strerror}") from exc


def _copy_payload(staging: Path, pairs: Pairs, checked: PayloadCheck, algorithms: tuple[str, ...],
                  options: BagOptions) -> tuple[int, int]:
    """Copy (and hash) every payload file, appending its manifest lines; return (files, octets).

    Several copies are in flight (see ``copy_files``); results arrive in bag-path order, so each
    manifest line is written as its file is done and nothing per file is kept.
    """
    data = staging / "data"
    data.mkdir()
    progress = options.progress
    done = [0, 0]  # bytes copied (counted block by block: a huge file shows progress too), files

    def on_bytes(n: int) -> None:  # called under copy_files' lock
        done[0] += n
        if progress is not None:
            progress(done[0], done[1])

    copies = copy_files(_targets(os.fspath(data), pairs()), algorithms,
                        on_bytes=on_bytes if progress is not None else None)
    cut = len(os.fspath(staging)) + 1
    try:
        with _ManifestWriter(staging, algorithms) as manifests:
            for source, target, size, digests in copies:
                bag_path = os.fspath(target)[cut:]
                stated = options.expected.get(bag_path)
                if stated:
                    _check_expected(Path(source), digests, stated)
                manifests.add(bag_path, size, digests)
                done[1] += 1
                if progress is not None:
                    progress(done[0], done[1])
    except OSError as exc:
        name = os.fsdecode(exc.filename) if exc.filename else ""
        if name and not name.startswith(os.fspath(staging)):  # the source changed since the check pass
            raise PayloadError(Path(name), Path(name).name, f"cannot be copied: {exc.strerror}") from exc
        raise BagWriteError(f"{staging}: cannot write the bag: {exc.strerror}") from exc
    finally:  # on a failure, copies still in flight end before the staging tree is removed
        copies.close()
    if (manifests.files, manifests.names) != (checked.files, checked.names):
        raise PayloadError(checked.root, ".", "changed while it was being bagged (files "
                           "added, removed or renamed): nothing published")
    return manifests.files, manifests.octets


def _targets(data: str, pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """(source, where it goes in staging); each directory is made once, before its first copy."""
    made = data
    for source, rel in pairs:
        target = f"{data}/{rel}"
        parent = target.rpartition("/")[0]
        if parent != made:  # payload comes in bag-path order: a directory's files are together
            os.makedirs(parent, exist_ok=True)
            made = parent
        yield source, target


class _ManifestWriter:
    """Appends each payload file's line to every manifest as it is copied, in bag-path order.

    The manifests are sorted (as Strongroom always wrote them) because the payload arrives
    sorted; a name out of order means the source changed between the two passes.
    """

    def __init__(self, staging: Path, algorithms: tuple[str, ...]) -> None:
        self._staging, self._algorithms = staging, algorithms
        self._files: list[TextIO] = []
        self._last = ""
        self.files = self.octets = self.names = 0

    def __enter__(self) -> _ManifestWriter:
        try:
            for alg in self._algorithms:
                self._files.append(open(self._staging / manifest_name(alg), "x", encoding="utf-8",
                                        newline="", buffering=1 << 20))
        except BaseException:
            self.__exit__()
            raise
        return self

    def add(self, bag_path: str, size: int, digests: Mapping[str, str]) -> None:
        if bag_path <= self._last:
            raise PayloadError(self._staging, bag_path, "came out of order: the source changed while "
                               "it was being bagged")
        self._last = bag_path
        for alg, fh in zip(self._algorithms, self._files):
            fh.write(format_manifest_line(digests[alg], bag_path))
        self.files += 1
        self.octets += size
        self.names = add_name(self.names, bag_path[len("data/"):])

    def __exit__(self, *exc: object) -> None:
        for fh in self._files:
            fh.close()


def _check_expected(source: Path, digests: Mapping[str, str], expected: Mapping[str, str]) -> None:
    from pipeline.fixity import digest_file

    for alg, want in expected.items():
        got = digests.get(alg)
        if got is None:  # a stated algorithm the bag does not use: compute it on its own
            got = digest_file(source, [alg])[1][alg]
        if got != want.lower():
            raise FixityError(source, alg, want.lower(), got)


def _write_tag_files(staging: Path, payload: PayloadView, algorithms: tuple[str, ...],
                     options: BagOptions) -> list[str]:
    """bagit.txt, bag-info.txt, the caller's tag files and the tag manifests (payload manifests
    are already written, line by line, by the copy)."""
    written = ["bagit.txt", "bag-info.txt", *(manifest_name(alg) for alg in algorithms)]
    _write_text(staging / "bagit.txt", BAGIT_TXT)
    _write_text(staging / "bag-info.txt", format_bag_info(_bag_info(payload, options)))
    _write_callers_tag_files(staging, options.tag_files(payload) if options.tag_files else {}, written)
    _write_tag_manifests(staging, written, algorithms)
    return written + [manifest_name(a, tag=True) for a in algorithms]


def _write_callers_tag_files(staging: Path, extra: Mapping[str, bytes], written: list[str]) -> None:
    """Write the caller's tag files into staging and append their names to ``written``.

    A name BagIt reserves, one that is unsafe, or one already in ``written`` is refused.
    """
    for rel, content in extra.items():
        reason = unsafe_reason(rel) or _reserved(rel) or ("already written" if rel in written else None)
        if reason:
            raise BagWriteError(f"tag file '{rel}' cannot be written: {reason}")
        target = staging.joinpath(*PurePosixPath(rel).parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        written.append(rel)


def _reserved(rel: str) -> str | None:
    """Why a caller's tag file would clash with what BagIt reserves, or None."""
    if rel.split("/")[0] == "data":
        return "inside the payload directory"
    if "/" not in rel and (rel in ("bagit.txt", "bag-info.txt", "fetch.txt")
                           or re.match(r"^(tag)?manifest-[a-z0-9]+\.txt$", rel)):
        return "reserved BagIt name"
    return None


def _add_final_tag_files(staging: Path, tag_names: list[str], algorithms: tuple[str, ...],
                         extra: Mapping[str, bytes]) -> list[str]:
    """Add tag files after verification, rewrite the tag manifests and check them by re-reading."""
    names = [n for n in tag_names if not n.startswith("tagmanifest-")]
    _write_callers_tag_files(staging, extra, names)
    for alg in algorithms:
        (staging / manifest_name(alg, tag=True)).unlink()
    _write_tag_manifests(staging, names, algorithms)
    flush_tree(staging)
    _check_tag_manifests(staging, algorithms)
    return names + [manifest_name(a, tag=True) for a in algorithms]


def _check_tag_manifests(staging: Path, algorithms: tuple[str, ...]) -> None:
    from pipeline.bag.tagfiles import iter_manifest
    from pipeline.fixity import digest_file

    for alg in algorithms:
        for rel, want in iter_manifest(staging / manifest_name(alg, tag=True)):
            got = digest_file(staging.joinpath(*PurePosixPath(rel).parts), [alg])[1][alg]
            if got != want:
                raise FixityError(staging / rel, alg, want, got)


def _bag_info(payload: PayloadView, options: BagOptions) -> list[tuple[str, str]]:
    """Caller's labels first, in their order; then what the writer knows, unless already given."""
    info = list(options.info)
    given = {label.lower() for label, _ in info}
    date = options.bagging_date or dt.datetime.now(dt.timezone.utc).date()
    own = {
        "Bagging-Date": date.isoformat(),
        "Payload-Oxum": f"{payload.octets}.{len(payload)}",  # counted during the copy
        "Bag-Software-Agent": f"{SOFTWARE_NAME} {__version__}",
    }
    info.extend((k, v) for k, v in own.items() if k.lower() not in given)
    if options.profile_id and "bagit-profile-identifier" not in given:
        info.append(("BagIt-Profile-Identifier", options.profile_id))
    return info


def _write_tag_manifests(staging: Path, tag_names: Sequence[str], algorithms: tuple[str, ...]) -> None:
    from pipeline.fixity import digest_file

    digests = {name: digest_file(staging / name, algorithms)[1] for name in tag_names}
    for alg in algorithms:
        lines = "".join(format_manifest_line(digests[n][alg], n) for n in sorted(tag_names))
        _write_text(staging / manifest_name(alg, tag=True), lines)


def _write_text(path: Path, text: str) -> None:
    with open(path, "x", encoding="utf-8", newline="") as fh:
        fh.write(text)


#: The verifiers run side by side only for payloads of large files, and not too many of them.
_SIDE_BY_SIDE_FILES = 2_000
_SIDE_BY_SIDE_MEAN_SIZE = 256 * 1024


#: From CHILD_PROCESS_FILES files bagit-python verifies in its own process; up to this many
#: files the two verifiers then run at once (beyond, their indexes would add up system-wide).
_SIDE_BY_SIDE_CHILD_FILES = 20_000


def _side_by_side(files: int, octets: int) -> bool:
    """True when running the verifiers at once pays: hashing-bound work, bounded memory.

    Measured here: 4 files of 256 MiB verify 10-15% faster side by side; 10,000 files of 8 KiB
    25% slower while both were per-file Python in this process contending for the GIL.  Once
    bagit-python runs in a child process (from CHILD_PROCESS_FILES files) there is no GIL to share:
    10,000 x 4 KiB verified in 2.46 s side by side vs 2.91 s one after the other (median of 4
    interleaved runs each; whole `strongroom bag`: Strongroom's process 41 MB and the child
    41 MB peak RSS, at once).
    """
    from pipeline.bag.second_opinion import CHILD_PROCESS_FILES

    if CHILD_PROCESS_FILES <= files <= _SIDE_BY_SIDE_CHILD_FILES:
        return True
    if not files or files > _SIDE_BY_SIDE_FILES:
        return False
    return octets / files >= _SIDE_BY_SIDE_MEAN_SIZE


def _flush_and_verify(staging: Path, verifiers: Sequence[Verifier], *, side_by_side: bool) -> str:
    """Flush the staging tree to disk while the verifiers read it; return when both are done.

    The verifiers read the page cache, which the flush does not change, so the disk's write-back
    (0.4-0.6 s for 1 GiB here) overlaps their hashing instead of preceding it.  Publication still
    waits for both: a bag appears only once durable *and* verified.  A verifier's rejection is
    raised after the flush has finished, so the staging tree is never removed under it.
    """
    with ThreadPoolExecutor(1, thread_name_prefix="strongroom-flush") as flusher:
        flushed = flusher.submit(flush_tree, staging)
        try:
            notes = _verify(staging, verifiers, side_by_side=side_by_side)
        finally:
            try:
                flushed.result()
            except OSError as exc:  # the disk refused the bag: nothing is published
                raise BagWriteError(f"{staging}: cannot flush the bag to disk: {exc.strerror or exc}") from exc
    return notes


def _verify(staging: Path, verifiers: Sequence[Verifier], *, side_by_side: bool = True) -> str:
    """Run every verifier; the first (in order) with error findings stops the publication.

    ``side_by_side`` (for large files): each verifier re-reads the whole bag and bagit-python
    hashes on one core only, so together they keep both cores of a small machine busy.  With many
    small files the work is per-file Python (the GIL: slower at once) and each verifier's index of
    the files grows with their number (bagit-python about 1.3 KB a file): one after the other,
    their memory peaks do not add up.  All of them finish before this returns or raises.
    """
    if side_by_side and len(verifiers) > 1:
        with ThreadPoolExecutor(len(verifiers), thread_name_prefix="strongroom-verify") as pool:
            futures = [pool.submit(_findings_of, verify, staging) for verify in verifiers]
            results = [f.result() for f in futures]
    else:
        results = [_findings_of(verify, staging) for verify in verifiers]
    notes: list[str] = []
    for findings in results:
        bad = errors(findings)
        if bad:
            raise BagInvalidError(staging, bad)
        notes.extend(f.message for f in findings if f.severity == "info")
    return "; ".join(notes)


def _findings_of(verify: Verifier, staging: Path) -> list[Finding]:
    return list(verify(staging))


def _publish(staging: Path, dest: Path) -> None:
    """One rename makes the whole bag visible; the parent directory is synced after it."""
    try:
        rename_noreplace(staging, dest)
    except FileExistsError:
        raise BagWriteError(f"{dest}: already exists (bags are never overwritten)") from None
    except OSError as exc:
        raise BagWriteError(f"{dest}: cannot publish the bag: {exc.strerror}") from exc
    fsync_path(dest.parent)

