"""A bag as one tar stream (RFC 8493 §4: serialisation), written and read without temporary files.

The archive holds exactly one top-level directory, named after the bag, and below it every
directory and regular file of the bag.  Entries are written in sorted order with neutral owners,
so the same bag always gives the same member list.  PAX format keeps any UTF-8 name (and CR, LF or
``%`` in names) intact.  Reading hashes each member as it streams past: a tar of any size is
checked with memory bounded by one read block.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, BinaryIO

from pipeline.bag.names import unsafe_reason
from pipeline.deposit.base import Fixity, bag_files, digest_reader
from pipeline.errors import DepositError

TAR_MEDIA_TYPE = "application/x-tar"


def write_tar(bag: Path, out: IO[bytes] | io.RawIOBase, top: str) -> None:
    """Stream ``bag`` into ``out`` as a tar whose single top directory is ``top``."""
    files = bag_files(bag)
    dirs = sorted({str(Path(rel).parent) for rel, _ in files} - {"."})
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info(f"{top}", bag, directory=True))
        for rel in _with_parents(dirs):
            tar.addfile(_info(f"{top}/{rel}", bag / rel, directory=True))
        for rel, path in files:
            with open(path, "rb") as fh:
                tar.addfile(_info(f"{top}/{rel}", path, directory=False), fh)


def tar_fixity(stream: BinaryIO, top: str, algorithms: Sequence[str]) -> Fixity:
    """Fixity of every file in a bag tar read from ``stream``: path in bag -> (size, digests).

    Raises DepositError for a member outside ``top/``, an unsafe name, or a link or special file
    (a Strongroom tar holds none).
    """
    result: Fixity = {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                rel = _member_path(member, top)
                if rel is None:
                    continue
                extracted = tar.extractfile(member)
                if extracted is None:  # pragma: no cover - isfile() members always extract
                    raise DepositError(f"{top}.tar: cannot read member '{member.name}'")
                result[rel] = digest_reader(extracted.read, algorithms)
    except tarfile.TarError as exc:
        raise DepositError(f"{top}.tar: not a readable tar: {exc}") from exc
    return result


def _member_path(member: tarfile.TarInfo, top: str) -> str | None:
    """The bag path of a file member; None for the directories; DepositError for anything else."""
    if member.name.rstrip("/") == top and member.isdir():
        return None
    if not member.name.startswith(top + "/"):
        raise DepositError(f"{top}.tar: member '{member.name}' is outside the bag's directory")
    rel = member.name[len(top) + 1:].rstrip("/") if member.isdir() else member.name[len(top) + 1:]
    reason = unsafe_reason(rel)
    if reason:
        raise DepositError(f"{top}.tar: refusing member '{member.name}' ({reason})")
    if member.isdir():
        return None
    if not member.isfile():
        raise DepositError(f"{top}.tar: member '{member.name}' is a link or special file")
    return rel


def _with_parents(dirs: Sequence[str]) -> list[str]:
    every: set[str] = set()
    for d in dirs:
        parts = d.split("/")
        every.update("/".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(every)


def _info(name: str, path: Path, *, directory: bool) -> tarfile.TarInfo:
    st = os.stat(path, follow_symlinks=False)
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.size = 0 if directory else st.st_size
    info.mode = 0o755 if directory else 0o644
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info
