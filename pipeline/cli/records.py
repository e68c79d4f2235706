"""CLI commands ``records check`` (validate record files) and ``records schema`` (print it)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``records check`` and ``records schema``."""
    group = sub.add_parser("records", help="check metadata records; print the record schema",
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
