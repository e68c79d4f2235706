"""``strongroom records import FILE.csv``: one record per row of an Archivematica-style metadata.csv.

The convention (Archivematica's ``metadata/metadata.csv``): a ``filename`` column naming a file or
a folder, ``dc.<element>`` and ``dcterms.<term>`` columns, a column repeated for repeated values.
Strongroom adds the record fields Dublin Core has no column for: ``id``, ``rights_uri`` and
``source_organization`` (the last two may also be given once for every row on the command line).

Each record is written beside its payload - a folder's ``record.yaml``, a file's
``<file>.record.yaml`` - so ``strongroom ingest --records <the CSV's directory>`` finds them all.
Every row is checked before anything is written: any bad row writes nothing, and every bad row and
column is named on a line of its own.  A row whose item is already recorded is reported and left
alone.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline.bag.names import unsafe_reason
from pipeline.errors import IntakeError, RecordError, UsageError
from pipeline.intake.authoring import (
    TODO, NewRecord, add_dc_formats, one_or_list, publish, render, slug_id, validation_problems,
)
from pipeline.intake.payload import describe_payload, folder_problem, payload_paths, relative_to
from pipeline.intake.rights import statement_for
from pipeline.models import ID_PATTERN, DublinCore
from pipeline.records import (
    MAX_RECORD_BYTES, RECORD_NAME, RECORD_SUFFIX, discover_records, load_record, payload_problem,
)

_ID = re.compile(ID_PATTERN)
#: The identifier form Strongroom's own records use (``urn:strongroom:record:icg-peru-1986``).
_OWN_URN = "urn:strongroom:record:"
_DC = tuple(DublinCore.model_fields)
#: dcterms terms beyond the 15 elements that a record holds, and the record field they fill.
_DCTERMS = {"provenance": "provenance", "bibliographiccitation": "bibliographic_citation",
            "issued": "issued"}
_OWN = ("filename", "id", "rights_uri", "source_organization")
_SINGLE = ("filename", "id", "rights_uri", "source_organization", "issued")
#: A spreadsheet is metadata: one this big is a mistake (the same bound as a record's).
MAX_CSV_BYTES = 16 * MAX_RECORD_BYTES


@dataclass
class _Row:
    line: int
    values: dict[str, list[str]]


@dataclass
class _Plan:
    """One row's record, checked but not yet written."""

    line: int
    name: str
    path: Path
    data: dict[str, Any]
    files: list[str]
    derived_id: str = ""
    #: The row's own problems (its record is still compared with the other rows').
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ImportResult:
    """What an import did: its root (for ``ingest --records``), the records written, notes."""

    root: Path
    written: list[NewRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def import_csv(csv_path: Path, *, rights_uri: str | None = None,
               source_organization: str | None = None) -> ImportResult:
    """Write a record per row of ``csv_path``, or raise IntakeError naming every bad row."""
    header, rows = _read_rows(csv_path)
    columns, problems = _columns(csv_path, header, rows)
    if "filename" not in columns.values():
        raise IntakeError(problems + [f"{csv_path}:1: no 'filename' column (it names each row's "
                                      "file or folder)"])
    root = _root(csv_path, rows, columns)
    headers = {target: header[i].strip() for i, target in reversed(list(columns.items()))}
    known_ids, claimed = _existing(root)
    plans: list[_Plan] = []
    notes: list[str] = []
    for row in rows:
        outcome = _plan(csv_path, root, _values(row, columns), headers, rights_uri,
                        source_organization, claimed)
        if isinstance(outcome, _Plan):
            plans.append(outcome)
            problems.extend(outcome.problems)
        elif outcome[0] == "note":
            notes.extend(outcome[1])
        else:
            problems.extend(outcome[1])
    problems += _cross_row(csv_path, root, plans, known_ids)
    if problems:
        prefix = f"{csv_path}:"
        raise IntakeError(sorted(problems, key=lambda line: _line_number(line, prefix)))
    return ImportResult(root=root, written=_write(csv_path, plans), notes=notes)


def _line_number(problem: str, prefix: str) -> int:
    """The CSV line a problem names (0 for the file as a whole), to report in file order."""
    number = problem[len(prefix):].split(":", 1)[0] if problem.startswith(prefix) else ""
    return int(number) if number.isdigit() else 0


# -- reading --------------------------------------------------------------------------------------


@dataclass
class _RawRow:
    line: int
    cells: list[str]


def _read_rows(csv_path: Path) -> tuple[list[str], list[_RawRow]]:
    if not csv_path.is_file():
        raise UsageError(f"{csv_path}: no such file")
    with open(csv_path, "rb") as fh:
        raw = fh.read(MAX_CSV_BYTES + 1)
    if len(raw) > MAX_CSV_BYTES:
        raise IntakeError([f"{csv_path}: larger than {MAX_CSV_BYTES >> 20} MiB: not a metadata.csv"])
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as exc:
        at = bom + exc.start
        line = raw[:at].count(b"\n") + 1
        raise IntakeError([f"{csv_path}:{line}: not UTF-8 (byte {at}): "
                           "save it as UTF-8 (a spreadsheet's 'CSV UTF-8')"]) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[_RawRow] = []
    try:
        start = 1
        for cells in reader:
            if any(c.strip() for c in cells):
                rows.append(_RawRow(start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise IntakeError([f"{csv_path}:{reader.line_num}: not a valid CSV: {exc}"]) from None
    if not rows:
        raise IntakeError([f"{csv_path}: empty: no header row"])
    return [c.strip() for c in rows[0].cells], rows[1:]


def _values(row: _RawRow, columns: dict[int, str]) -> _Row:
    """The row's non-empty values by what they fill, in column order (repeated columns: a list)."""
    values: dict[str, list[str]] = {}
    for i, target in columns.items():
        value = row.cells[i].strip() if i < len(row.cells) else ""
        if value:
            values.setdefault(target, []).append(value)
    return _Row(row.line, values)


def _columns(csv_path: Path, header: list[str],
             rows: list[_RawRow]) -> tuple[dict[int, str], list[str]]:
    """Column index -> what it fills (``dc.title``, ``filename``...); unknown ones are problems."""
    columns: dict[int, str] = {}
    problems: list[str] = []
    for i, name in enumerate(header):
        target = _target(name)
        if target is not None:
            columns[i] = target
        elif name or any(i < len(r.cells) and r.cells[i].strip() for r in rows):
            problems.append(f"{csv_path}:1: {_unknown(name, i)}")
    width = len(header)
    for row in rows:
        if len(row.cells) > width and any(c.strip() for c in row.cells[width:]):
            problems.append(f"{csv_path}:{row.line}: {len(row.cells)} values but the header has "
                            f"{width} columns")
    return columns, problems


def _target(name: str) -> str | None:
    low = name.strip().lower()
    if low in _OWN:
        return low
    prefix, dot, term = low.partition(".")
    if dot and prefix in ("dc", "dcterms") and term in _DC:
        return f"dc.{term}"
    if dot and prefix == "dcterms" and term in _DCTERMS:
        return _DCTERMS[term]
    return None


def _unknown(name: str, index: int) -> str:
    if not name:
        return f"column {index + 1} has values but no name"
    prefix = name.strip().lower().partition(".")[0]
    if prefix == "dc":
        return f"unknown column '{name}': not one of the 15 Dublin Core elements"
    if prefix == "dcterms":
        return (f"unknown column '{name}': a Strongroom record has no field for it (dcterms "
                f"columns: the 15 elements, provenance, bibliographicCitation, issued)")
    return (f"unknown column '{name}' (use filename, id, rights_uri, source_organization, "
            "dc.<element> or dcterms.<term>)")


def _root(csv_path: Path, rows: list[_RawRow], columns: dict[int, str]) -> Path:
    """Where filenames start: the CSV's directory, or an Archivematica transfer's top.

    Archivematica keeps ``metadata/metadata.csv`` beside ``objects/`` and names files
    ``objects/...``; such names are read from the transfer's top (the CSV's parent's parent).
    """
    here = csv_path.parent
    top = here.resolve().parent
    index = next(i for i, t in columns.items() if t == "filename")
    names = [r.cells[index].strip() for r in rows if index < len(r.cells)]
    if here.resolve().name == "metadata" and (top / "objects").is_dir() \
            and any(n == "objects" or n.startswith("objects/") for n in names):
        return here.parent if here.name == "metadata" else top
    return here


def _existing(root: Path) -> tuple[dict[str, Path], dict[Path, Path]]:
    """The records already below ``root``: their ids, and every payload file's record."""
    ids: dict[str, Path] = {}
    claimed: dict[Path, Path] = {}
    for path in discover_records(root):
        try:
            loaded = load_record(path)
        except RecordError:
            continue  # `records check` reports it; its own location still counts as recorded
        ids.setdefault(loaded.record.id, path)
        for item in loaded.record.payload:
            claimed[(loaded.root / item.path).resolve()] = path
    return ids, claimed


# -- one row ------------------------------------------------------------------------------------


def _plan(csv_path: Path, root: Path, row: _Row, headers: dict[str, str],
          rights_uri: str | None, source_organization: str | None,
          claimed: dict[Path, Path]) -> _Plan | tuple[str, list[str]]:
    """The row's record, or ``("note", [line])`` if already recorded, or ``("problem", lines)``."""
    where = f"{csv_path}:{row.line}"
    several = [headers[t] for t in _SINGLE if len(row.values.get(t, ())) > 1]
    if several:
        return "problem", [f"{where}: {c}: several values (one is allowed)" for c in several]
    name = row.values.get("filename", [""])[0].rstrip("/")
    while name.startswith("./"):
        name = name[2:]
    located = _locate(root, name)
    if isinstance(located, str):
        return "problem", [f"{where}: filename: {located}"]
    record_path, record_root, targets = located
    if record_path.exists() or record_path.is_symlink():
        return "note", [f"{where}: '{name}' is already recorded ({record_path}): left as it is"]
    files, problems = payload_paths(record_root, targets)
    if problems:
        return "problem", [f"{where}: filename: {p}" for p in problems]
    owners = {claimed.get((record_root / f).resolve()) for f in files}
    if owners and None not in owners:
        found = ", ".join(str(o) for o in sorted(p for p in owners if p is not None))
        return "note", [f"{where}: '{name}' is already recorded ({found}): left as it is"]
    taken = sorted(str(o) for o in owners if o is not None)
    if taken:
        return "problem", [f"{where}: filename: some of the files of '{name}' are already "
                           f"recorded in {', '.join(taken)}"]
    data, derived = _data(row, name, files, rights_uri, source_organization)
    lines = _row_problems(where, data, headers, derived)
    return _Plan(row.line, name, record_path, data, files, derived, lines)


def _locate(root: Path, name: str) -> tuple[Path, Path, list[Path]] | str:
    """(record file, record directory, payload targets) for a filename, or why it cannot be."""
    if name in ("", "."):
        return "empty (each row names a file or a folder)" if not name else \
            "names the CSV's own directory: name the files or folders below it"
    reason = unsafe_reason(name)
    if reason:
        return f"'{name}': {reason}"
    target = root / name
    if not target.exists() and not target.is_symlink():
        return f"'{name}' not found"
    if target.is_dir() and not target.is_symlink():
        problem = folder_problem(root, name)
        if problem:
            return f"'{name}' {problem}"
        return target / RECORD_NAME, target, [target]
    problem = payload_problem(root, name)
    if problem:
        return f"'{name}' {problem}"
    return target.with_name(target.name + RECORD_SUFFIX), target.parent, [target]


def _data(row: _Row, name: str, files: list[str], rights_uri: str | None,
          source_organization: str | None) -> tuple[dict[str, Any], str]:
    """The record data of a row (``<TODO>`` where a required value is missing) and, if the id was
    not given, what it was made from."""
    values = row.values
    record_id, derived = _record_id(values, name)
    dc: dict[str, Any] = {"title": one_or_list(values.get("dc.title") or [TODO["title"]])}
    for element in _DC:
        if element not in ("rights", "title") and values.get(f"dc.{element}"):
            dc[element] = one_or_list(values[f"dc.{element}"])
    uri = (values.get("rights_uri") or [rights_uri or ""])[0]
    statement = one_or_list(values.get("dc.rights") or [statement_for(uri) or TODO["statement"]])
    data: dict[str, Any] = {"id": record_id or "<TODO: an id>", "dc": dc}
    if values.get("issued"):
        data["issued"] = {"date": values["issued"][0]}
    for target in ("provenance", "bibliographic_citation"):
        if values.get(target):
            data[target] = one_or_list(values[target])
    data["rights"] = {"statement": statement, "uri": uri or TODO["uri"]}
    data["source_organization"] = (values.get("source_organization")
                                   or [source_organization or TODO["source_organization"]])[0]
    data["payload"] = [{"path": f} for f in files]
    return data, derived


def _record_id(values: dict[str, list[str]], name: str) -> tuple[str | None, str]:
    if values.get("id"):
        return values["id"][0], ""
    for identifier in values.get("dc.identifier", []):
        candidate = identifier.removeprefix(_OWN_URN)
        if _ID.match(candidate):
            return candidate, f"from dc.identifier '{identifier}'"
    return slug_id(Path(name).name), f"from the name '{Path(name).name}'"


#: Record location -> the column (or option) that gave it, for messages about a row.
_FIELD_COLUMN = {"rights.uri": "rights_uri", "rights.statement": "dc.rights",
                 "source_organization": "source_organization", "issued": "issued",
                 "provenance": "provenance", "bibliographic_citation": "bibliographic_citation",
                 "payload": "filename", "id": "id"}
_MISSING = {"dc.title": "no value: a title is required",
            "rights.statement": "no value, and no statement is known for the rights URI: "
                                "a dc.rights value is required",
            "rights.uri": "no value: give a rights_uri column or --rights-uri",
            "source_organization": "no value: give a source_organization column or "
                                   "--source-organization",
            "id": "no id can be made from the name: give an id column"}


def _row_problems(where: str, data: dict[str, Any], headers: dict[str, str],
                  derived: str) -> list[str]:
    todo, other = validation_problems(data)
    lines = [f"{where}: {_column(f, headers)}: {_MISSING.get(f, 'still to fill in')}" for f in todo]
    for loc, msg in other:
        column = _column(".".join([p for p in loc if isinstance(p, str)][:2]), headers)
        if column == "id" and derived:
            msg = f"{msg} (made {derived}: give an id column)"
        lines.append(f"{where}: {column}: {msg}" if loc else f"{where}: {msg}")
    return lines


def _column(fieldname: str, headers: dict[str, str]) -> str:
    """The CSV column (as its header writes it) that gave a record field."""
    if fieldname.startswith("dc."):
        key = fieldname
    else:
        key = _FIELD_COLUMN.get(fieldname, _FIELD_COLUMN.get(fieldname.split(".")[0], fieldname))
    return headers.get(key, key)


# -- all rows -----------------------------------------------------------------------------------


def _cross_row(csv_path: Path, root: Path, plans: list[_Plan], known_ids: dict[str, Path]) -> list[str]:
    """Two rows for one item, one id twice (here or in a record already below the root)."""
    problems: list[str] = []
    by_path: dict[Path, int] = {}
    by_id: dict[str, int] = {}
    by_file: dict[Path, int] = {}
    for plan in plans:
        where = f"{csv_path}:{plan.line}"
        if plan.path in by_path:
            problems.append(f"{where}: filename: '{plan.name}' also on line {by_path[plan.path]}")
            continue
        by_path[plan.path] = plan.line
        rid = str(plan.data["id"])
        how = f" (made {plan.derived_id}: give an id column)" if plan.derived_id else ""
        if rid in by_id:
            problems.append(f"{where}: id: duplicate id '{rid}' (also line {by_id[rid]}){how}")
        elif rid in known_ids:
            problems.append(f"{where}: id: '{rid}' is already the id of {known_ids[rid]}{how}")
        by_id.setdefault(rid, plan.line)
        shared = [f for f in plan.files if (plan.path.parent / f).resolve() in by_file]
        if shared:
            other = by_file[(plan.path.parent / shared[0]).resolve()]
            file = relative_to(root, plan.path.parent / shared[0])
            problems.append(f"{where}: filename: '{file}' is also a payload file of line {other}")
        for f in plan.files:
            by_file.setdefault((plan.path.parent / f).resolve(), plan.line)
    return problems


def _write(csv_path: Path, plans: list[_Plan]) -> list[NewRecord]:
    """Digest every row's files, then write every record; a failure removes what this run wrote."""
    problems: list[str] = []
    for plan in plans:
        payload, found = describe_payload(plan.path.parent, plan.files)
        problems += [f"{csv_path}:{plan.line}: filename: {p}" for p in found]
        plan.data["payload"] = payload
        add_dc_formats(plan.data["dc"], payload)
    if problems:
        raise IntakeError(problems)
    written: list[NewRecord] = []
    try:
        for plan in plans:
            header = [f"Strongroom record imported from {csv_path.name} (line {plan.line}) by",
                      f"`strongroom records import` on {dt.date.today()}. Digests and formats were",
                      f"computed from the files. The id names the bag ({plan.data['id']}.v1, ...):",
                      "never change it once ingested."]
            publish(plan.path, render(plan.data, header))
            written.append(NewRecord(plan.path, str(plan.data["id"]), len(plan.files)))
    except BaseException:
        for done in written:
            done.path.unlink(missing_ok=True)
        raise
    return written
