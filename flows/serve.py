"""``strongroom serve``: the ingest and rolling-audit deployments on cron schedules, in this process.

``prefect.serve`` runs the schedules only while this process lives (``prefect.yaml`` plus a work
pool and ``prefect worker start`` is the form for other machines; it describes the same two
deployments).  Ingest "watches" the records directory by running on a short cron: ingest is
idempotent (an unchanged record makes no new bag), so each run picks up only what is new.
On SIGTERM or Ctrl-C Prefect stops the runner, pauses the served schedules (nobody would run
them) and this function returns.

The ledger URL is never a flow parameter - Prefect shows parameters in its UI and API, and a
PostgreSQL URL may carry a password - it reaches the flow runs through ``STRONGROOM_LEDGER`` in
the environment they inherit.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows.settings import apply_defaults

apply_defaults()

from prefect import serve as prefect_serve  # noqa: E402 - settings must be in the environment first
from prefect.schedules import Cron  # noqa: E402

from pipeline.audit import AuditOptions  # noqa: E402
from pipeline.ledger import LEDGER_ENV  # noqa: E402

INGEST_DEPLOYMENT = "strongroom-ingest"
AUDIT_DEPLOYMENT = "strongroom-audit-nightly"


@dataclass(frozen=True)
class ServeOptions:
    """Where the records, bags and ledger are, and when ingest and audit run."""

    records_dir: Path
    bags_dir: Path
    ledger_url: str | None = None
    ingest_cron: str = "*/15 * * * *"
    audit_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    audit: AuditOptions = AuditOptions(older_than=None)
    audit_repair: bool = False


def deployments(options: ServeOptions) -> list[Any]:
    """The two runner deployments (ingest, audit) with their schedules and parameters."""
    from flows.audit import audit_flow
    from flows.ingest import ingest_flow

    records, bags = str(options.records_dir.resolve()), str(options.bags_dir.resolve())
    older = options.audit.older_than
    ingest = ingest_flow.to_deployment(
        name=INGEST_DEPLOYMENT, schedules=[Cron(options.ingest_cron, timezone=options.timezone)],
        parameters={"records_dir": records, "bags_dir": bags},
        description="Ingest new or changed records into bags (idempotent; runs often to watch the records).",
        tags=["strongroom", "ingest"])
    audit = audit_flow.to_deployment(
        name=AUDIT_DEPLOYMENT, schedules=[Cron(options.audit_cron, timezone=options.timezone)],
        parameters={"bags_dir": bags, "older_than": f"{int(older.total_seconds())}s" if older else None,
                    "limit": options.audit.limit, "max_bytes": options.audit.max_bytes,
                    "lease_seconds": options.audit.lease_seconds, "repair": options.audit_repair},
        description="Rolling fixity audit: bags not verified within the period, oldest first.",
        tags=["strongroom", "audit"])
    return [ingest, audit]


def serve(options: ServeOptions) -> None:
    """Register the deployments with the Prefect API and run their schedules until stopped."""
    if options.ledger_url:
        os.environ[LEDGER_ENV] = options.ledger_url  # inherited by the flow runs, never shown
    stop = threading.Event()

    def on_sigterm(signum: int, frame: object) -> None:
        stop.set()
        raise SystemExit(0)

    # Until Prefect's runner has started and installed its own handler, a SIGTERM must still mean
    # "stop cleanly"; whatever the SystemExit interrupted (Prefect builds pydantic schemas while it
    # starts, and pydantic wraps the exit in a SchemaError) is then not a failure.
    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        prefect_serve(*deployments(options), print_starting_message=True)
    except Exception:
        if not stop.is_set():
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)
