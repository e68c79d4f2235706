"""Durability and atomic publication: what the bag writer and the deposit targets share.

A bag or a deposited copy is built under a private staging name, made durable, and published with
one rename that never replaces anything.  These helpers are the pieces of that sequence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def fsync_path(path: Path) -> None:
    """fsync one file or directory."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def flush_tree(root: Path) -> None:
    """Make everything below ``root`` durable: one ``syncfs``, else an fsync per file and directory."""
    fd = os.open(root, os.O_RDONLY)
    try:
        if _syncfs is not None and _syncfs(fd) == 0:
            return
    finally:
        os.close(fd)
    for base, dirs, files in os.walk(root):
        for name in files + dirs:
            fsync_path(Path(base) / name)
    fsync_path(root)


def staging_dir(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new, uniquely named directory in ``parent`` with the mode a plain ``mkdir`` would give.

    ``tempfile.mkdtemp`` makes 0700 directories; once renamed into place a bag or a copy must be
    readable as the user's umask allows, like any directory they create.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(path, 0o777 & ~_umask())
    return path


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``, raising FileExistsError if ``dst`` exists in any form.

    ``os.rename`` silently replaces an empty directory at ``dst``; ``renameat2(RENAME_NOREPLACE)``
    refuses any existing ``dst``, closing the window between an existence check and the rename.
    """
    if _renameat2 is not None:
        at_fdcwd, rename_noreplace_flag = -100, 1
        if _renameat2(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), rename_noreplace_flag) == 0:
            return
        err = ctypes.get_errno()
        if err == 17:  # EEXIST
            raise FileExistsError(err, os.strerror(err), str(dst))
        if err not in (22, 38):  # EINVAL / ENOSYS: the filesystem or kernel lacks it; fall back
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(17, os.strerror(17), str(dst))
    os.rename(src, dst)


def write_new_file(path: Path, data: bytes) -> None:
    """Publish ``data`` as the new file ``path``: written beside it, fsynced, renamed into place.

    Never replaces anything (FileExistsError if ``path`` exists in any form, even when it appears
    while the data is written); a reader sees no file or the whole file, also after a crash.
    """
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; a record is an ordinary file
        rename_noreplace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_path(path.parent)


def _umask() -> int:
    # os.umask can only be read by setting it, which races with other threads; Linux shows it.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            found = re.search(r"^Umask:\s+([0-7]+)", fh.read(), re.M)
        if found:
            return int(found.group(1), 8)
    except OSError:
        pass
    return 0o022


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` from ``offset`` to disk; no wait.

    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` (not in Python's ``os``): the pages start their way
    to the disk now instead of waiting in the page cache until a tenth of memory is dirty
    (``vm.dirty_background_ratio``), and nothing is waited for - no journal commit, unlike an
    ``fsync`` (which, run beside the copy of a 1 GiB payload, slowed the copy more than it saved:
    benchmarks/RESULTS.md).  It makes nothing durable: the bag's ``syncfs`` (:func:`flush_tree`)
    still does that before publication, with less left to write.  Where the call is missing or
    refused, nothing happens.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, ctypes.c_int64(offset), ctypes.c_int64(length), _SYNC_FILE_RANGE_WRITE)


def _load_libc(symbol: str) -> Any:
    name = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(name, use_errno=True), symbol, None) if name else None


# os.syncfs does not exist in Python 3.11/3.12; libc's syncfs flushes the whole filesystem in one
# call, far cheaper than one fsync per file on trees of many small files.
_syncfs: Callable[[int], int] | None = _load_libc("syncfs")
_renameat2: Any = _load_libc("renameat2")
_sync_file_range: Any = _load_libc("sync_file_range")
_SYNC_FILE_RANGE_WRITE = 2
