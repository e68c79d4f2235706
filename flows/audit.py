"""The audit flow: one Prefect task per batch of bags, a table artifact per run, an event and a failed run on damage.

The archival work is :mod:`pipeline.audit`; this module only sequences it.  Bags are claimed a
batch at a time through the ledger (so several flow runs, on several machines, share the work),
each batch is checked in its own task, several at once on the flow's task runner, and the run ends with

* a table artifact under the key ``strongroom-audit`` (one row per damaged file and a summary
  row; Prefect keeps every run's table under that key, which is the audit history),
* on damage, the Prefect event ``strongroom.audit.damage`` (attach an automation to notify a
  curator) and a *failed* flow run, so damage is impossible to miss in the UI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from flows.settings import apply_defaults, ledger_environment

apply_defaults()

from prefect import flow, task  # noqa: E402 - settings must be in the environment first
from prefect.artifacts import acreate_table_artifact  # noqa: E402
from prefect.cache_policies import NO_CACHE  # noqa: E402
from prefect.events import emit_event  # noqa: E402
from prefect import State  # noqa: E402
from prefect.futures import PrefectFuture, as_completed  # noqa: E402
from prefect.states import Completed, Failed  # noqa: E402

from pipeline.audit import report as audit_report  # noqa: E402
from pipeline.audit import repair_report  # noqa: E402
from pipeline.audit.repair import RepairOptions, RepairReport, repair_run  # noqa: E402
from pipeline.audit import (  # noqa: E402
    AuditOptions, AuditReport, BagAudit, audit_batch, claim_batches, parse_duration)
from pipeline.errors import LedgerError  # noqa: E402
from pipeline.ledger import LEDGER_ENV, BagReference, Ledger, utcnow  # noqa: E402

ARTIFACT_KEY = "strongroom-audit"
DAMAGE_EVENT = "strongroom.audit.damage"
REPAIR_ARTIFACT_KEY = "strongroom-repair"
REPAIR_FAILED_EVENT = "strongroom.repair.failed"
#: Bags per task.  A Prefect task run costs 0.2-0.4 s of API round trips here (the library's own
#: batch costs a few milliseconds), and threads checking small bags side by side only contend for
#: the GIL: 1,000 small bags took 4.0-4.6 s as one task, 7-8.5 s as 4-10 tasks on 4 threads.
FLOW_BATCH_SIZE = 1000
#: Bytes per task (every copy counted; at least one bag): large bags still get a task each, so
#: ``workers`` overlap their reads, and a batch is a fraction of a second of hashing.
FLOW_BATCH_BYTES = 64 << 20


class Batch:
    """A batch of claimed bags as one task parameter that Prefect does not look inside.

    Prefect visits every list, tuple and dataclass in a task's parameters looking for futures;
    for 1,000 claimed bags that took 0.5 s of the flow's 4-5 s.  ``prefect.utilities.annotations
    .quote`` would skip it too, but reaches Dask workers as a bare tuple.
    """

    __slots__ = ("bags",)

    def __init__(self, bags: list[BagReference]) -> None:
        self.bags = bags

    @property
    def first(self) -> str:
        """The first bag's name (task runs are named after it)."""
        return self.bags[0].name if self.bags else "-"

    @property
    def more(self) -> int:
        """How many bags follow the first."""
        return max(0, len(self.bags) - 1)


@task(name="audit-batch", task_run_name="audit {batch.first} (+{batch.more} more)", cache_policy=NO_CACHE)
def audit_batch_task(bags_dir: str, run_id: str, batch: Batch, lease_seconds: float, flow_ledger: str,
                     sqlite_url: str | None = None) -> list[BagAudit]:
    """Check every copy of each claimed bag of a batch; their events are in the ledger when the task ends.

    The task opens the ledger itself: it may run in a thread or in another process (a Dask
    worker), where no connection can follow it.  A SQLite ledger's URL (a path, no secret) is
    passed along; any other ledger comes from ``$STRONGROOM_LEDGER`` in the worker's environment,
    and a worker that would open a different ledger than the flow's (``flow_ledger``, password
    masked) refuses rather than audit against the wrong reference.
    """
    from pathlib import Path

    with Ledger.open(sqlite_url, bags_dir=Path(bags_dir)) as ledger:
        if ledger.url != flow_ledger:
            raise LedgerError(f"this task worker's ledger is {ledger.url} but the flow's is {flow_ledger}: "
                              f"set {LEDGER_ENV} in the workers' environment")
        return audit_batch(ledger, run_id, batch.bags, lease_seconds=lease_seconds)


