"""``strongroom records new``: a record for payload files or a folder, ready to check and ingest.

The record states what can be known from the files (their paths, digests and formats) and what the
archivist said on the command line; a required field nobody gave is written as a
``<TODO: ...>`` value, which validation rejects naming the field, so ``records check`` lists
exactly what is left to fill in.  A record is never overwritten.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from pipeline.durable import write_new_file
from pipeline.errors import IntakeError, UsageError
from pipeline.intake.payload import describe_payload, payload_paths
from pipeline.intake.rights import statement_for
from pipeline.models import Record
from pipeline.records import RECORD_NAME, RECORD_SUFFIX, dump_yaml, field_path, is_record_file

#: What a required field holds until somebody fills it in (``pipeline.models.TODO_MARKER``).
TODO = {
    "title": "<TODO: the item's title>",
    "statement": "<TODO: the rights statement, in words>",
    "uri": "<TODO: a rights URI, e.g. http://rightsstatements.org/vocab/CNE/1.0/>",
    "source_organization": "<TODO: the organisation that supplied the item>",
}


@dataclass(frozen=True)
class RecordFields:
    """What the archivist states about a new item (each optional; repeatable ones are tuples)."""

    id: str | None = None
    title: str | None = None
    creator: tuple[str, ...] = ()
    date: str | None = None
    language: tuple[str, ...] = ()
    publisher: tuple[str, ...] = ()
    rights_uri: str | None = None
    rights_statement: str | None = None
    source_organization: str | None = None


@dataclass(frozen=True)
class NewRecord:
    """A record written: where, its id, and the fields still to fill in (``dc.title``...)."""

    path: Path
    id: str
    payload_count: int
    todo: tuple[str, ...] = field(default=())


# -- ids ----------------------------------------------------------------------------------------


def slug_id(name: str) -> str | None:
    """A valid record id from a file or folder name (``Scan 01 (é).tif`` -> ``Scan-01-e``).

    The extension is dropped, letters are reduced to ASCII, every run of other characters becomes
    one ``-``; None when nothing usable is left.  (The id alphabet is narrower than a general
    slug's and keeps ``.`` and ``_``: a few lines here rather than a dependency.)
    """
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    ascii_name = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name)
    slug = re.sub(r"^[^A-Za-z0-9]+", "", slug)[:100].rstrip("-.")
    return slug or None


# -- record data --------------------------------------------------------------------------------


def record_data(record_id: str, fields: RecordFields, payload: list[dict[str, Any]]) -> dict[str, Any]:
    """The record as plain data, ``<TODO>`` where a required value is missing."""
    dc: dict[str, Any] = {"title": fields.title or TODO["title"]}
    given: dict[str, tuple[str, ...]] = {
        "creator": fields.creator, "publisher": fields.publisher,
        "date": (fields.date,) if fields.date else (), "language": fields.language}
    for name, values in given.items():
        if values:
            dc[name] = one_or_list(list(values))
    add_dc_formats(dc, payload)
    uri = fields.rights_uri
    statement = fields.rights_statement or (statement_for(uri) if uri else None)
    return {
        "id": record_id,
        "dc": dc,
        "rights": {"statement": statement or TODO["statement"], "uri": uri or TODO["uri"]},
        "source_organization": fields.source_organization or TODO["source_organization"],
        "payload": payload,
    }


def add_dc_formats(dc: dict[str, Any], payload: list[dict[str, Any]]) -> None:
    """``dc.format``, unless given: the payload's media types (without parameters), each once."""
    formats = list(dict.fromkeys(e["format"].split(";")[0].strip() for e in payload if "format" in e))
    if formats and "format" not in dc:
        dc["format"] = one_or_list(formats)


def one_or_list(values: list[str]) -> str | list[str]:
    """One value is written as itself, several as a list: the record reads as a person writes it."""
    return values[0] if len(values) == 1 else values


def validation_problems(data: dict[str, Any]) -> tuple[list[str], list[tuple[tuple[Any, ...], str]]]:
    """The fields still marked ``<TODO>``, and every other problem as (location, message)."""
    try:
        Record.model_validate(data)
    except ValidationError as exc:
        todo: list[str] = []
        other: list[tuple[tuple[Any, ...], str]] = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if err["type"] == "todo":
                todo.append(field_name(loc))
            elif err["type"] == "consistency":
                other.extend(((), line) for line in str(err["ctx"]["problems"]).splitlines())
            else:
                other.append((loc, err["msg"]))
        return todo, other
    return [], []


def field_name(loc: tuple[Any, ...]) -> str:
    """``('dc', 'title', 0, 'value')`` -> ``dc.title``: the field, as the archivist knows it."""
    while loc and (loc[-1] == "value" or isinstance(loc[-1], int)):
        loc = loc[:-1]
    return field_path(loc)


def render(data: dict[str, Any], header: Sequence[str]) -> str:
    """The record text: a header comment, then each top-level field, a blank line between."""
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header)
    return comment + "\n".join(dump_yaml({key: value}) for key, value in data.items())


