"""Audit runs: claim due bags from the ledger, check every copy, record the results and events.

The damage classes (AUD001-AUD008) are documented in :mod:`pipeline.audit`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
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
)
from pipeline.errors import StrongroomError, UsageError
from pipeline.findings import Finding
from pipeline.ledger import BagReference, CheckedBag, CheckRecord, FileReference, utcnow
from pipeline.premis import Outcome, PremisEvent, strongroom_agent

if TYPE_CHECKING:
    from pipeline.ledger import Ledger

# -- audit runs -------------------------------------------------------------------------------------

#: Bags claimed, checked and recorded together.  Per bag, a claim and a commit each cost a
#: transaction (an fsync of the ledger, ~5 ms here): batching small bags removes most of the
#: ledger's share of an audit.  3,636 small bags on PostgreSQL: 11.0 s in batches of 256 against
#: 13.4 s in batches of 32 (benchmarks/RESULTS.md); ``DEFAULT_BATCH_BYTES`` still bounds a batch.
DEFAULT_BATCH_SIZE = 256
#: A batch's bag names travel in SQL ``IN`` lists; SQLite builds may allow as few as 32,766
#: parameters in one statement.
MAX_BATCH_SIZE = 10_000
#: A batch stops growing at this many bytes (every copy counted): for bags this large the commit
#: is a small part of the read, and a small batch keeps claims shared fairly between processes.
DEFAULT_BATCH_BYTES = 8 << 20

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    """``90d``, ``12h``, ``30m``, ``45s`` or ``2w`` as a timedelta; UsageError otherwise."""
    m = _DURATION.match(text)
    if m is None:
        raise UsageError(f"'{text}': not a duration (use a number and s, m, h, d or w, e.g. 90d)")
    return dt.timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2)])


@dataclass(frozen=True)
class AuditOptions:
    """What one audit run covers.

    ``older_than``: only bags not checked within that time (oldest first); without it, every bag
    not yet checked since the run began.  ``limit``/``max_bytes`` bound the run (at least one bag
    is checked even if it alone exceeds ``max_bytes``, so a large bag is never starved).
    ``lease_seconds``: how long a claim on a bag outlives a process that died checking it.
    ``batch_size``/``batch_bytes``: how many bags (and at most how many bytes of them, but always
    one bag) are claimed, checked and recorded together - one claim, one reference query and one
    commit per batch.  A crash loses the checks of the batches in hand (at most two: one being
    checked, one being written), never a recorded one; their bags' claims lapse and the next run
    checks them.
    """

    older_than: dt.timedelta | None = None
    limit: int | None = None
    max_bytes: int | None = None
    lease_seconds: float = 300.0
    batch_size: int = DEFAULT_BATCH_SIZE
    batch_bytes: int = DEFAULT_BATCH_BYTES

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.batch_bytes < 1:
            raise UsageError("an audit batch holds at least one bag (batch size and bytes must be positive)")
        if self.batch_size > MAX_BATCH_SIZE:
            raise UsageError(f"an audit batch holds at most {MAX_BATCH_SIZE:,} bags")

    def as_dict(self) -> dict[str, object]:
        """The options as plain values (stored with the run, shown in reports)."""
        return {"older_than": self.older_than.total_seconds() if self.older_than else None,
                "limit": self.limit, "max_bytes": self.max_bytes, "lease_seconds": self.lease_seconds,
                "batch_size": self.batch_size, "batch_bytes": self.batch_bytes}


@dataclass(frozen=True)
class BagAudit:
    """One bag's check: the result for each of its locations."""

    name: str
    checks: tuple[LocationCheck, ...]

    @property
    def damaged(self) -> bool:
        """True when any copy of the bag is damaged."""
        return any(c.damaged for c in self.checks)

    @property
    def bytes_read(self) -> int:
        """Octets re-read over all copies."""
        return sum(c.bytes_read for c in self.checks)

    @property
    def files_checked(self) -> int:
        """Files re-read over all copies."""
        return sum(len(c.observed) for c in self.checks)


@dataclass
class AuditReport:
    """The result of one audit run (this process's share of it)."""

    run_id: str
    ledger: str
    started_at: dt.datetime
    options: AuditOptions
    bags: list[BagAudit] = field(default_factory=list)
    finished_at: dt.datetime | None = None

    @property
    def damaged(self) -> list[BagAudit]:
        """The bags with damage in at least one copy."""
        return [b for b in self.bags if b.damaged]

    @property
    def exit_code(self) -> int:
        """0 when every bag checked is intact, 1 when any is damaged."""
        return 1 if self.damaged else 0


