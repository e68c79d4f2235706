"""The deposit flow: one Prefect task per bag (never per file); a table artifact of the run.

The work is :func:`pipeline.deposit.replication.deposit_row` (copy, verify at the destination,
ledger location and PREMIS ``rep`` event); this module only sequences it.  Retries are not
Prefect's here: ``deposit_bag`` already retries, with backoff, exactly the failures that are safe to
retry (network, throttling) and nothing else, so a Prefect retry on top would only multiply them.
Tasks run in a thread pool no larger than the target's concurrency limit (``max_concurrency``:
one writer per OCFL root, two for a filesystem, four for S3 unless the URL says otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from flows.settings import apply_defaults, ledger_environment

apply_defaults()

from prefect import flow, task  # noqa: E402 - settings must be in the environment first
from prefect.artifacts import create_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.futures import as_completed  # noqa: E402
from prefect.task_runners import ThreadPoolTaskRunner  # noqa: E402

from pipeline.deposit import open_target  # noqa: E402
from pipeline.deposit.replication import deposit_row, summarise  # noqa: E402

ARTIFACT_KEY = "strongroom-deposit"
#: Set by the CLI in this process to show progress; never a flow parameter (not serialisable).
_on_row: Callable[[dict[str, Any]], None] | None = None


def set_progress(callback: Callable[[dict[str, Any]], None] | None) -> None:
    """Call ``callback`` in this process as each bag finishes."""
    global _on_row
    _on_row = callback


@task(name="deposit-bag", task_run_name="deposit {bag.name}", cache_policy=NO_CACHE)
def deposit_bag_task(bag: Path, url: str, use_ledger: bool) -> dict[str, Any]:
    """Deposit one bag; a failure comes back as a row, so the other bags proceed."""
    return deposit_row(bag, url, use_ledger=use_ledger)  # the ledger: $STRONGROOM_LEDGER or beside the bag


@flow(name="strongroom-deposit", log_prints=False)
def deposit_flow(bags: Sequence[str], to: str, use_ledger: bool = True) -> dict[str, Any]:
    """Deposit every bag in ``bags`` at the target ``to``; returns the report (see ``summarise``).

    The ledger is ``$STRONGROOM_LEDGER``, else the SQLite ledger beside each bag.  It is not a
    parameter: Prefect stores and shows every flow run's parameters, and a ledger URL may hold a
    password.
    """
    paths = [Path(b) for b in bags]
    futures = [deposit_bag_task.submit(p, to, use_ledger) for p in paths]
    for future in as_completed(futures):
        if _on_row is not None:
            _on_row(future.result())
    report = summarise([f.result() for f in futures])  # in the order the bags were given
    create_table_artifact(key=ARTIFACT_KEY, table=[_artifact_row(r) for r in report["bags"]],
                          description=f"deposit to {to}: {report['deposited']} deposited, "
                                      f"{report['unchanged']} unchanged, {report['failed']} failed")
    return report


def run_deposit(bags: Sequence[str], to: str, *, ledger_url: str | None = None,
                use_ledger: bool = True) -> dict[str, Any]:
    """Run the flow with a thread pool sized to the target's concurrency limit.

    ``ledger_url`` reaches the tasks (threads of this process) through ``$STRONGROOM_LEDGER`` for
    the length of the run, never through Prefect, which would keep it with the flow run.
    """
    workers = open_target(to).max_concurrency
    runner: Any = ThreadPoolTaskRunner(max_workers=workers)
    with ledger_environment(ledger_url):
        return deposit_flow.with_options(task_runner=runner)(bags, to, use_ledger)



def _artifact_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("bag", "outcome", "location", "files", "bytes", "verified")} | {
        "error": row["error"] or ""}
