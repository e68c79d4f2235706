"""The ingest flow: one Prefect task per record (never per file), or per group of records in large runs.

The archival work is ``pipeline.ingest.ingest_record``; this module only sequences it, so the
same ingest runs identically from a script, a test or a deployment.  The run ends with a table
artifact of every record.

**Records per task.**  A Prefect task run costs the flow's process 35-55 ms of CPU here (its
states, events and result), more than ingesting a small record (about 18 ms: 1,000 records took
18 s through the library alone and 54 s as 1,000 tasks).  Runs of up to
:data:`ONE_TASK_PER_RECORD_UP_TO` records keep one task per record, each visible on its own in
the UI; larger runs group consecutive records, at most :data:`MAX_RECORDS_PER_TASK` to a task
(``records_per_task`` sets it).  A record's failure is still its own result: the other records of
its task proceed, and the report and artifact keep one row per record.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows.settings import apply_defaults

apply_defaults()

from prefect import flow, task  # noqa: E402 - settings must be in the environment first
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from pipeline.ingest import (  # noqa: E402
    IngestOptions,
    IngestReport,
    IngestResult,
    duplicate_identifiers,
    ingest_record,
    prepare_bags_dir,
    register_result,
)
from pipeline.errors import UsageError  # noqa: E402
from pipeline.records import discover_records  # noqa: E402

ARTIFACT_KEY = "strongroom-ingest"
#: Set by the CLI in this process to show progress; never a flow parameter (not serialisable).
_on_result: Callable[[IngestResult], None] | None = None


#: Set by the CLI with set_progress: (record, bytes copied, files copied) while a record is bagged.
_on_bytes: Callable[[Path, int, int], None] | None = None


def set_progress(callback: Callable[[IngestResult], None] | None,
                 on_bytes: Callable[[Path, int, int], None] | None = None) -> None:
    """Call ``callback`` in this process as each record finishes, and ``on_bytes`` as its payload is
    copied (cumulative for that record); used for the terminal display."""
    global _on_result, _on_bytes
    _on_result, _on_bytes = callback, on_bytes


def _record_progress(record_path: Path) -> Callable[[int, int], None] | None:
    """The writer's progress callback for one record, reporting to ``_on_bytes``."""
    report = _on_bytes
    if report is None:
        return None
    return lambda done, files: report(record_path, done, files)


#: Runs of at most this many records get one task per record.
ONE_TASK_PER_RECORD_UP_TO = 64
#: The most records a task gets when the flow groups them itself.
MAX_RECORDS_PER_TASK = 16