def run_audit(ledger: Ledger, options: AuditOptions = AuditOptions(),
              on_bag: Callable[[BagAudit], None] | None = None) -> AuditReport:
    """Check every due bag, a batch of claims at a time, recording each batch as soon as it is checked.

    A batch's events are written to the ledger on a writer thread while the next batch is claimed
    and checked: the ledger's round trips and commit (a wait on the database server, or on an
    fsync) overlap the reading, and at most one batch is in the writer's hands at a time.  A run
    killed midway loses nothing it recorded: at most the batch being written and the batch in
    hand, whose claims lapse after ``lease_seconds``.  ``on_bag`` sees each bag once its check is
    in the ledger; when a check fails, the batch already checked is still recorded and reported
    before the error propagates.
    """
    run_id = ledger.start_run(options.as_dict())
    report = AuditReport(run_id, ledger.url, ledger.run_started_at(run_id), options)

    def recorded(results: list[BagAudit]) -> None:
        for result in results:
            report.bags.append(result)
            if on_bag is not None:
                on_bag(result)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit ledger writer") as writer:
        writing: Future[list[BagAudit]] | None = None
        try:
            for batch in claim_batches(ledger, run_id, options):
                results, checked = check_batch(ledger, run_id, batch, lease_seconds=options.lease_seconds)
                if writing is not None:
                    previous, writing = writing, None
                    recorded(previous.result())
                writing = writer.submit(_record, ledger, run_id, results, checked)
        finally:
            if writing is not None:  # the batch checked before an error is still recorded and reported
                recorded(writing.result())
    ledger.finish_run(run_id)
    report.finished_at = utcnow()
    return report


def _record(ledger: Ledger, run_id: str, results: list[BagAudit], checked: list[CheckedBag]) -> list[BagAudit]:
    ledger.record_checks(run_id, checked)
    return results


def claim_batches(ledger: Ledger, run_id: str, options: AuditOptions) -> Iterator[list[BagReference]]:
    """Claim the run's bags a batch at a time, oldest check first, within its ``limit`` and ``max_bytes``.

    A bag is due when it was not checked since the run began (or, with ``older_than``, within that
    time) and no other live run holds it: several processes sharing one ledger split the work and
    never check a bag twice in one round.  The byte budget counts every copy of a bag.  A batch
    is claimed only when the caller asks for it, so no claim waits in a queue while its lease runs.
    """
    cutoff = _cutoff(ledger.run_started_at(run_id), options)
    count = spent = 0
    while options.limit is None or count < options.limit:
        want = options.batch_size if options.limit is None else min(options.batch_size, options.limit - count)
        want = _fitting(ledger.due_sizes(not_checked_since=cutoff, count=want), options, count, spent)
        batch = ledger.claim_batch(run_id, not_checked_since=cutoff, lease_seconds=options.lease_seconds,
                                   count=want)
        if not batch:
            return
        taken: list[BagReference] = []
        batch_bytes, budget_hit = 0, False
        for bag in batch:  # what was actually claimed (another process may have taken the sizes seen)
            cost = bag.total_bytes * max(1, len(bag.locations))
            if options.max_bytes is not None and (count or taken) and spent + cost > options.max_bytes:
                budget_hit = True
                break
            if taken and batch_bytes + cost > options.batch_bytes:
                break
            taken.append(bag)
            batch_bytes, spent = batch_bytes + cost, spent + cost
        ledger.release_claims([b.name for b in batch[len(taken):]], run_id)
        count += len(taken)
        if taken:
            yield taken
        if budget_hit:
            return


def due_bytes(ledger: Ledger, options: AuditOptions) -> int:
    """Bytes (one copy each) of the bags a run starting now would check, as the ledger says now.

    A hint (for a progress bar's total): it claims nothing, and another process sharing the
    ledger may take some of these bags first.
    """
    sizes = ledger.due_sizes(not_checked_since=_cutoff(utcnow(), options), count=options.limit or 10**12)
    total = 0
    for size in sizes:
        if options.max_bytes is not None and total and total + size > options.max_bytes:
            break  # the run's budget, as claim_batches applies it (at least one bag)
        total += size
    return total


def _cutoff(started: dt.datetime, options: AuditOptions) -> dt.datetime:
    """Bags not checked since this are due: the run's start, or ``older_than`` before now."""
    return started if options.older_than is None else min(started, utcnow() - options.older_than)


def _fitting(sizes: list[int], options: AuditOptions, count: int, spent: int) -> int:
    """How many of the next due bags (of ``sizes``, one copy each) fit one batch and the run's budget."""
    n = batch = 0
    for size in sizes:
        if n and (batch + size > options.batch_bytes
                  or (options.max_bytes is not None and spent + batch + size > options.max_bytes)):
            break
        n, batch = n + 1, batch + size
    return max(1, n)


