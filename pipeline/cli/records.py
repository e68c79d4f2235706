"""CLI commands ``records check`` (validate record files), ``records schema`` (print it), and
``records new`` / ``records import`` (write records for payload files, one or a spreadsheet's worth)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``records check``, ``records schema``, ``records new`` and ``records import``."""
    group = sub.add_parser("records", help="write and check metadata records; print the record schema",
                           description="Work with metadata records (record.yaml, *.record.yaml).")
    actions = group.add_subparsers(dest="records_command", metavar="ACTION", required=True)

    check = actions.add_parser(
        "check", help="validate records and their payload files (nothing is written)",
        description="Validate record files: YAML syntax (with its line), every field, duplicate "
                    "ids across records, payload files present. Prints one line per problem, "
                    "file first; exit 1 if there is any.")
    check.add_argument("paths", nargs="*", type=Path, metavar="PATH",
                       help="record files or directories to search (default: records/)")
    check.set_defaults(handler=run_check)

    schema = actions.add_parser("schema", help="print the JSON Schema of a record")
    schema.set_defaults(handler=run_schema)
    _register_new(actions)
    _register_import(actions)


def _register_new(actions: "argparse._SubParsersAction[Any]") -> None:
    new = actions.add_parser(
        "new", help="write a record for payload files or a folder (digests and formats computed)",
        description="Write a record for the payload files or folder named: digests and formats "
                    "computed, the fields given here filled in, every other required field "
                    "written as a '<TODO: ...>' value that `records check` names. The record goes "
                    "to FOLDER/record.yaml, FILE.record.yaml, or --out; an existing record is "
                    "never overwritten.")
    new.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="payload files or folders")
    new.add_argument("--id", help="the record id (default: from the file or folder name)")
    new.add_argument("--title", help="dc.title")
    new.add_argument("--creator", action="append", default=[], help="dc.creator (repeatable)")
    new.add_argument("--date", help="dc.date (W3CDTF or EDTF, e.g. 1986-06)")
    new.add_argument("--language", action="append", default=[], help="dc.language, e.g. en (repeatable)")
    new.add_argument("--publisher", action="append", default=[], help="dc.publisher (repeatable)")
    new.add_argument("--rights-uri", help="rights.uri, e.g. http://rightsstatements.org/vocab/UND/1.0/")
    new.add_argument("--rights-statement",
                     help="rights.statement (default: the name of a RightsStatements.org or "
                          "Creative Commons URI)")
    new.add_argument("--source-organization", help="source_organization (bag-info Source-Organization)")
    new.add_argument("--out", type=Path, metavar="FILE",
                     help="the record file (record.yaml or NAME.record.yaml); the payload must lie "
                          "in its directory")
    new.set_defaults(handler=run_new)


def run_new(args: argparse.Namespace) -> int:
    """Write the record; 0 when written (also with fields still to fill in), 1 if refused."""
    from pipeline.errors import IntakeError
    from pipeline.intake.authoring import RecordFields, new_record

    fields = RecordFields(
        id=args.id, title=args.title, creator=tuple(args.creator), date=args.date,
        language=tuple(args.language), publisher=tuple(args.publisher),
        rights_uri=args.rights_uri, rights_statement=args.rights_statement,
        source_organization=args.source_organization)
    try:
        made = new_record(args.paths, fields, out=args.out)
    except IntakeError as exc:
        return _print_problems(exc.problems, "nothing written")
    print(f"wrote {made.path} (id {made.id}, {made.payload_count} payload file(s))")
    if made.todo:
        print(f"still to fill in: {', '.join(made.todo)} "
              f"(then: strongroom records check {made.path})")
    return 0


def _register_import(actions: "argparse._SubParsersAction[Any]") -> None:
    imp = actions.add_parser(
        "import", help="write one record per row of an Archivematica-style metadata.csv",
        description="Write one record per row of a metadata.csv (Archivematica convention: a "
                    "'filename' column, dc.* and dcterms.* columns, a column repeated for repeated "
                    "values), each beside its payload. Any bad row writes nothing; rows already "
                    "recorded are reported and left alone.")
    imp.add_argument("csv", type=Path, metavar="FILE.csv")
    imp.add_argument("--rights-uri", help="rights.uri for rows without a rights_uri value")
    imp.add_argument("--source-organization",
                     help="source_organization for rows without a source_organization value")
    imp.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    """Import the CSV; 0 when every row is written or already recorded, 1 (nothing written) if not."""
    from pipeline.errors import IntakeError
    from pipeline.intake.metadata_csv import import_csv

    try:
        done = import_csv(args.csv, rights_uri=args.rights_uri,
                          source_organization=args.source_organization)
    except IntakeError as exc:
        return _print_problems(exc.problems, f"{args.csv}: nothing written")
    for note in done.notes:
        print(f"note: {note}")
    for written in done.written:
        print(f"wrote {written.path} (id {written.id}, {written.payload_count} payload file(s))")
    print(f"{len(done.written)} record(s) written, {len(done.notes)} already recorded; "
          f"next: strongroom ingest --records {done.root}")
    return 0


def _print_problems(problems: "tuple[str, ...]", summary: str) -> int:
    for line in problems:
        print(f"strongroom: error: {line}", file=sys.stderr)
    if len(problems) > 1:
        print(f"strongroom: {len(problems)} problem(s): {summary}", file=sys.stderr)
    return 1


def run_check(args: argparse.Namespace) -> int:
    """Print every problem of the records named (or found); 0 if there is none, else 1."""
    from pipeline.records import check_records

    paths, problems = _record_paths(args.paths or [Path("records")])
    problems += check_records(paths)
    for line in problems:
        print(line)
    if problems:
        print(f"strongroom: {len(problems)} problem(s) in {len(paths)} record(s)", file=sys.stderr)
        return 1
    print(f"{len(paths)} record(s) OK")
    return 0


def _record_paths(targets: list[Path]) -> tuple[list[Path], list[str]]:
    """Record files from files and directories; a directory without records is a problem."""
    from pipeline.records import discover_records

    paths: list[Path] = []
    problems: list[str] = []
    for target in targets:
        if target.is_dir():
            found = discover_records(target)
            if not found:
                problems.append(f"no records found under {target}")
            paths.extend(found)
        elif target.exists():
            paths.append(target)
        else:
            raise UsageError(f"{target}: no such file or directory")
    return list(dict.fromkeys(paths)), problems


def run_schema(args: argparse.Namespace) -> int:
    """Print the record JSON Schema generated from the models."""
    from pipeline.models import schema_text

    sys.stdout.write(schema_text())
    return 0
