"""CLI commands ``ingest`` (through the Prefect flow), ``bag`` and ``show`` (no Prefect)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

from pipeline.errors import UsageError
from pipeline.fixity import DEFAULT_ALGORITHMS, SUPPORTED_ALGORITHMS


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``ingest``, ``bag`` and ``show``."""
    p = sub.add_parser("ingest", help="ingest records into versioned, verified bags (Prefect flow)",
                       description="Ingest metadata records and their payload into BagIt bags named "
                                   "<id>.v<N>. Runs on Prefect's ephemeral mode unless PREFECT_API_URL "
                                   "names a server.")
    p.add_argument("records", nargs="*", type=Path, metavar="RECORD", help="record files (default: all "
                   "record.yaml / *.record.yaml under --records)")
    p.add_argument("--records", dest="records_dir", type=Path, default=Path("records"), metavar="DIR")
    p.add_argument("--bags", type=Path, default=Path("bags"), metavar="DIR")
    _algorithm_option(p)
    p.add_argument("--ledger", metavar="URL", default=os.environ.get("STRONGROOM_LEDGER"),
                   help="fixity ledger database URL (default: SQLite <bags>/.strongroom-ledger.sqlite)")
    p.add_argument("--no-ledger", action="store_true", help="do not register bags in the fixity ledger")
    p.add_argument("--deposit-to", action="append", default=[], metavar="URL",
                   help="deposit each new bag there too (repeatable: file://, s3://, ocfl://)")
    p.add_argument("--json", action="store_true", help="print a machine-readable result")
    _second_opinion_option(p)
    p.add_argument("--verbose", action="store_true", help="show Prefect's own log lines")
    p.add_argument("--records-per-task", type=int, metavar="N",
                   help="records ingested by one Prefect task (default: 1 for runs of up to 64 records, "
                        "then up to 16 so that Prefect's cost per task does not dominate)")
    _runner_options(p)
    p.set_defaults(handler=run_ingest)

    b = sub.add_parser("bag", help="bag any directory into a new bag (copy mode; the source is untouched)")
    b.add_argument("source", type=Path, metavar="SOURCE_DIR")
    b.add_argument("dest", type=Path, metavar="DEST_DIR", help="the new bag (must not exist)")
    _algorithm_option(b)
    b.add_argument("--info", action="append", default=[], metavar="'Label: value'",
                   help="a bag-info.txt line (repeatable; order is kept)")
    _second_opinion_option(b)
    b.set_defaults(handler=run_bag)

    s = sub.add_parser("show", help="what a bag holds, from its metadata")
    s.add_argument("bags", nargs="+", type=Path, metavar="BAG")
    s.set_defaults(handler=run_show)


def _algorithm_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--algorithm", "-a", action="append", dest="algorithms", metavar="ALG",
                        help=f"manifest algorithm, repeatable (default: {' + '.join(DEFAULT_ALGORITHMS)}; "
                             f"supported: {', '.join(SUPPORTED_ALGORITHMS)})")


def _second_opinion_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-second-opinion", action="store_true",
                        help="verify each staged bag with Strongroom's own re-read only, without bagit-python's "
                             "second opinion (faster; the default runs both; recorded in PREMIS)")


def _runner_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task-runner", choices=("threads", "processes", "dask"), default=None,
                        help="where the flow's tasks run: threads (default), processes (one per core) "
                             "or dask (a temporary local cluster, or the one --dask-address names)")
    parser.add_argument("--dask-address", metavar="tcp://HOST:8786",
                        help="an existing Dask scheduler (implies --task-runner dask); its workers need "
                             "PREFECT_API_URL set to the same Prefect server")


def _runner_kind(args: argparse.Namespace) -> str:
    """The task runner asked for, checked before Prefect is imported (one clear line if wrong)."""
    kind = str(args.task_runner or ("dask" if args.dask_address else "threads"))
    if args.dask_address and kind != "dask":
        raise UsageError("--dask-address needs --task-runner dask")
    if args.dask_address and not str(args.dask_address).startswith(("tcp://", "tls://")):
        raise UsageError(f"--dask-address {args.dask_address!r}: expected tcp://host:8786")
    return kind


