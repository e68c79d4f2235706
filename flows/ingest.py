"""The ingest flow: one Prefect task per record (never per file); a table artifact of the run.

The archival work is ``pipeline.ingest.ingest_record``; this module only sequences it, so the
same ingest runs identically from a script, a test or a deployment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows.settings import apply_defaults

apply_defaults()

from prefect import flow, task  # noqa: E402 - settings must be in the environment first
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.futures import as_completed  # noqa: E402

from pipeline.ingest import (  # noqa: E402
    IngestOptions,
    IngestReport,
    IngestResult,
    duplicate_identifiers,
    ingest_record,
    prepare_bags_dir,
    register_result,
)
from pipeline.records import discover_records  # noqa: E402

ARTIFACT_KEY = "strongroom-ingest"
#: Set by the CLI in this process to show progress; never a flow parameter (not serialisable).
_on_result: Callable[[IngestResult], None] | None = None


def set_progress(callback: Callable[[IngestResult], None] | None) -> None:
    """Call ``callback`` in this process as each record finishes (used for the terminal display)."""
    global _on_result
    _on_result = callback


@task(name="ingest-record", task_run_name="ingest {record_path.name}")
def ingest_record_task(record_path: Path, bags_dir: Path, algorithms: tuple[str, ...],
                       use_ledger: bool,
                       deposit_to: tuple[str, ...] = ()) -> IngestResult:
    """Ingest one record (and deposit its bag where asked); failures come back as results."""
    result = ingest_record(record_path, bags_dir, IngestOptions(algorithms=algorithms))
    if result.bag is None or not (use_ledger or deposit_to):
        return result
    # The ledger is opened only once there is a bag to register: a failed record writes nothing.
    ledger = _open_ledger(bags_dir) if use_ledger else None
    try:
        if ledger is not None:
            register_result(result, ledger)
        if result.outcome != "failed" and deposit_to:
            _deposit(result, deposit_to, ledger)
        return result
    finally:
        if ledger is not None:
            ledger.close()


@flow(name="strongroom-ingest", log_prints=False)
def ingest_flow(records: Sequence[str] = (), records_dir: str | None = "records", bags_dir: str = "bags",
                algorithms: Sequence[str] = ("sha512", "sha256"), use_ledger: bool = True,
                deposit_to: Sequence[str] = ()) -> dict[str, Any]:
    """Ingest the given record files (or every record under ``records_dir``) into ``bags_dir``.

    The ledger is ``$STRONGROOM_LEDGER`` or the SQLite ledger in ``bags_dir``: its URL is never a
    parameter, since Prefect keeps and shows parameters (see ``flows.settings.ledger_environment``).
    """
    bags = Path(bags_dir)
    paths = [Path(r) for r in records] or discover_records(Path(records_dir or "records"))
    prepare_bags_dir(bags)
    clashes = duplicate_identifiers(paths)
    results: dict[Path, IngestResult] = {p: IngestResult(p, "failed", error=e) for p, e in clashes.items()}
    todo = [p for p in paths if p not in clashes]
    futures = [ingest_record_task.submit(p, bags, tuple(algorithms), use_ledger, tuple(deposit_to))
               for p in todo]
    for future in as_completed(futures):
        result = future.result()
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
        try:
            deposit_bag(result.bag, url, ledger=ledger)
        except StrongroomError as exc:
            result.outcome, result.error = "failed", f"bag {result.bag.name} made, deposit failed: {exc}"
            return
