"""CLI commands ``repair`` and ``restore`` (no Prefect): heal copies of bags from verified ones.

The work is :mod:`pipeline.audit.repair`; this module checks the inputs (before anything is
touched), prints the report and sets the exit code: 0 nothing damaged or everything repaired,
1 something could not be repaired, 2 a usage error (nothing changed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from pipeline.errors import LedgerError, UsageError


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``repair`` and ``restore``."""
    r = sub.add_parser(
        "repair", help="repair damaged copies of bags from copies verified against the ledger",
        description="Check every recorded copy (the local bag and each deposit) of the bags named, or of "
                    "every bag the ledger knows, and replace exactly what differs from the ledger's reference "
                    "with bytes verified while they are read from a good copy; extra files go to "
                    "<bags>/.quarantine. Exit 0 when nothing is damaged or all is repaired, 1 when something "
                    "could not be repaired, 2 on usage errors.")
    r.add_argument("bag", nargs="*", metavar="BAG", help="bag name or directory (default: every bag in the ledger)")
    _common(r)
    r.add_argument("--dry-run", action="store_true", help="report what would be repaired; change nothing")
    r.add_argument("--json", action="store_true", help="print the report as JSON instead of text")
    r.set_defaults(handler=run_repair)

    s = sub.add_parser("restore", help="bring a bag back from a verified copy into a directory",
                       description="Rebuild the bag in DIR/<bag> from any copy verified against the ledger "
                                   "(every byte checked while it is read), then record DIR/<bag> as a location "
                                   "of the bag. Exit 0 restored, 1 no verified copy, 2 on usage errors.")
    s.add_argument("bag", metavar="BAG", help="bag name (e.g. icg-peru-1986.v1)")
    s.add_argument("--to", type=Path, required=True, metavar="DIR", help="directory to restore the bag into")
    _common(s)
    s.set_defaults(handler=run_restore)


def _common(parser: argparse.ArgumentParser) -> None:
    from pipeline.cli.audit import _ledger_options

    _ledger_options(parser)
    parser.add_argument("--from", dest="sources", action="append", default=[], metavar="URL",
                        help="read only from this recorded copy (a location or target URL; repeatable)")
    parser.add_argument("--lease", type=float, default=300.0, metavar="SECONDS",
                        help="how long a bag stays claimed by a repair that died (default 300)")
    parser.add_argument("--wait", type=float, default=300.0, metavar="SECONDS",
                        help="how long to wait for a bag another audit or repair holds (default 300)")


def run_repair(args: argparse.Namespace) -> int:
    """Repair the bags asked for and print the report."""
    from pipeline.audit import repair_report
    from pipeline.audit.repair import RepairOptions, repair_run

    _check_numbers(args)
    if not args.dry_run:
        writable(args.bags)
    with _open(args) as ledger:
        names = _scope(ledger, args.bag, args.sources)
        options = RepairOptions(bags_dir=args.bags, sources=tuple(args.sources), dry_run=args.dry_run,
                                lease_seconds=args.lease, wait_seconds=args.wait)
        report = repair_run(ledger, names, options)
    sys.stdout.write(repair_report.to_json_text(report) if args.json else repair_report.to_text(report))
    return report.exit_code


def run_restore(args: argparse.Namespace) -> int:
    """Restore one bag into ``--to``; record the new location."""
    from pipeline.audit import repair_report
    from pipeline.audit.repair import RepairOptions, RepairReport, repair_bag

    _check_numbers(args)
    dest = args.to / args.bag
    if os.path.lexists(dest):
        raise UsageError(f"{dest}: already exists (strongroom repair heals a copy in place)")
    if os.path.lexists(args.to) and not args.to.is_dir():
        raise UsageError(f"{args.to}: not a directory")
    if not args.to.is_dir() and not args.to.parent.is_dir():
        raise UsageError(f"{args.to}: no such directory, nor its parent")
    with _open(args) as ledger:
        names = _scope(ledger, [args.bag], args.sources)
        created = not args.to.is_dir()
        args.to.mkdir(exist_ok=True)
        try:
            writable(args.to)
            location = dest.resolve().as_uri()
            options = RepairOptions(bags_dir=args.to, sources=tuple(args.sources), only=(location,),
                                    extra=(location,), lease_seconds=args.lease, wait_seconds=args.wait)
            result = repair_bag(ledger, names[0], options)
            if result.outcome == "repaired":
                ledger.add_location(names[0], location)
        finally:
            if created and (not dest.exists()):  # a failed restore leaves no directory it made itself
                shutil.rmtree(args.to, ignore_errors=True)
    sys.stdout.write(repair_report.to_text(RepairReport([result])))
    if result.outcome == "repaired":
        print(f"restored {names[0]} to {dest}; recorded as a location of the bag")
    return 0 if result.outcome == "repaired" else 1


def _check_numbers(args: argparse.Namespace) -> None:
    if args.lease <= 0 or args.wait < 0:
        raise UsageError("--lease must be positive and --wait not negative")


def _open(args: argparse.Namespace) -> Any:
    """The ledger, or a one-line usage error (a missing SQLite ledger is never created by a repair)."""
    from pipeline.cli.audit import _require_ledger
    from pipeline.ledger import Ledger

    _require_ledger(args)
    try:
        return Ledger.open(args.ledger, bags_dir=args.bags)
    except LedgerError as exc:
        raise UsageError(str(exc)) from None


def _scope(ledger: Any, given: list[str], sources: list[str]) -> list[str]:
    """The bag names to repair (every bag the ledger knows when none is given); --from checked against them."""
    from pipeline.audit.sources import check_sources
    from pipeline.errors import RepairError

    known = {b.name: b for b in ledger.bags()}
    names = [Path(g).name if os.sep in g or Path(g).is_dir() else g for g in given]
    for given_name, name in zip(given, names):
        if name not in known:
            raise UsageError(f"{given_name}: no bag of that name in the ledger {ledger.url}")
    names = list(dict.fromkeys(names)) or sorted(known)
    check_sources(sources, [known[n] for n in names], named=bool(given))
    for name in names:  # before any bag is touched: the refusal is one line, and nothing changed
        if not ledger.files(name):
            raise RepairError(f"{name}: the ledger holds no reference digests for this bag; repair refused")
    return names


def writable(directory: Path) -> None:
    """UsageError (one line) unless a file can be made in ``directory`` (tried: the only honest test)."""
    if not directory.is_dir():
        problem = "is not a directory" if os.path.lexists(directory) else "no such directory"
        raise UsageError(f"{directory}: {problem}")
    try:
        fd, name = tempfile.mkstemp(prefix=".strongroom-probe.", dir=directory)
        os.close(fd)
        os.unlink(name)
    except OSError as exc:
        raise UsageError(f"{directory}: cannot write here: {exc.strerror or exc}") from None
