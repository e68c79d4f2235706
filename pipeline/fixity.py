"""Streaming digests: every algorithm computed in one read of the bytes.

Files are never read whole into memory: they are read in ``CHUNK``-sized blocks and each block is
fed to every hasher.  ``copy_file`` hashes what it copies, so the digest of the copy is the digest
of the bytes read from the source, in a single pass.

Speed, measured on Strongroom's 2-core reference machine (``benchmarks/RESULTS.md``):

* small files dominate by per-file overhead, so each thread reuses two read buffers instead of
  allocating a fresh 1 MiB block per file (3x faster on 4 KiB files), and uses plain file
  descriptors rather than Python file objects;
* a stream longer than one block has each algorithm hashed on its own thread (hashlib releases
  the GIL on large buffers) while the calling thread reads the next block and writes the copy;
* :func:`digest_files` and :func:`copy_files` hash several large files at once, so unequal
  algorithms (sha512 is 3x slower than sha256 with SHA extensions) still keep every core busy.
  Small files read for a digest stay on the calling thread: with them, threads only fight over
  the GIL.  Small files *copied* go to the pool too: creating a file is a wait in the kernel
  (about 0.5-1 ms on ext4 here), and eight creations in flight run three times faster.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Generic, TypeVar

from pipeline.errors import UsageError

#: RFC 8493 §2.4: implementations MUST support sha256 and sha512 and SHOULD default to sha512.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("sha512", "sha256")
#: What Strongroom writes and verifies; md5 and sha1 only for compatibility with older bags.
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
#: Large blocks keep the per-call overhead low and let hashlib release the GIL.
CHUNK = 1 << 20
#: Files at least this large are worth a thread of their own in digest_files.
PARALLEL_THRESHOLD = 4 * CHUNK
#: Copies in flight in copy_files: file creation waits in the kernel rather than on a core.
COPY_WORKERS = 8

Digests = dict[str, str]
#: A file path as the os functions take it (the bag writer passes plain strings: cheaper per file).
StrPath = str | os.PathLike[str]
_P = TypeVar("_P", str, Path)
_T = TypeVar("_T")
_R = TypeVar("_R")
_local = threading.local()


def check_algorithms(algorithms: Iterable[str]) -> tuple[str, ...]:
    """Normalise BagIt algorithm names (lowercase, de-duplicated, order kept) or raise UsageError."""
    seen: list[str] = []
    for name in algorithms:
        alg = name.strip().lower().replace("-", "")
        if alg not in SUPPORTED_ALGORITHMS:
            raise UsageError(
                f"unsupported checksum algorithm {name!r} (use one of {', '.join(SUPPORTED_ALGORITHMS)})"
            )
        if alg not in seen:
            seen.append(alg)
    if not seen:
        raise UsageError("at least one checksum algorithm is needed")
    return tuple(seen)


def digest_stream(stream: BinaryIO, algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Read ``stream`` to its end once; return (octets read, {algorithm: hexdigest})."""
    hashers = _hashers(algorithms)
    size = _pump(stream.readinto, hashers, None)  # type: ignore[attr-defined]
    return size, {alg: h.hexdigest() for alg, h in hashers}


def digest_file(path: Path, algorithms: Sequence[str], *,
                on_bytes: Callable[[int], None] | None = None) -> tuple[int, Digests]:
    """Digest one file without following a final symlink.

    ``on_bytes(n)`` is called after each block read, with that block's size (for progress bars).
    """
    hashers = _hashers(algorithms)
    fd = _open_nofollow_fd(path)
    try:
        size = _pump(_fd_reader(fd, on_bytes), hashers, None)
    finally:
        os.close(fd)
    return size, {alg: h.hexdigest() for alg, h in hashers}


def copy_file(source: StrPath, target: StrPath, algorithms: Sequence[str], *,
              on_bytes: Callable[[int], None] | None = None) -> tuple[int, Digests]:
    """Copy ``source`` to a new file ``target``, hashing the bytes as they pass; one read.

    ``target`` must not exist (FileExistsError); a symlinked ``source`` is refused (OSError
    ELOOP), and so is anything but a regular file (OSError EINVAL: a FIFO put in place of a
    checked file is never waited on).  The copy is not fsynced here: the bag writer flushes the
    whole staging tree once before it publishes (one sync instead of one per file).
    """
    hashers = _hashers(algorithms)
    src = _open_nofollow_fd(source, nonblock=True)
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(source))
        dst = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            size = _pump(_fd_reader(src, on_bytes), hashers, _fd_writer(dst, writeback=True))
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return size, {alg: h.hexdigest() for alg, h in hashers}


