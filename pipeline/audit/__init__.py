"""The fixity audit: re-read every file of every copy of a bag and compare with the ledger.

A check of one copy reads every payload and tag file once (every algorithm in the same read),
compares sizes and digests with the ledger's reference and - for local copies that differ from it -
with the bag's current manifests, and names each problem with a stable code:

======  ================================================================================
AUD001  changed content: a payload file's bytes differ from the reference (same or larger size)
AUD002  missing file: a file of the bag is gone
AUD003  extra file: a file the bag never had
AUD004  truncated file: a payload file is shorter than the reference
AUD005  changed manifest or tag file (not explained by one of the payload findings)
AUD006  manifest and content changed together: the file matches its (rewritten) manifest lines
        but not the ledger - bag validation passes, only the ledger sees it
AUD007  bag missing: no bag at a recorded location
AUD008  bag unreadable: the bag (or one of its files) exists but cannot be read
======  ================================================================================

When a manifest differs from the reference only in lines that belong to files already reported
(AUD006 rewrites, AUD002 deletions, AUD003 additions), it is not reported again: one damage, one
finding.  The audit only reads: it never writes into a bag (repair does, below).

Layout: :mod:`pipeline.audit.check` reads and classifies one copy of a bag (and builds a bag's
reference when it is registered), :mod:`pipeline.audit.run` claims bags from the ledger, checks
them and records the results, :mod:`pipeline.audit.report` turns a run into text, JSON, HTML and
artifact rows.  :mod:`pipeline.audit.repair` heals damaged copies from copies verified good (each
kind of copy read and written by :mod:`pipeline.audit.copies`, sources chosen by
:mod:`pipeline.audit.sources`, reports by :mod:`pipeline.audit.repair_report`); it is the one part
of the audit that writes into bags, and it never changes the ledger's reference.  Imports run one way: the audit reads the ledger and the deposit targets; neither
knows anything of audits.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.audit.check import (
    BAG_MISSING,
    CHANGED,
    CLASSES,
    EXTRA,
    MISSING,
    REWRITTEN,
    TAG_CHANGED,
    TRUNCATED,
    UNREADABLE,
    LocationCheck,
    check_local,
    check_location,
    classify,
    reference_from_bag,
)
from pipeline.audit.run import (
    AuditOptions,
    AuditReport,
    BagAudit,
    audit_batch,
    check_events,
    claim_batches,
    due_bytes,
    parse_duration,
    run_audit,
)
from pipeline.ledger import Origin, bag_location

if TYPE_CHECKING:
    from pipeline.ledger import Ledger
    from pipeline.premis import PremisEvent

__all__ = [
    "AuditOptions",
    "AuditReport",
    "BAG_MISSING",
    "BagAudit",
    "CHANGED",
    "CLASSES",
    "EXTRA",
    "LocationCheck",
    "MISSING",
    "REWRITTEN",
    "TAG_CHANGED",
    "TRUNCATED",
    "UNREADABLE",
    "audit_batch",
    "check_events",
    "check_local",
    "check_location",
    "claim_batches",
    "classify",
    "due_bytes",
    "parse_duration",
    "reference_from_bag",
    "register_bag",
    "run_audit",
]


def register_bag(ledger: Ledger, bag: Path, *, origin: Origin, events: Sequence[PremisEvent] = ()) -> str:
    """Read ``bag`` and record it in ``ledger`` (files, sizes, digests, its location, ``events``).

    ``origin="ingest"``: Strongroom made the bag and has just verified its manifests, so payload
    digests are taken from them.  ``origin="register"``: the bag was made elsewhere; every payload
    file is re-read and must match its manifests, which then become the reference.
    Returns the bag's name.
    """
    content = reference_from_bag(bag, verify_payload=origin == "register")
    return ledger.register(content, bag_location(bag), origin=origin, events=events)
