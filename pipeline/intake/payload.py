"""The payload of a new record: which files, their digests and their stated formats.

Payload paths are relative to the record's directory and may not leave it, pass through a link or
name anything but regular files - the rules ``ingest`` applies (:func:`pipeline.records.payload_problem`),
checked here before a record is written so that no record is written that ingest would refuse.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.fixity import digest_files
from pipeline.intake.formats import stated_format
from pipeline.records import is_record_file, payload_problem

#: The digests a new record states: those of the bag manifests, so ingest checks every file
#: against the record before anything is published.
RECORD_ALGORITHMS = ("sha256", "sha512")


def relative_to(root: Path, target: Path) -> str | None:
    """``target`` as a '/'-separated path below ``root`` ("" for root itself), or None if outside."""
    rel = os.path.relpath(os.path.abspath(target), os.path.abspath(root))
    if rel == ".":
        return ""
    if rel == ".." or rel.startswith(".." + os.sep) or os.path.isabs(rel):
        return None
    return Path(rel).as_posix()


def payload_paths(root: Path, targets: Sequence[Path]) -> tuple[list[str], list[str]]:
    """The payload paths of the files and folders ``targets`` for a record in ``root``.

    Folders contribute every file below them, in sorted order, except record files; a record
    below a folder is a problem (its files are already that record's).  Returns the paths and
    the problems, one line each naming the file.
    """
    paths: list[str] = []
    problems: list[str] = []
    for target in targets:
        rel = relative_to(root, target)
        if rel is None:
            problems.append(f"{target}: outside the record's directory {root} "
                            "(a payload may not leave it)")
        elif _is_dir(target):
            problem = folder_problem(root, rel)
            if problem:
                problems.append(f"{target}: {problem}")
            else:
                _walk(root, target, paths, problems)
        elif is_record_file(target.name):
            problems.append(f"{target}: a record, not a payload file")
        else:
            problem = payload_problem(root, rel)
            if problem:
                problems.append(f"{target}: {problem}")
            else:
                paths.append(rel)
    return list(dict.fromkeys(paths)), problems


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def folder_problem(root: Path, rel: str) -> str | None:
    """Why the folder ``rel`` below ``root`` cannot hold payload (reached through a link...), or None."""
    current = root
    for part in [p for p in rel.split("/") if p]:
        current = current / part
        if current.is_symlink():
            return "is reached through a symlink (refused: the archive stores files, not links)"
    if not current.resolve().is_relative_to(root.resolve()):
        return "escapes the record's directory"
    return None


def _walk(root: Path, folder: Path, paths: list[str], problems: list[str]) -> None:
    found: list[str] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in [d for d in dirs if (Path(top) / d).is_symlink()]:
            problems.append(f"{Path(top) / name}: is a symlink (refused: the archive stores files, "
                            "not links)")
            dirs.remove(name)
        for name in sorted(files):
            path = Path(top) / name
            if is_record_file(name):
                problems.append(f"{path}: a record already lies below {folder} (its files are "
                                "that record's: name the other files instead)")
                continue
            rel = relative_to(root, path)
            problem = payload_problem(root, rel) if rel else "outside the record's directory"
            if problem:
                problems.append(f"{path}: {problem}")
            elif rel:
                found.append(rel)
    if not found and not problems:
        problems.append(f"{folder}: holds no files")
    paths.extend(found)


def describe_payload(root: Path, paths: Sequence[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """Each payload file as a record states it (path, stated format, digests); and any problems."""
    entries: list[dict[str, Any]] = []
    problems: list[str] = []
    results = digest_files([root / p for p in paths], RECORD_ALGORITHMS)
    for rel, result in zip(paths, results):
        if result.error is not None or result.digests is None:
            reason = result.error.strerror if result.error else "unreadable"
            problems.append(f"{root / rel}: cannot be read ({reason})")
            continue
        entry: dict[str, Any] = {"path": rel}
        media_type = stated_format(root / rel)
        if media_type:
            entry["format"] = media_type
        entry["checksums"] = dict(result.digests)
        entries.append(entry)
    return entries, problems
