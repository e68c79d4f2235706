"""CLI commands ``register``, ``audit`` and ``events`` (no Prefect); ``serve`` is in ``pipeline.cli.serve``.

``strongroom audit`` runs the audit library directly, in this process: an audit must work from
plain cron on a machine with no Prefect server, and it must not pay Prefect's start-up cost.  The
audit *flow* (``flows/audit.py``) wraps the same library for scheduled runs, adding the table
artifact and the ``strongroom.audit.damage`` event; ``strongroom serve`` schedules that flow.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
import re
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``register``, ``audit`` and ``events``."""
    r = sub.add_parser("register", help="record existing bags in the fixity ledger (their manifests "
                                         "become the reference)")
    r.add_argument("bag_paths", nargs="+", type=Path, metavar="BAG")
    _ledger_options(r)
    r.set_defaults(handler=run_register)

    a = sub.add_parser("audit", help="re-check the fixity of registered bags against the ledger",
                       description="Re-read every file of every copy of the bags due for a check, compare "
                                   "with the ledger and the bags' manifests, record a PREMIS fixity event "
                                   "per file. Exit 0 when all intact, 1 on damage, 2 on usage errors.")
    _ledger_options(a)
    _audit_scope_options(a)
    a.add_argument("--batch", type=int, default=None, metavar="N",
                   help="bags claimed, checked and recorded in one ledger transaction (default "
                        "256, fewer when they are large); a crash loses at most the two "
                        "batches in hand (one checked, one being recorded), re-checked next run")
    a.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="write the report as JSON to FILE (or to standard output instead of the text)")
    a.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    a.add_argument("--repair", action="store_true",
                   help="right after the check, repair damaged copies from verified ones (as strongroom repair)")
    a.add_argument("--create-ledger", action="store_true",
                   help="create an empty SQLite ledger in --bags when there is none (otherwise a missing "
                        "ledger is an error: a mistyped path must not look like an audit that passed)")
    a.set_defaults(handler=run_audit_command)

    e = sub.add_parser("events", help="export a bag's full PREMIS history (XML) from the ledger")
    e.add_argument("bag", metavar="BAG", help="bag name (e.g. icg-peru-1986.v1) or bag directory")
    e.add_argument("--output", "-o", type=Path, metavar="FILE", help="write to FILE instead of standard output")
    _ledger_options(e)
    e.set_defaults(handler=run_events)


def _ledger_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bags", type=Path, default=Path("bags"), metavar="DIR",
                        help="bags directory; its SQLite ledger is the default (default: bags)")
    parser.add_argument("--ledger", metavar="URL", default=None,
                        help="ledger database URL (default: $STRONGROOM_LEDGER, else SQLite in --bags)")


def _audit_scope_options(parser: argparse.ArgumentParser, *, default_older_than: str | None = None) -> None:
    parser.add_argument("--older-than", default=default_older_than, metavar="AGE",
                        help="only bags not checked within AGE (e.g. 90d, 12h), oldest first")
    parser.add_argument("--limit", type=int, metavar="N", help="check at most N bags in this run")
    parser.add_argument("--max-bytes", metavar="SIZE", help="stop once SIZE bytes are due (e.g. 500G)")
    parser.add_argument("--lease", type=float, default=300.0, metavar="SECONDS",
                        help="how long a bag stays claimed by a process that died checking it (default 300)")


def parse_size(text: str) -> int:
    """``1048576``, ``500M``, ``2G``, ``1TiB`` as a number of bytes; UsageError otherwise."""
    m = _SIZE.match(text)
    if m is None:
        raise UsageError(f"'{text}': not a size (use bytes or a K, M, G or T suffix, e.g. 500G)")
    return int(m.group(1)) * _SIZE_FACTOR[m.group(2).lower()]


def audit_options(args: argparse.Namespace) -> Any:
    """The :class:`~pipeline.audit.AuditOptions` the scope options ask for (UsageError if invalid)."""
    from pipeline.audit import AuditOptions, parse_duration

    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    if args.lease <= 0:
        raise UsageError("--lease must be positive")
    batch = getattr(args, "batch", None)  # only ``audit`` has --batch; ``serve`` runs the flow's batches
    if batch is not None and batch < 1:
        raise UsageError("--batch must be at least 1")
    options = AuditOptions(older_than=parse_duration(args.older_than) if args.older_than else None,
                           limit=args.limit, max_bytes=parse_size(args.max_bytes) if args.max_bytes else None,
                           lease_seconds=args.lease)
    return replace(options, batch_size=batch) if batch is not None else options


def _require_ledger(args: argparse.Namespace) -> None:
    """UsageError when the audit would read a SQLite ledger that does not exist (it is not created).

    An audit of a mistyped or empty path would otherwise create a ledger there and report that
    no bag was due, exit 0, for ever.  A database URL (--ledger, $STRONGROOM_LEDGER) is not checked
    here: opening it fails in one line if it cannot be reached.
    """
    from pipeline.ledger import SQLITE_NAME, resolve_url

    url = resolve_url(args.ledger, args.bags)  # a missing bags directory: one line, exit 2
    path = args.bags / SQLITE_NAME
    if url.startswith("sqlite:///") and url.endswith("/" + SQLITE_NAME) and not path.is_file():
        raise UsageError(f"{path}: no ledger to audit (no bag was ever registered here; "
                         "use --create-ledger to start an empty one)")


def _open(args: argparse.Namespace) -> Any:
    from pipeline.ledger import Ledger

    return Ledger.open(args.ledger, bags_dir=args.bags)


