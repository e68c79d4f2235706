"""``strongroom validate``: check bags strictly (RFC 8493, 0.93-0.97, BagIt Profiles 1.4).

One line per finding, one summary line per bag; exit 0 when every bag is valid (warnings are
shown but do not fail), 1 when any bag is invalid, 2 on a usage error.  Never imports Prefect.
"""

from __future__ import annotations

import argparse
import traceback
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pipeline.bag.names import printable
from pipeline.bag.validator import Depth, ValidationReport, validate_bag
from pipeline.errors import UsageError


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``validate`` to the ``strongroom`` parser."""
    p = sub.add_parser(
        "validate", help="validate bags strictly (RFC 8493, BagIt 0.93-1.0, BagIt Profiles 1.4)",
        description="Validate one or more bags. Exit 0 if all are valid (warnings allowed), "
                    "1 if any is invalid, 2 on a usage error.")
    p.add_argument("paths", nargs="+", type=Path, metavar="BAG_OR_DIR",
                   help="a bag directory (with --recursive: a directory to search for bags)")
    depth = p.add_mutually_exclusive_group()
    depth.add_argument("--fast", dest="depth", action="store_const", const="fast",
                       help="structure and Payload-Oxum only: proves nothing about content")
    depth.add_argument("--completeness", dest="depth", action="store_const", const="completeness",
                       help="every file present and listed, no digests computed")
    p.add_argument("--profile", type=Path, metavar="FILE",
                   help="also check every bag against this BagIt Profile JSON file")
    p.add_argument("--json", action="store_true", help="print the reports as JSON on stdout")
    p.add_argument("--recursive", "-r", action="store_true",
                   help="validate every bag (a directory holding bagit.txt) under each directory, "
                        "skipping dot-directories such as .strongroom-staging")
    p.set_defaults(handler=run, depth="full")


def run(args: argparse.Namespace) -> int:
    """Validate every bag named or found; print findings and summaries; return the exit code."""
    profile = None
    if args.profile is not None:
        from pipeline.bag.profiles import load_profile

        profile = load_profile(args.profile)
    bags = list(_bags(args.paths, recursive=args.recursive))
    reports: list[ValidationReport] = []
    crashed = 0
    for bag in bags:
        try:
            report = _validate_with_progress(bag, args.depth, profile)
        except Exception as exc:  # noqa: BLE001 - one bag's failure never stops the others
            if getattr(args, "debug", False):
                traceback.print_exception(exc)
            crashed += 1
            print(printable(f"{bag}: internal error: {type(exc).__name__}: {exc}; not validated "
                            "(run with --debug for details)"), file=sys.stderr)
            continue
        reports.append(report)
        if not args.json:
            _print_report(report)
    if args.json:
        json.dump([r.to_json() for r in reports], sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif len(reports) > 1:
        bad = sum(not r.valid for r in reports)
        print(f"{len(reports)} bag(s) validated: {len(reports) - bad} valid, {bad} invalid")
    if crashed:
        from pipeline.cli import INTERNAL_ERROR

        return INTERNAL_ERROR
    return 0 if all(r.valid for r in reports) else 1


def _validate_with_progress(bag: Path, depth: Depth, profile: Any) -> ValidationReport:
    """``validate_bag``, with a progress bar on a terminal while a full validation hashes."""
    from pipeline.progress import bag_totals, progress_bar, wanted

    octets, files = bag_totals(bag) if depth == "full" and wanted() else (None, None)
    if octets is None and files is None:
        return validate_bag(bag, depth=depth, profile=profile)
    with progress_bar(f"validating {bag.name}", total_bytes=octets, total_files=files) as meter:
        return validate_bag(bag, depth=depth, profile=profile, progress=meter)


def _print_report(report: ValidationReport) -> None:
    for f in report.findings:
        print(printable(f"{report.bag}: {f.severity}: {f.line()}"))
    print(printable(report.summary_line()))


def _bags(paths: list[Path], *, recursive: bool) -> Iterator[Path]:
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise UsageError(f"{path}: no such file or directory")
        if not recursive:
            yield path
            continue
        if not path.is_dir():
            raise UsageError(f"{path}: --recursive needs a directory")
        found = list(find_bags(path))
        if not found:
            raise UsageError(f"{path}: no bags (directories holding bagit.txt) found")
        yield from found


def find_bags(root: Path) -> Iterator[Path]:
    """Every bag under ``root`` in name order: a directory holding bagit.txt, not looked inside.

    Dot-directories (``.strongroom-staging``, ``.git``) are skipped and links are not followed.
    """
    if (root / "bagit.txt").is_file():
        yield root
        return
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as exc:
        raise UsageError(f"{root}: cannot be listed: {exc.strerror or exc}") from exc
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        yield from find_bags(Path(entry.path))
