"""Streaming digests: every algorithm computed in one read of the bytes.

Files are never read whole into memory: they are read in ``CHUNK``-sized blocks and each block is
fed to every hasher.  ``copy_file`` hashes what it copies, so the digest of the copy is the digest
of the bytes read from the source, in a single pass.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

from pipeline.errors import UsageError

#: RFC 8493 §2.4: implementations MUST support sha256 and sha512 and SHOULD default to sha512.
DEFAULT_ALGORITHMS: tuple[str, ...] = ("sha512", "sha256")
#: What Strongroom writes and verifies; md5 and sha1 only for compatibility with older bags.
SUPPORTED_ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha224", "sha256", "sha384", "sha512")
#: Large blocks keep the per-call overhead low and let hashlib release the GIL.
CHUNK = 1 << 20

Digests = dict[str, str]


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


def _hashers(algorithms: Sequence[str]) -> list[tuple[str, "hashlib._Hash"]]:
    return [(alg, hashlib.new(alg)) for alg in algorithms]


def digest_stream(stream: BinaryIO, algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Read ``stream`` to its end once; return (octets read, {algorithm: hexdigest})."""
    hashers = _hashers(algorithms)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    while n := stream.readinto(view):  # type: ignore[attr-defined]
        block = view[:n]
        for _, h in hashers:
            h.update(block)
        size += n
    return size, {alg: h.hexdigest() for alg, h in hashers}


def digest_file(path: Path, algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Digest one file without following a final symlink."""
    with _open_nofollow(path) as fh:
        return digest_stream(fh, algorithms)


def copy_file(source: Path, target: Path, algorithms: Sequence[str]) -> tuple[int, Digests]:
    """Copy ``source`` to a new file ``target``, hashing the bytes as they pass; one read.

    ``target`` must not exist.  The copy is not fsynced here: the bag writer flushes the whole
    staging tree once before it publishes (one sync instead of one per file).
    """
    hashers = _hashers(algorithms)
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    with _open_nofollow(source) as src, open(target, "xb") as dst:
        while n := src.readinto(view):  # type: ignore[attr-defined]
            block = view[:n]
            for _, h in hashers:
                h.update(block)
            dst.write(block)
            size += n
    return size, {alg: h.hexdigest() for alg, h in hashers}


def _open_nofollow(path: Path) -> BinaryIO:
    """Open for reading, refusing a symlink at the last component (O_NOFOLLOW)."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb", buffering=0)