def run_register(args: argparse.Namespace) -> int:
    """Register each bag (origin ``register``) and print one line per bag."""
    from pipeline.audit import register_bag

    for bag in args.bag_paths:
        if not bag.is_dir():
            raise UsageError(f"{bag}: not a bag (not a directory)" if os.path.lexists(bag)
                             else f"{bag}: no such bag directory")
    with _open(args) as ledger:
        for bag in args.bag_paths:
            name = register_bag(ledger, bag, origin="register")
            ref = ledger.bag(name)
            print(f"registered {name}: {ref.file_count} files, {ref.total_bytes:,} bytes, "
                  f"reference digests ({', '.join(ref.algorithms)}) from {ref.origin}")
    return 0


def run_audit_command(args: argparse.Namespace) -> int:
    """Run one audit, print the report, write JSON/HTML when asked; 1 when damage was found."""
    from pipeline.audit import report as audit_report
    from pipeline.audit import run_audit

    options = audit_options(args)
    json_file = Path(args.json) if args.json not in (None, "-") else None
    for output in (json_file, args.html):
        check_output(output)  # before the run: an audit can take hours
    if not args.create_ledger:
        _require_ledger(args)
    if args.repair:
        from pipeline.cli.repair import writable

        writable(args.bags)
    with _open(args) as ledger, _audit_progress(ledger, options) as on_bag:
        report = run_audit(ledger, options, on_bag=on_bag)
        unregistered = _unregistered(args.bags, ledger) if args.ledger is None else []
        repaired = _repair_after(ledger, report, args) if args.repair else None
    if args.json == "-":
        data = audit_report.as_json(report)
        if repaired is not None:
            from pipeline.audit import repair_report

            data["repair"] = repair_report.as_json(repaired)
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(audit_report.to_text(report))
        if repaired is not None:
            from pipeline.audit import repair_report

            sys.stdout.write(repair_report.to_text(repaired))
    if json_file is not None:
        _write(json_file, audit_report.to_json_text(report).encode("utf-8"))
    if args.html is not None:
        _write(args.html, audit_report.to_html(report).encode("utf-8"))
    if not report.bags and args.json != "-":
        print("checked nothing: no bag was due")
    if unregistered:
        print(f"note: {len(unregistered)} bag(s) in {args.bags} are not in the ledger and were not audited "
              f"(strongroom register): {', '.join(unregistered[:5])}{' ...' if len(unregistered) > 5 else ''}",
              file=sys.stderr)
    return int(report.exit_code if repaired is None else repaired.exit_code)


def _repair_after(ledger: Any, report: Any, args: argparse.Namespace) -> Any:
    """Repair the damaged bags of an audit from its own checks (no second read of the copies)."""
    from pipeline.audit.repair import RepairOptions, repair_run

    damaged = report.damaged
    return repair_run(ledger, [b.name for b in damaged], RepairOptions(bags_dir=args.bags, lease_seconds=args.lease),
                      checks={b.name: b.checks for b in damaged})


@contextmanager
def _audit_progress(ledger: Any, options: Any) -> Iterator[Callable[[Any], None] | None]:
    """On a terminal, a bar of bytes and files re-read (one copy's worth per bag), rate, time left.

    The total is a hint read from the ledger before the run (the due bags' sizes within
    ``--limit``/``--max-bytes``); another process sharing the ledger may take some of them.
    """
    from pipeline.audit import due_bytes
    from pipeline.progress import progress_bar, wanted

    if not wanted():
        yield None
        return
    with progress_bar("auditing", total_bytes=due_bytes(ledger, options)) as meter:
        done = [0, 0]

        def on_bag(result: Any) -> None:
            copies = max(1, len(result.checks))
            done[0] += result.bytes_read // copies
            done[1] += result.files_checked // copies
            meter(done[0], done[1])

        yield on_bag


def check_output(path: Path | None) -> None:
    """UsageError (one line) unless ``path`` can be written; a new file made to try is removed.

    Trying is the only honest test: permission bits say nothing for root, a read-only mount or
    a path below a regular file.
    """
    if path is None:
        return
    existed = os.path.lexists(path)
    try:
        # Non-blocking: opening a FIFO with no reader must fail, not wait.
        flags = os.O_WRONLY | os.O_NONBLOCK | (os.O_APPEND if existed else os.O_CREAT | os.O_EXCL)
        fd = os.open(path, flags, 0o644)
        os.close(fd)
        if not existed:
            os.unlink(path)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write here: {exc.strerror or exc}") from None


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:  # changed since check_output, e.g. the disk filled during the run
        raise UsageError(f"{path}: cannot write: {exc.strerror or exc}") from None


def _unregistered(bags_dir: Path, ledger: Any) -> list[str]:
    """Bag directories (``<id>.v<N>``) in the bags directory that the ledger does not know."""
    if not bags_dir.is_dir():
        return []
    known = {b.name for b in ledger.bags()}
    return sorted(p.name for p in bags_dir.iterdir()
                  if p.is_dir() and re.search(r"\.v[1-9][0-9]*$", p.name) and p.name not in known)


def run_events(args: argparse.Namespace) -> int:
    """Write the bag's PREMIS history as XML."""
    name = Path(args.bag).name if os.sep in args.bag or Path(args.bag).is_dir() else args.bag
    check_output(args.output)
    with _open(args) as ledger:
        xml = ledger.premis_xml(name)
    if args.output is not None:
        _write(args.output, xml)
    else:
        sys.stdout.buffer.write(xml)
    return 0