@flow(name="strongroom-audit", log_prints=False)
async def audit_flow(bags_dir: str = "bags", older_than: str | None = "90d", limit: int | None = None,
                     max_bytes: int | None = None, lease_seconds: float = 300.0, workers: int = 4,
                     batch_size: int = FLOW_BATCH_SIZE, batch_bytes: int = FLOW_BATCH_BYTES,
                     repair: bool = False) -> State[Any]:
    """Audit the bags due for a check; fail the run (after reporting) when any bag is damaged.

    With ``repair``, damaged bags are repaired right after the check from copies verified good
    (:mod:`pipeline.audit.repair`, starting from the audit's own checks), a table artifact under
    ``strongroom-repair`` lists what was repaired, the event ``strongroom.repair.failed`` is emitted
    when something could not be, and the run fails only then.

    Bags are claimed and checked in batches of up to ``batch_size`` bags and ``batch_bytes``
    (always at least one bag; see :class:`~pipeline.audit.AuditOptions`), one task per batch,
    whose events are committed together when it ends; up to ``workers`` tasks run at once on the
    flow's task runner (threads by default; a Dask runner spreads them over
    processes).  A batch is claimed through the ledger's lease only when a worker is free to
    check it, so the run's ``limit`` and ``max_bytes`` hold exactly and a claim never waits in a
    queue while its lease runs out; other flow runs and ``strongroom audit`` processes share the
    work through the same claims.

    The ledger is ``$STRONGROOM_LEDGER``, else the SQLite ledger in ``bags_dir``.  It is not a
    parameter: Prefect stores and shows every flow run's parameters, and a ledger URL may hold a
    password (:func:`run_audit_flow` takes a URL and passes it through the environment).

    The flow is ``async`` only for Prefect's sake: its synchronous engine joins the flow run's
    heartbeat thread at the end of every run, which costs up to a second whatever the run did
    (0.9 s measured, more than Strongroom's whole audit of 300 small bags).  Call it with
    ``asyncio.run(audit_flow(...))``, or use :func:`run_audit_flow`.  The work itself is
    synchronous (the ledger, the task futures) and runs in a thread, off the engine's loop.
    """
    options = AuditOptions(older_than=parse_duration(older_than) if older_than else None,
                           limit=limit, max_bytes=max_bytes, lease_seconds=lease_seconds,
                           batch_size=batch_size, batch_bytes=batch_bytes)
    report = await asyncio.to_thread(_audit, bags_dir, options, workers)
    if repair and report.damaged:
        repaired = await asyncio.to_thread(repair_task, bags_dir, report, lease_seconds)
        return await _conclude(report, repaired)
    return await _conclude(report)


@task(name="repair-damaged", cache_policy=NO_CACHE)
def repair_task(bags_dir: str, report: AuditReport, lease_seconds: float) -> RepairReport:
    """Repair the audit's damaged bags from its checks (each bag claimed in the ledger meanwhile)."""
    from pathlib import Path

    damaged = report.damaged
    with Ledger.open(bags_dir=Path(bags_dir)) as ledger:
        return repair_run(ledger, [b.name for b in damaged],
                          RepairOptions(bags_dir=Path(bags_dir), lease_seconds=lease_seconds),
                          checks={b.name: b.checks for b in damaged})


def _audit(bags_dir: str, options: AuditOptions, workers: int) -> AuditReport:
    """The flow's work: claim a batch whenever a worker is free, check it in a task; the run's report."""
    from pathlib import Path

    lease_seconds = options.lease_seconds
    with Ledger.open(bags_dir=Path(bags_dir)) as ledger:
        run_id = ledger.start_run(options.as_dict())
        report = AuditReport(run_id, ledger.url, ledger.run_started_at(run_id), options)
        claims = claim_batches(ledger, run_id, options)
        running: list[PrefectFuture[list[BagAudit]]] = []
        claimed: dict[str, int] = {}  # bag name -> claim order, the order the report lists bags in
        sqlite_url = (ledger.engine.url.render_as_string(hide_password=False)
                      if ledger.engine.dialect.name == "sqlite" else None)
        while True:
            batch = next(claims, None) if len(running) < max(1, workers) else None
            if batch is not None:
                first = len(claimed)
                claimed.update((bag.name, first + i) for i, bag in enumerate(batch))
                running.append(audit_batch_task.submit(bags_dir, run_id, Batch(batch), lease_seconds,
                                                       ledger.url, sqlite_url))
                continue
            if not running:
                break
            done = next(as_completed(running))
            running.remove(done)
            report.bags.extend(done.result())
        ledger.finish_run(run_id)
    report.bags.sort(key=lambda b: claimed[b.name])
    report.finished_at = utcnow()
    return report