def run_ingest(args: argparse.Namespace) -> int:
    """Run the ingest flow and print its report."""
    from pipeline.fixity import check_algorithms

    algorithms = check_algorithms(args.algorithms or DEFAULT_ALGORITHMS)
    runner_kind = _runner_kind(args)
    if not args.records and not args.records_dir.is_dir():
        what = "is not a directory" if args.records_dir.exists() else "no such records directory"
        raise UsageError(f"{args.records_dir}: {what}")
    if args.bags.exists() and not args.bags.is_dir():
        raise UsageError(f"{args.bags}: is not a directory (the bags directory)")
    _check_deposit_targets(args.deposit_to)
    if args.records_per_task is not None and args.records_per_task < 1:
        raise UsageError("--records-per-task must be at least 1")
    records = record_files(args.records or [args.records_dir])  # after the usage checks: those are exit 2
    from pipeline.ingest import prepare_bags_dir

    prepare_bags_dir(args.bags)  # an unwritable bags directory is one clear line, before Prefect starts
    quick = _all_unchanged(records, args)
    if quick is not None:  # nothing to do: no flow, no Prefect start-up (~7 s)
        report = quick.as_json()
        _print_ingest(report, as_json=args.json)
        return int(report["exit_code"])
    from flows.settings import apply_defaults

    apply_defaults(verbose=args.verbose)
    from flows import ingest as ingest_flows

    flow = ingest_flows.ingest_flow
    if runner_kind != "threads":
        from flows.runners import task_runner

        flow = flow.with_options(task_runner=task_runner(runner_kind, args.dask_address))  # type: ignore[arg-type]
    display = _Display(enabled=sys.stdout.isatty() and not args.json, records=records)
    ingest_flows.set_progress(display.result, display.copied)
    from flows.settings import ledger_environment

    with display, ledger_environment(args.ledger):
        report = flow(
            records=[str(r) for r in records], records_dir=str(args.records_dir),
            bags_dir=str(args.bags), algorithms=list(algorithms),
            use_ledger=not args.no_ledger, deposit_to=list(args.deposit_to),
            records_per_task=args.records_per_task, second_opinion=not args.no_second_opinion)
    _print_ingest(report, as_json=args.json)
    return int(report["exit_code"])


def _all_unchanged(records: list[Path], args: argparse.Namespace) -> Any:
    """The report of a run in which every record is unchanged and registered, else None.

    Decided before Prefect starts, the way the flow decides it (:func:`pipeline.ingest.unchanged_result`);
    a run with deposits or anything to bag or register goes through the flow.
    """
    from pipeline.ingest import IngestReport, duplicate_identifiers, unchanged_result

    if args.deposit_to or not args.bags.is_dir() or duplicate_identifiers(records):
        return None
    results = []
    for record in records:
        result = unchanged_result(record, args.bags)
        if result is None:
            return None
        results.append(result)
    if not args.no_ledger and not _registered([r.bag.name for r in results if r.bag], args):
        return None
    return IngestReport(results)


def _registered(names: list[str], args: argparse.Namespace) -> bool:
    """Whether the ledger holds every bag named; False when there is no ledger yet (it is not created)."""
    from pipeline.errors import LedgerError
    from pipeline.ledger import SQLITE_NAME, Ledger

    url = args.ledger or os.environ.get("STRONGROOM_LEDGER")
    if not url and not (args.bags / SQLITE_NAME).is_file():
        return False
    with Ledger.open(url, bags_dir=args.bags) as ledger:
        try:
            for name in names:
                ledger.bag(name)
        except LedgerError:
            return False
    return True


def record_files(targets: list[Path]) -> list[Path]:
    """The record files that ``targets`` name: files as given, directories searched.

    A record's own directory (holding ``record.yaml``) stands for that record; any other directory
    stands for every record below it.  A missing path is a usage error (exit 2); a directory
    without records is a failure (exit 1, nothing created), as for ``records check``.
    """
    from pipeline.errors import StrongroomError
    from pipeline.records import discover_records

    found: list[Path] = []
    for target in targets:
        if target.is_file():
            found.append(target)
        elif (target / "record.yaml").is_file():
            found.append(target / "record.yaml")
        elif target.is_dir():
            records = discover_records(target)
            if not records:
                raise StrongroomError(f"no records found under {target}")
            found.extend(records)
        else:
            raise UsageError(f"{target}: no such record file or directory")
    return list(dict.fromkeys(found))