def digest_copy(readinto: Callable[[memoryview], int], write: Callable[[memoryview], None],
                algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Hash everything ``readinto`` fills (every algorithm at once) and hand each block to ``write``.

    The stream form of :func:`copy_file`, for sources that are no local file (an S3 body, an OCFL
    content file): one read, the hashers on their own threads while the block is written.
    """
    hashers = _hashers(algorithms)
    size = _pump(readinto, hashers, write)
    return size, {alg: h.hexdigest() for alg, h in hashers}


def raw_digests(path: str, algorithms: Sequence[str]) -> tuple[int, list[bytes]]:
    """(octets, raw digests in ``algorithms`` order) of a small file, all on this thread.

    For files under one block, where per-file overhead is the whole cost: a plain descriptor
    (final symlink refused), this thread's reused buffer, no thread handoff, no hex.  Measured on
    10,000 files of 4 KiB (sha512 + sha256): 0.36-0.44 s against 0.51-0.68 s through
    :func:`digest_file`.  It reads to the end whatever the size, so a file that grew is still
    hashed whole.
    """
    hashers = [getattr(hashlib, alg)() for alg in algorithms]
    buffer = _buffers()[0]
    target = [buffer]
    fd = _open_nofollow_fd(path)
    try:
        total = 0
        while n := os.readv(fd, target):
            block = buffer[:n]
            for h in hashers:
                h.update(block)
            total += n
    finally:
        os.close(fd)
    return total, [h.digest() for h in hashers]


@dataclass(frozen=True)
class FileDigest:
    """The outcome of digesting (or copying) one file in :func:`digest_files` / :func:`copy_files`."""

    path: Path
    size: int = 0
    digests: Digests | None = None
    #: Set when the file could not be read (missing, a symlink, unreadable...).
    error: OSError | None = None


def digest_files(paths: Iterable[Path], algorithms: Sequence[str], *,
                 workers: int | None = None) -> Generator[FileDigest, None, None]:
    """Digest many files, yielding results in input order; large files are hashed concurrently.

    At most a few results are held at a time (memory does not grow with the number of files).
    """
    algs = tuple(algorithms)
    return digest_each(((path, algs) for path in paths), workers=workers)


def digest_each(jobs: Iterable[tuple[Path, Sequence[str]]], *, on_bytes: Callable[[int], None] | None = None,
                workers: int | None = None) -> Generator[FileDigest, None, None]:
    """Like :func:`digest_files`, each file with its own algorithms (a bag's manifests may differ).

    ``on_bytes(n)`` is called as blocks are read, from one thread at a time (a lock serialises
    the calls), so a plain progress counter needs no locking of its own.
    """
    report = _serialised(on_bytes)

    def one(job: tuple[Path, Sequence[str]]) -> FileDigest:
        try:
            size, digests = digest_file(job[0], job[1], on_bytes=report)
        except OSError as exc:
            return FileDigest(job[0], error=exc)
        return FileDigest(job[0], size, digests)

    return _ordered_map(one, jobs, workers or _cores(), lambda job: _size_of(job[0]) < PARALLEL_THRESHOLD)


def copy_files(pairs: Iterable[tuple[_P, _P]], algorithms: Sequence[str], *,
               on_bytes: Callable[[int], None] | None = None,
               workers: int | None = None) -> Generator[tuple[_P, _P, int, Digests], None, None]:
    """``copy_file`` over (source, target) pairs, in input order; large files copied concurrently.

    ``on_bytes(n)`` is called as blocks are read, one call at a time (see :func:`digest_each`).
    Errors are raised (the first one in input order), as ``copy_file`` raises them.  Close the
    generator (or exhaust it) before removing the targets: closing waits for copies in flight.
    """
    algs = tuple(algorithms)
    report = _serialised(on_bytes)

    def one(pair: tuple[_P, _P]) -> tuple[_P, _P, int, Digests]:
        size, digests = copy_file(pair[0], pair[1], algs, on_bytes=report)
        return pair[0], pair[1], size, digests

    return _ordered_map(one, pairs, workers or COPY_WORKERS, lambda pair: False)


def _serialised(callback: Callable[[int], None] | None) -> Callable[[int], None] | None:
    """``callback`` behind a lock: pool threads call it, callers need not be thread-safe."""
    if callback is None:
        return None
    lock = threading.Lock()

    def call(n: int) -> None:
        with lock:
            callback(n)

    return call


def _cores() -> int:
    return max(2, os.cpu_count() or 1)


def _ordered_map(work: Callable[[_T], _R], items: Iterable[_T], count: int,
                 inline: Callable[[_T], bool]) -> Generator[_R, None, None]:
    """``map(work, items)`` in order, on a pool of ``count`` threads except items ``inline`` says.

    Inline items run on the calling thread (for small reads, threads only add GIL contention);
    the window of pending results is bounded so memory stays flat however many items there are.
    """
    window: deque[Future[_R] | _Ready[_R]] = deque()
    with ThreadPoolExecutor(count, thread_name_prefix="strongroom-fixity") as pool:
        try:
            for item in items:
                if inline(item):
                    window.append(_Ready(work, item))
                else:
                    window.append(pool.submit(work, item))
                while len(window) > 2 * count or (window and window[0].done()):
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            for future in window:  # a consumer that stops early must not wait for the rest
                future.cancel()


class _Ready(Generic[_R]):
    """An already computed result with the parts of Future's face that ``_ordered_map`` uses.

    A real Future costs a lock and a condition: a quarter of the time of hashing a 4 KiB file.
    """

    def __init__(self, work: Callable[[_T], _R], item: _T) -> None:
        self._error: BaseException | None = None
        try:
            self._value: _R | None = work(item)
        except Exception as exc:  # delivered in order, like a pool future's exception
            self._value, self._error = None, exc

    def done(self) -> bool:
        return True

    def cancel(self) -> bool:
        return False

    def result(self) -> _R:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


def _size_of(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0  # the work itself reports the error, in order


def _hashers(algorithms: Sequence[str]) -> list[tuple[str, "hashlib._Hash"]]:
    # hashlib.sha512() is 2.5x cheaper than hashlib.new("sha512"): it matters per small file.
    return [(alg, getattr(hashlib, alg)()) for alg in algorithms]


def _buffers() -> tuple[memoryview, memoryview]:
    """Two CHUNK buffers private to this thread, reused across files (allocation is costly)."""
    pair: tuple[memoryview, memoryview] | None = getattr(_local, "buffers", None)
    if pair is None:
        pair = (memoryview(bytearray(CHUNK)), memoryview(bytearray(CHUNK)))
        _local.buffers = pair
    return pair


def _pump(read: Callable[[memoryview], int], hashers: list[tuple[str, "hashlib._Hash"]],
          write: Callable[[memoryview], None] | None) -> int:
    """Feed everything ``read`` yields to every hasher (and to ``write``); return the octets.

    The first block is handled on this thread; from the second on, with more than one algorithm,
    the rest goes to :func:`_pump_threaded`.
    """
    first, second = _buffers()
    n = read(first)
    if not n:
        return 0
    block = first[:n]
    for _, h in hashers:
        h.update(block)
    if write is not None:
        write(block)
    if len(hashers) == 1:
        size = n
        while n := read(first):
            block = first[:n]
            hashers[0][1].update(block)
            if write is not None:
                write(block)
            size += n
        return size
    return n + _pump_threaded(read, hashers, write, (second, first))


def _pump_threaded(read: Callable[[memoryview], int], hashers: list[tuple[str, "hashlib._Hash"]],
                   write: Callable[[memoryview], None] | None, buffers: tuple[memoryview, memoryview]) -> int:
    """One thread per algorithm; this thread writes the block and reads the next one meanwhile."""
    size = 0
    i = 0
    n = read(buffers[i])
    if not n:
        return 0
    with ThreadPoolExecutor(len(hashers), thread_name_prefix="strongroom-hash") as pool:
        while n:
            block = buffers[i][:n]
            futures = [pool.submit(h.update, block) for _, h in hashers]
            try:
                if write is not None:
                    write(block)
                i ^= 1
                following = read(buffers[i])
            finally:  # never let the next read overwrite a block a hasher still reads
                for future in futures:
                    future.result()
            size += n
            n = following
    return size


def _fd_reader(fd: int, on_bytes: Callable[[int], None] | None = None) -> Callable[[memoryview], int]:
    if on_bytes is None:
        def read(view: memoryview) -> int:
            return os.readv(fd, [view])
    else:
        def read(view: memoryview) -> int:
            n = os.readv(fd, [view])
            if n:
                on_bytes(n)
            return n

    return read


#: A copy asks the kernel to start writing each WRITEBACK_STEP bytes to disk as they are written.
WRITEBACK_STEP = 8 << 20


def _fd_writer(fd: int, *, writeback: bool = False) -> Callable[[memoryview], None]:
    """Write each block whole to ``fd``; with ``writeback``, start each written step on its way to disk.

    A large copy's pages then go to the disk while the rest is copied and hashed instead of all
    at the bag's final flush (see :func:`pipeline.durable.start_writeback`: nothing is waited for).
    """
    if not writeback:
        def write(view: memoryview) -> None:
            while view:
                view = view[os.write(fd, view):]

        return write

    from pipeline.durable import start_writeback

    written = [0, 0]  # bytes written, bytes handed to the write-back

    def write_stepped(view: memoryview) -> None:
        n = len(view)
        while view:
            view = view[os.write(fd, view):]
        written[0] += n
        if written[0] - written[1] >= WRITEBACK_STEP:
            start_writeback(fd, written[1], written[0] - written[1])
            written[1] = written[0]

    return write_stepped


def _open_nofollow_fd(path: StrPath, *, nonblock: bool = False) -> int:
    """Open for reading, refusing a symlink at the last component (O_NOFOLLOW).

    ``nonblock``: opening a FIFO returns at once instead of waiting for a writer (the caller
    then refuses it); on a regular file O_NONBLOCK changes nothing.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | getattr(os, "O_NOFOLLOW", 0)
    return os.open(path, flags | (os.O_NONBLOCK if nonblock else 0))