def group_size(count: int, requested: int | None = None) -> int:
    """How many records each task of a run of ``count`` records ingests (``requested`` wins)."""
    if requested is not None:
        if requested < 1:
            raise UsageError("records per task must be at least 1")
        return requested
    if count <= ONE_TASK_PER_RECORD_UP_TO:
        return 1
    return min(MAX_RECORDS_PER_TASK, count // ONE_TASK_PER_RECORD_UP_TO)


@task(name="ingest-records", task_run_name="ingest {label}")
def ingest_records_task(record_paths: list[Path], bags_dir: Path, algorithms: tuple[str, ...],
                        use_ledger: bool, deposit_to: tuple[str, ...] = (), label: str = "",
                        second_opinion: bool = True) -> list[IngestResult]:
    """Ingest records one after the other (and deposit their bags where asked).

    ``second_opinion=False``: Strongroom's own verification of each staged bag only (PREMIS says so).

    Every record's failure comes back as its result; the ledger is opened once for the task, and
    only once there is a bag to register (a run of failed records writes nothing).
    """
    results: list[IngestResult] = []
    ledger = None
    try:
        for record_path in record_paths:
            result = ingest_record(record_path, bags_dir, IngestOptions(algorithms=algorithms,
                                                                        progress=_record_progress(record_path),
                                                                        second_opinion=second_opinion))
            results.append(result)
            if result.bag is None or not (use_ledger or deposit_to):
                continue
            if use_ledger and ledger is None:
                ledger = _open_ledger(bags_dir)
            if ledger is not None:
                register_result(result, ledger)
            if result.outcome != "failed" and deposit_to:
                _deposit(result, deposit_to, ledger)
        return results
    finally:
        if ledger is not None:
            ledger.close()


def _label(paths: Sequence[Path]) -> str:
    first = paths[0].name if paths[0].name not in ("record.yaml", "record.yml") else paths[0].parent.name
    return first if len(paths) == 1 else f"{first} (+{len(paths) - 1} more)"


#: Tasks run at once on the default thread pool.  Prefect's pool is otherwise unbounded (a thread
#: per submitted task): 14 tasks of 15 records each at once took 10.2 s and 11.1 CPU-s for 200
#: records against 7.3 s and 6.6 CPU-s on 3 threads - each record's writer runs pools of its own,
#: and the extra threads only fought over the GIL.  One more than the cores keeps a core busy
#: while another task waits for its bag's flush to disk.
INGEST_THREADS = (os.cpu_count() or 1) + 1
_THREADS: Any = ThreadPoolTaskRunner(max_workers=INGEST_THREADS)  # Any: Prefect's generic type is too narrow here


@flow(name="strongroom-ingest", log_prints=False, task_runner=_THREADS)
def ingest_flow(records: Sequence[str] = (), records_dir: str | None = "records", bags_dir: str = "bags",
                algorithms: Sequence[str] = ("sha512", "sha256"), use_ledger: bool = True,
                deposit_to: Sequence[str] = (), records_per_task: int | None = None,
                second_opinion: bool = True) -> dict[str, Any]:
    """Ingest the given record files (or every record under ``records_dir``) into ``bags_dir``.

    The ledger is ``$STRONGROOM_LEDGER`` or the SQLite ledger in ``bags_dir``: its URL is never a
    parameter, since Prefect keeps and shows parameters (see ``flows.settings.ledger_environment``).
    ``records_per_task``: records ingested by one task (default: see the module's docstring).
    ``second_opinion``: bagit-python validates each staged bag too (the default); False keeps
    Strongroom's own verification only, and the bag's PREMIS validation event says so.
    """
    bags = Path(bags_dir)
    paths = [Path(r) for r in records] or discover_records(Path(records_dir or "records"))
    prepare_bags_dir(bags)
    clashes = duplicate_identifiers(paths)
    results: dict[Path, IngestResult] = {p: IngestResult(p, "failed", error=e) for p, e in clashes.items()}
    todo = [p for p in paths if p not in clashes]
    size = group_size(len(todo), records_per_task)
    groups = [todo[i:i + size] for i in range(0, len(todo), size)]
    futures = [ingest_records_task.submit(group, bags, tuple(algorithms), use_ledger, tuple(deposit_to),
                                          label=_label(group), second_opinion=second_opinion)
               for group in groups]
    for future in as_completed(futures):
        for result in future.result():
            results[result.record] = result
            if _on_result is not None:
                _on_result(result)
    report = IngestReport([results[p] for p in paths])
    _publish_artifact(report)
    return report.as_json()


def _publish_artifact(report: IngestReport) -> None:
    rows = [{"record": r.record.name, "bag": r.bag.name if r.bag else "", "files": r.files,
             "bytes": r.bytes, "outcome": r.outcome, "error": r.error or ""} for r in report.results]
    create_table_artifact(key=ARTIFACT_KEY, table=rows, description=report.summary_line())


def _open_ledger(bags_dir: Path) -> Any:
    from pipeline.ledger import Ledger

    return Ledger.open(None, bags_dir=bags_dir)  # None: $STRONGROOM_LEDGER, else SQLite in bags_dir


def _deposit(result: IngestResult, targets: Sequence[str], ledger: Any) -> None:
    from pipeline.deposit import deposit_bag
    from pipeline.errors import StrongroomError

    assert result.bag is not None
    for url in targets:
        bag = result.bag
        try:
            for bag in [*_undeposited_earlier_versions(result.bag, url), result.bag]:
                # A bag this run just made was verified before publication; any other is re-read.
                fresh = bag == result.bag and result.outcome == "bagged"
                done = deposit_bag(bag, url, ledger=ledger, source_verified=fresh)
                result.notes.append(done.line())  # every deposit's outcome is printed
        except StrongroomError as exc:
            result.outcome, result.error = "failed", f"bag {result.bag.name} made, deposit of {bag.name} failed: {exc}"
            return


def _undeposited_earlier_versions(bag: Path, url: str) -> list[Path]:
    """Earlier versions of ``bag`` (``<id>.v1`` ... beside it) an OCFL target does not hold yet.

    An OCFL object takes its versions in order only, so a record whose earlier bags were never
    deposited there gets them first, oldest first; other targets hold each bag on its own.
    """
    from pipeline.deposit import open_target
    from pipeline.deposit.base import split_bag_name

    parsed = split_bag_name(bag.name)
    if parsed is None or not url.startswith("ocfl:"):
        return []
    target = open_target(url)
    earlier = [bag.parent / f"{parsed[0]}.v{n}" for n in range(1, parsed[1])]
    return [b for b in earlier if (b / "bagit.txt").is_file() and target.locate(b.name) is None]