def _print_ingest(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for row in report["records"]:
        if row["outcome"] == "failed":
            print(f"strongroom: error: {row['error']}", file=sys.stderr)
        else:
            print(f"{row['outcome']:>9}  {row['bag']}  ({row['files']} file(s), {row['bytes']:,} bytes)")
        for warning in row.get("warnings") or ():
            print(f"strongroom: warning: {warning}", file=sys.stderr)
        for note in row.get("notes") or ():
            print(f"note: {note}")
    n = len(report["records"])
    print(f"{n} record(s): {report['bagged']} bagged, {report['unchanged']} unchanged, "
          f"{report['failed']} failed")


class _Display:
    """On a terminal, a bar of the payload bytes bagged (rate, time left); nothing otherwise.

    Bytes come from the writer while each record's payload is copied and, for a record that needs
    no new bag, from its result; the total is the size of every record's payload, read up front.
    """

    def __init__(self, *, enabled: bool, records: list[Path] | None = None) -> None:
        self.enabled = enabled
        self._records = list(records or [])
        self._context: Any = None
        self._meter: Any = None
        self._lock = threading.Lock()
        self._done: dict[Path, tuple[int, int]] = {}

    def __enter__(self) -> "_Display":
        if self.enabled:
            from pipeline.progress import progress_bar

            octets, files = _payload_totals(self._records)
            self._context = progress_bar("ingest", total_bytes=octets, total_files=files)
            self._meter = self._context.__enter__()
        return self

    def copied(self, record: Path, octets: int, files: int) -> None:
        self._update(record, octets, files)

    def result(self, result: Any) -> None:
        self._update(result.record, result.bytes, result.files)

    def _update(self, record: Path, octets: int, files: int) -> None:
        if self._meter is None:
            return
        with self._lock:
            self._done[record] = (octets, files)
            self._meter(sum(b for b, _ in self._done.values()), sum(f for _, f in self._done.values()))

    def __exit__(self, *exc: object) -> None:
        if self._context is not None:
            self._context.__exit__(None, None, None)


def _payload_totals(records: list[Path]) -> tuple[int | None, int | None]:
    """The bytes and files of every record's payload; None when a record cannot be read (the run says why)."""
    from pipeline.errors import StrongroomError
    from pipeline.ingest import resolve_payload
    from pipeline.records import load_record

    octets = files = 0
    try:
        for record in records:
            payload = resolve_payload(load_record(record))
            octets += sum(p.source.stat().st_size for p in payload)
            files += len(payload)
    except (StrongroomError, OSError):
        return None, None
    return octets, files


def run_bag(args: argparse.Namespace) -> int:
    """Bag a directory (copy mode, atomic, verified by Strongroom and bagit-python)."""
    from pipeline.bag.writer import bag_directory
    from pipeline.fixity import check_algorithms

    algorithms = check_algorithms(args.algorithms or DEFAULT_ALGORITHMS)
    info = [_parse_info(line) for line in args.info]
    if not args.source.is_dir():
        what = "is not a directory" if args.source.exists() else "no such source directory"
        raise UsageError(f"{args.source}: {what}")
    if not args.dest.parent.is_dir():
        what = "is not a directory" if args.dest.parent.exists() else "no such directory"
        raise UsageError(f"{args.dest.parent}: {what} (the new bag's parent)")
    if args.dest.resolve().is_relative_to(args.source.resolve()):
        raise UsageError(f"{args.dest}: the bag cannot be inside its source ({args.source}): the source "
                         "is never changed")
    from pipeline.progress import directory_totals, progress_bar, wanted

    shown = wanted()  # a bar on a terminal only; otherwise exactly the writer's defaults
    octets, files = directory_totals(args.source) if shown else (None, None)
    with progress_bar("copying", total_bytes=octets, total_files=files) as meter:
        second = not args.no_second_opinion
        written = bag_directory(args.source, args.dest, algorithms=algorithms, info=info, progress=meter,
                                verifiers=_verifiers_with_progress(meter, octets, files, second) if shown else None,
                                second_opinion=second)
    checked = "Strongroom and bagit-python" if second else "Strongroom; bagit-python's second opinion not asked"
    print(f"bagged {written.path}: {len(written.payload)} file(s), {written.octets:,} bytes, "
          f"{' + '.join(written.algorithms)}; valid ({checked})")
    if written.second_opinion:
        print(f"note: {written.second_opinion}")
    return 0


def _verifiers_with_progress(meter: Any, octets: int | None, files: int | None, second_opinion: bool) -> list[Any]:
    """The writer's default verifiers (Strongroom's, then bagit-python), Strongroom's shown as a stage."""
    from pipeline.bag.second_opinion import SecondOpinion
    from pipeline.bag.verifiers import strongroom_verifier

    strongroom = strongroom_verifier(
        progress=meter, starting=lambda: meter.phase("verifying", total_bytes=octets, total_files=files))
    return [strongroom, SecondOpinion()] if second_opinion else [strongroom]


#: bag-info labels only the writer may set: they state facts it measures.
_MEASURED_LABELS = ("payload-oxum", "bag-software-agent")


def _parse_info(line: str) -> tuple[str, str]:
    label, sep, value = line.partition(":")
    if not sep or not label.strip() or label != label.strip():
        raise UsageError(f"--info {line!r}: expected 'Label: value'")
    if label.lower() in _MEASURED_LABELS:
        raise UsageError(f"--info {line!r}: {label} is computed by Strongroom, not given")
    return label, value.strip()


def _check_deposit_targets(urls: list[str]) -> None:
    """Refuse a bad --deposit-to URL before anything starts (and before Prefect could record it)."""
    if urls:
        from pipeline.deposit import open_target

        for url in urls:
            open_target(url).check_destination()


def run_show(args: argparse.Namespace) -> int:
    """Print a few readable lines per bag."""
    from pipeline.bag.show import describe

    for bag in args.bags:
        if not bag.is_dir():
            raise UsageError(f"{bag}: not a bag (not a directory)" if os.path.lexists(bag)
                             else f"{bag}: no such bag directory")
    for i, bag in enumerate(args.bags):
        if i:
            print()
        print(describe(bag))
    return 0