def audit_batch(ledger: Ledger, run_id: str, bags: Sequence[BagReference], *,
                lease_seconds: float = 300.0) -> list[BagAudit]:
    """Check every recorded copy of each claimed bag, then record all their events in one transaction.

    The results are returned only once they are committed: a check is reported when it is
    durable in the ledger, never before.
    """
    results, checked = check_batch(ledger, run_id, bags, lease_seconds=lease_seconds)
    ledger.record_checks(run_id, checked)
    return results


def check_batch(ledger: Ledger, run_id: str, bags: Sequence[BagReference], *,
                lease_seconds: float = 300.0) -> tuple[list[BagAudit], list[CheckedBag]]:
    """Check every recorded copy of each claimed bag (leases renewed meanwhile); nothing recorded yet.

    Returns the results and what :meth:`Ledger.record_checks` stores for them; a caller reports
    the results only once that is committed.
    """
    references = ledger.files_of([b.name for b in bags])
    results: list[BagAudit] = []
    checked: list[CheckedBag] = []
    with _keep_claims(ledger, [b.name for b in bags], run_id, lease_seconds):
        for bag in bags:
            result, records = _check_bag(run_id, bag, references[bag.name])
            results.append(result)
            checked.append(CheckedBag(bag.name, tuple(records), result.damaged, result.bytes_read))
    return results, checked


def _check_bag(run_id: str, bag: BagReference, reference: Mapping[str, FileReference]
               ) -> tuple[BagAudit, list[CheckRecord]]:
    algorithms = bag.algorithms or tuple(sorted({a for r in reference.values() for a in r.digests}))
    checks = tuple(check_location(url, bag.name, reference, algorithms) for url in bag.locations)
    if not checks:
        checks = (LocationCheck("", (Finding(code=BAG_MISSING, message="the ledger records no location"),)),)
    result = BagAudit(bag.name, checks)
    return result, [r for c in checks for r in check_events(bag.name, run_id, c, reference)]


@contextmanager
def _keep_claims(ledger: Ledger, names: Sequence[str], run_id: str, lease_seconds: float) -> Iterator[None]:
    """Renew the leases on a batch's bags while they are read (a check may outlast one lease)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(lease_seconds / 3):
            try:
                ledger.renew_claims(names, run_id, lease_seconds)
            except StrongroomError:
                pass  # the next beat tries again; at worst the lease lapses and another run re-checks

    thread = threading.Thread(target=beat, name=f"lease {names[0] if names else run_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def check_events(bag_name: str, run_id: str, check: LocationCheck,
                 reference: Mapping[str, FileReference]) -> list[CheckRecord]:
    """One PREMIS fixity-check event per file of the copy (and per bag-level problem)."""
    when, agent = utcnow(), strongroom_agent().identifier
    detail = (f"Fixity check (audit run {run_id}) of the copy at {check.location}: every file re-read "
              "and compared with the ledger's reference digests")
    by_path: dict[str, list[Finding]] = {}
    for f in check.findings:
        by_path.setdefault(f.path, []).append(f)

    def event(path: str, outcome: Outcome, outcome_detail: str, code: str | None) -> CheckRecord:
        premis = PremisEvent(identifier=f"urn:uuid:{uuid.uuid4()}", event_type="fix", date_time=when,
                             detail=detail, outcome=outcome, outcome_detail=outcome_detail,
                             object_ids=(path or bag_name,), agent_ids=(agent,))
        return CheckRecord(premis, check.location, path or None, code)

    records = [event("", "fai", f"{f.code} {CLASSES[f.code]}: {f.message}", f.code) for f in by_path.pop("", [])]
    if records and not check.observed:
        return records  # the bag itself could not be read: no file was checked
    for path in sorted(set(reference) | set(by_path)):
        found = by_path.get(path)
        if found:
            records += [event(path, "fai", _failure_detail(f), f.code) for f in found]
        else:
            records.append(event(path, "suc", _success_detail(reference[path], check.observed.get(path)), None))
    return records


def _success_detail(ref: FileReference, seen: tuple[int, dict[str, str]] | None) -> str:
    found = seen[1] if seen else {}
    return "; ".join(f"{alg} expected {value} found {found.get(alg, '-')}" for alg, value in sorted(ref.digests.items()))


def _failure_detail(f: Finding) -> str:
    return f"{f.code} {CLASSES[f.code]}: {f.message}; expected {f.expected or '-'}; found {f.found or '-'}"