def publish(path: Path, text: str) -> None:
    """Write a new record file durably; an existing one (of any kind) is never replaced."""
    try:
        write_new_file(path, text.encode("utf-8"))
    except FileExistsError:
        raise IntakeError([f"{path}: a record already exists here (never overwritten)"]) from None
    except OSError as exc:
        raise IntakeError([f"{path}: cannot be written ({exc.strerror or exc})"]) from None


def todo_header(todo: Sequence[str]) -> list[str]:
    """Header lines naming what is still to fill in (none when the record is complete)."""
    if not todo:
        return []
    return [f"Still to fill in: {', '.join(todo)}.",
            "Replace each '<TODO: ...>' value; `strongroom records check` lists what is left."]


# -- records new --------------------------------------------------------------------------------

#: Which option gave the value at a record location (for one-line usage errors).
_OPTIONS = {"id": "--id", "title": "--title", "creator": "--creator", "date": "--date",
            "language": "--language", "publisher": "--publisher", "uri": "--rights-uri",
            "statement": "--rights-statement", "source_organization": "--source-organization"}


def record_location(targets: Sequence[Path], out: Path | None) -> Path:
    """Where the record goes: ``--out``; a folder's ``record.yaml``; or ``<file>.record.yaml``."""
    if out is not None:
        if not is_record_file(out.name):
            raise UsageError(f"{out}: name it '{RECORD_NAME}' or 'NAME{RECORD_SUFFIX}' "
                             "(the names ingest --records looks for)")
        if not out.parent.is_dir():
            raise UsageError(f"{out.parent}: no such directory")
        return out
    if len(targets) != 1:
        raise UsageError("several payload paths: say where the record goes with --out "
                         "DIR/record.yaml (a directory holding them all)")
    target = targets[0]
    if target.is_dir():
        return target / RECORD_NAME
    return target.with_name(target.name + RECORD_SUFFIX)


def new_record(targets: Sequence[Path], fields: RecordFields, *, out: Path | None = None) -> NewRecord:
    """Write a record for ``targets`` (files or folders); raise IntakeError/UsageError if not."""
    for target in targets:
        if target.is_symlink():
            raise IntakeError([f"{target}: is a symlink (refused: the archive stores files, not links)"])
        if not target.exists():
            raise UsageError(f"{target}: no such file or directory")
    path = record_location(targets, out)
    if path.exists() or path.is_symlink():
        raise IntakeError([f"{path}: a record already exists here (never overwritten)"])
    record_id = fields.id or slug_id(targets[0].resolve().name)
    if record_id is None:
        raise UsageError(f"{targets[0]}: no record id can be made from this name: give --id")
    paths, problems = payload_paths(path.parent, targets)
    if problems:
        raise IntakeError(problems)
    payload, problems = describe_payload(path.parent, paths)
    if problems:
        raise IntakeError(problems)
    data = record_data(record_id, fields, payload)
    todo, other = validation_problems(data)
    _refuse(other, path)
    header = [f"Strongroom record written by `strongroom records new` on {dt.date.today()} for "
              f"{', '.join(str(t) for t in targets)}.",
              "Digests and formats were computed from the files; the description is yours to",
              "complete (see 'The record format' in the README). The id names the bag",
              f"({record_id}.v1, ...): never change it once ingested.", *todo_header(todo)]
    publish(path, render(data, header))
    return NewRecord(path=path, id=record_id, payload_count=len(payload), todo=tuple(todo))


def _refuse(problems: list[tuple[tuple[Any, ...], str]], path: Path) -> None:
    """Problems with the given values are usage errors naming the option; others name the record."""
    usage = [f"{_OPTIONS[name]}: {msg}" for loc, msg in problems
             if (name := _option_name(loc)) is not None]
    if usage:
        raise UsageError("; ".join(usage))
    if problems:
        raise IntakeError([f"{path}: {field_path(loc)}: {msg}" if loc else f"{path}: {msg}"
                           for loc, msg in problems])


def _option_name(loc: tuple[Any, ...]) -> str | None:
    if not loc:
        return None
    if loc[0] == "dc" and len(loc) > 1:
        return str(loc[1]) if loc[1] in _OPTIONS else None
    if loc[0] == "rights" and len(loc) > 1:
        return str(loc[1]) if loc[1] in _OPTIONS else None
    return str(loc[0]) if loc[0] in _OPTIONS else None