def run_audit_flow(bags_dir: str = "bags", *, ledger_url: str | None = None, older_than: str | None = "90d",
                   limit: int | None = None, max_bytes: int | None = None, lease_seconds: float = 300.0,
                   workers: int = 4, batch_size: int = FLOW_BATCH_SIZE,
                   batch_bytes: int = FLOW_BATCH_BYTES, repair: bool = False) -> State[Any]:
    """Run :func:`audit_flow` on the ledger at ``ledger_url`` and return its final state.

    ``ledger_url`` reaches the flow through ``$STRONGROOM_LEDGER`` for the length of the run (then
    the variable is restored), never through Prefect, which would keep it with the flow run.
    Callable from plain code and from code already inside an event loop (a Jupyter notebook):
    there the flow runs on a loop of its own in another thread, and this call waits for it.
    """
    with ledger_environment(ledger_url):
        # With return_state=True Prefect's coroutine yields the final state (its stubs say otherwise).
        run = cast("Coroutine[Any, Any, State[Any]]",
                   audit_flow(bags_dir, older_than, limit, max_bytes, lease_seconds, workers, batch_size, batch_bytes,
                              repair, return_state=True))
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # no loop here: the usual case
            return asyncio.run(run)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="strongroom-audit") as pool:
            return pool.submit(asyncio.run, run).result()


async def _conclude(report: AuditReport, repaired: RepairReport | None = None) -> State[Any]:
    """Publish the artifact; on damage emit the event and return a Failed state carrying the report.

    After a repair: its own artifact too, ``strongroom.repair.failed`` when anything is left
    damaged, and a Completed state when everything was repaired.
    """
    result = audit_report.as_json(report)
    await acreate_table_artifact(key=ARTIFACT_KEY, table=audit_report.artifact_rows(report),
                                 description=audit_report.summary_line(report))
    if not report.damaged:
        return Completed(message=audit_report.summary_line(report), data=result)
    if repaired is not None:
        return await _conclude_repair(report, repaired, result)
    emit_event(
        event=DAMAGE_EVENT,
        resource={"prefect.resource.id": f"strongroom.audit.{report.run_id}",
                  "prefect.resource.name": "Strongroom fixity audit"},
        payload={"run_id": report.run_id, "summary": result["summary"],
                 "damaged": [{"bag": b.name, "findings": [f"{f.code} {f.path}" for c in b.checks
                                                          for f in c.findings]} for b in report.damaged],
                 "at": dt.datetime.now(dt.timezone.utc).isoformat()},
    )
    return Failed(message=audit_report.summary_line(report), data=result)


async def _conclude_repair(report: AuditReport, repaired: RepairReport, result: dict[str, Any]) -> State[Any]:
    """The repair's artifact, the failure event when something is left damaged, the run's final state."""
    result["repair"] = repair_report.as_json(repaired)
    line = f"{audit_report.summary_line(report)}; {repair_report.summary_line(repaired)}"
    await acreate_table_artifact(key=REPAIR_ARTIFACT_KEY, table=repair_report.artifact_rows(repaired),
                                 description=repair_report.summary_line(repaired))
    if repaired.exit_code == 0:
        return Completed(message=line, data=result)
    emit_event(
        event=REPAIR_FAILED_EVENT,
        resource={"prefect.resource.id": f"strongroom.audit.{report.run_id}",
                  "prefect.resource.name": "Strongroom repair"},
        payload={"run_id": report.run_id, "summary": result["repair"]["summary"],
                 "unrepaired": [{"bag": b.name, "outcome": b.outcome,
                                 "files": [r.path or "(bag)" for r in b.refusals], "problems": b.problems}
                                for b in repaired.bags if not b.ok],
                 "at": dt.datetime.now(dt.timezone.utc).isoformat()},
    )
    return Failed(message=line, data=result)
