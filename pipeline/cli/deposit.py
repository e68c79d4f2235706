"""CLI command ``deposit``: copy bags into a repository, proven identical there, recorded in the ledger.

By default the bags go through the Prefect deposit flow (``flows/deposit.py``, one task per bag,
imported only here).  ``--no-flow`` runs the very same library call for each bag in this process,
without Prefect's start-up cost: for cron jobs, small machines, or a single bag.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``deposit``."""
    d = sub.add_parser(
        "deposit", help="deposit bags into a repository (file://, s3://, ocfl://) and verify them there",
        description="Copy each bag to the target, re-read it there and compare it with the bag's manifests, "
                    "then record the location and a PREMIS replication event in the fixity ledger. The same "
                    "bag again is a no-op; a different bag under the same name is refused. Targets: "
                    "file:///DIR, s3://BUCKET[/PREFIX][?endpoint=URL&serialization=tar], ocfl:///DIR (add ?create=1 to "
                    "create a missing DIR). "
                    "S3 credentials come from the environment or ~/.aws, never from the URL.")
    d.add_argument("bags", nargs="+", type=Path, metavar="BAG", help="bag directories (e.g. bags/<id>.v1)")
    d.add_argument("--to", required=True, metavar="URL", help="the target repository")
    d.add_argument("--ledger", metavar="URL", default=os.environ.get("STRONGROOM_LEDGER"),
                   help="fixity ledger database URL (default: SQLite beside each bag)")
    d.add_argument("--no-ledger", action="store_true", help="do not record the deposit in the ledger")
    d.add_argument("--no-flow", action="store_true", help="run in this process, without Prefect")
    d.add_argument("--json", action="store_true", help="print a machine-readable report")
    d.add_argument("--verbose", action="store_true", help="show Prefect's own log lines")
    d.set_defaults(handler=run_deposit)


def run_deposit(args: argparse.Namespace) -> int:
    """Deposit the bags (through the flow unless --no-flow) and print one line per bag."""
    from pipeline.deposit import open_target

    for bag in args.bags:
        if not (bag / "bagit.txt").is_file():
            raise UsageError(f"{bag}: not a bag directory (no bagit.txt)")
    # A bad URL or a missing repository is one clear line before any work (or Prefect) starts.
    open_target(args.to).check_destination()
    from pipeline.progress import bags_progress

    bags = [str(b) for b in args.bags]
    use_ledger = not args.no_ledger
    # On a terminal, a bar advances bag by bag (bytes and files of each finished bag).
    with bags_progress(f"depositing to {_scheme(args.to)}", args.bags) as done:
        if args.no_flow:
            from pipeline.deposit.replication import deposit_row, summarise

            rows = []
            for bag in args.bags:
                rows.append(deposit_row(bag, args.to, ledger_url=args.ledger, use_ledger=use_ledger))
                done(bag)
            report = summarise(rows)
        else:
            from flows.settings import apply_defaults

            apply_defaults(verbose=args.verbose)
            from flows import deposit as deposit_flows

            by_name = {b.name: b for b in args.bags}
            deposit_flows.set_progress(lambda row: done(by_name.get(str(row["bag"]), Path(str(row["bag"])))))
            try:
                report = deposit_flows.run_deposit(bags, args.to, ledger_url=args.ledger, use_ledger=use_ledger)
            finally:
                deposit_flows.set_progress(None)
    _print(report, as_json=args.json)
    return int(report["exit_code"])


def _scheme(url: str) -> str:
    """The target's kind for the bar's label (never the URL: it may carry a bucket's query)."""
    return url.split(":", 1)[0] or "target"


def _print(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for row in report["bags"]:
        if row["outcome"] == "failed":
            print(f"strongroom: error: {row['error']}", file=sys.stderr)
            continue
        how = "verified" if row["verified"] else "NOT verified"
        print(f"{row['outcome']:>9}  {row['bag']} -> {row['location']}  "
              f"({row['files']} file(s), {row['bytes']:,} bytes, {how})")
    print(f"{len(report['bags'])} bag(s): {report['deposited']} deposited, {report['unchanged']} unchanged, "
          f"{report['failed']} failed")
