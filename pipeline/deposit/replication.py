"""Deposit one bag into one target and record the replication in the fixity ledger.

This is what ``strongroom deposit``, the deposit flow and ``strongroom ingest --deposit-to`` call.
The target copies the bag and verifies the copy at the destination before it publishes it; here we
add what is the same for every target: retries with backoff for the failures that are safe to
retry (:class:`~pipeline.errors.RetryableDepositError`: the network, throttling) and only those, a
limit on parallel deposits per target within this process, and the ledger's location and PREMIS
replication (``rep``) event once the copy is proven.
"""

from __future__ import annotations

import datetime as dt
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pipeline.deposit import open_target
from pipeline.bag.tagfiles import manifest_algorithms
from pipeline.deposit.base import DepositResult, Target, bag_expectations, bag_identity, mismatch
from pipeline.errors import BagInvalidError, DepositMismatchError, RetryableDepositError

if TYPE_CHECKING:
    from pipeline.ledger import Ledger
    from pipeline.premis import PremisEvent

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How often, and how patiently, a deposit is retried after a failure safe to retry."""

    attempts: int = 4
    first_delay: float = 1.0
    factor: float = 2.0
    max_delay: float = 30.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based): exponential, jittered."""
        base = min(self.max_delay, self.first_delay * self.factor ** (attempt - 1))
        return base * (0.5 + random.random() / 2)  # jitter: parallel deposits do not retry in step


def deposit_bag(bag: Path, url: str, *, ledger: Ledger | None = None, retry: RetryPolicy = RetryPolicy(),
                sleep: Callable[[float], None] = time.sleep, source_verified: bool = False) -> DepositResult:
    """Deposit ``bag`` at the target ``url``, proven identical there, and record it in ``ledger``.

    The same bag twice is a no-op (outcome ``unchanged``).  Raises DepositMismatchError when the
    copy differs from the bag or the target holds a different bag under that name (a failed ``rep``
    event is recorded), RetryableDepositError when retries are exhausted, DepositError otherwise;
    LedgerError when a ledger is given but does not know the bag (register it first).
    """
    target = open_target(url)
    name, _ = bag_identity(bag)
    if ledger is not None:
        ledger.bag(name)  # fail before copying anything if the ledger cannot record the result
    if not source_verified:  # ingest has just verified a bag it made (twice): no third read
        check_source(bag)
    try:
        with _slot(target):
            result = _with_retries(lambda: target.put(bag), retry, sleep)
        if not result.verified:
            expected = bag_expectations(bag)
            findings = target.verify(name, expected)
            if findings:
                raise mismatch(result.location, findings, "the copy does not match the bag's manifests")
            result = result.model_copy(update={"verified": True})
    except DepositMismatchError as exc:
        if ledger is not None:
            ledger.add_event(name, _event(name, exc.location, outcome="fai", detail=str(exc)))
        raise
    if ledger is not None:
        _record(ledger, name, result, bag)
    return result


def check_source(bag: Path) -> None:
    """Raise BagInvalidError when ``bag`` itself does not match its own manifests.

    Every payload and tag file is re-read and hashed (the bag validator, streamed) before any copy
    is made or an already held copy is called identical: a damaged source would otherwise be
    blamed on the copy (DEP004 and a failed replication event), or an ``unchanged`` copy reported
    verified against digests nobody read.  Nothing is recorded: no copy was at fault.
    """
    from pipeline.bag.validator import validate_bag

    report = validate_bag(bag, depth="full")
    if not report.valid:
        raise BagInvalidError(bag, report.errors)


def _with_retries(action: Callable[[], T], retry: RetryPolicy, sleep: Callable[[float], None]) -> T:
    for attempt in range(1, max(1, retry.attempts) + 1):
        try:
            return action()
        except RetryableDepositError:
            if attempt >= retry.attempts:
                raise
            sleep(retry.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


_slots: dict[str, threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


@contextmanager
def _slot(target: Target) -> Iterator[None]:
    """At most ``target.max_concurrency`` deposits into one target at once in this process."""
    with _slots_lock:
        semaphore = _slots.setdefault(target.url, threading.BoundedSemaphore(max(1, target.max_concurrency)))
    with semaphore:
        yield


def _record(ledger: Ledger, name: str, result: DepositResult, bag: Path) -> None:
    """Location and ``rep`` event; an unchanged copy the ledger already knows adds nothing."""
    if result.outcome == "unchanged" and result.location in ledger.locations(name):
        return
    what = "Replicated" if result.outcome == "deposited" else "Found an identical copy already held"
    algorithms = ", ".join(manifest_algorithms(bag) + manifest_algorithms(bag, tag=True))
    ledger.add_location(name, result.location)
    ledger.add_event(name, _event(
        name, result.location, outcome="suc",
        detail=(f"{what}: {result.files} files, {result.bytes} bytes; every file re-read at the "
                f"destination and compared with the bag's manifests ({algorithms})"),
    ))


def _event(name: str, location: str, *, outcome: Literal["suc", "fai"], detail: str) -> PremisEvent:
    from pipeline.premis import PremisEvent, strongroom_agent

    return PremisEvent(event_type="rep",
                       date_time=dt.datetime.now(dt.timezone.utc),
                       detail=f"Deposit of bag {name} to {location}", outcome=outcome, outcome_detail=detail,
                       object_ids=(name,), agent_ids=(strongroom_agent().identifier,))


def deposit_row(bag: Path, url: str, *, ledger_url: str | None = None, use_ledger: bool = True,
                retry: RetryPolicy = RetryPolicy()) -> dict[str, object]:
    """Deposit one bag and return a JSON-ready row; a failure is a row too, never an exception.

    This is the unit of work of ``strongroom deposit`` and of the deposit flow's tasks: one bad bag
    does not stop the others.  The ledger (``ledger_url``, else ``$STRONGROOM_LEDGER``, else SQLite
    beside the bag) is opened for this bag only, so tasks in threads or processes share nothing.
    """
    from pipeline.errors import StrongroomError

    row: dict[str, object] = {"bag": bag.name, "target": url, "outcome": "failed", "location": None,
                              "files": 0, "bytes": 0, "verified": False, "detail": "", "error": None}
    ledger = None
    try:
        if use_ledger:
            from pipeline.ledger import Ledger

            ledger = Ledger.open(ledger_url, bags_dir=bag.resolve().parent)
        result = deposit_bag(bag, url, ledger=ledger, retry=retry)
        row.update(result.model_dump(exclude={"bag"}))
    except StrongroomError as exc:
        row["error"] = str(exc)
    finally:
        if ledger is not None:
            ledger.close()
    return row


def summarise(rows: list[dict[str, object]]) -> dict[str, Any]:
    """The report of a deposit run: rows in bag order, counts per outcome, the process exit code."""
    counts = {k: sum(1 for r in rows if r["outcome"] == k) for k in ("deposited", "unchanged", "failed")}
    return {"bags": rows, **counts, "exit_code": 1 if counts["failed"] else 0}
