"""The fixity ledger, read-only: what the catalogue shows about copies, events and audits.

:meth:`pipeline.ledger.Ledger.open` migrates the schema (a write), so the web front opens its own
engine: SQLite through a ``mode=ro`` URI with ``PRAGMA query_only``, PostgreSQL with every
transaction ``READ ONLY``.  A request can therefore never change the ledger, whatever the code
above it does.  Only SELECTs are issued.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from pipeline.errors import LedgerError, UsageError
from pipeline.ledger import LEDGER_ENV, SQLITE_NAME, FileReference, display_url, resolve_url
from pipeline.ledger.schema import UTC, AuditRunRow, BagRow, DigestRow, EventRow, FileRow, LocationRow


@dataclass(frozen=True)
class CopyState:
    """One copy of a bag: where it is and its newest fixity check there."""

    url: str
    added_at: dt.datetime
    last_check: dt.datetime | None
    outcome: str | None  # "clean", "damaged" or None (never audited)


@dataclass(frozen=True)
class EventView:
    """One PREMIS event as the ledger holds it."""

    event_type: str
    date_time: dt.datetime
    detail: str
    outcome: str
    outcome_detail: str
    agents: tuple[str, ...]
    run_id: str | None
    location: str | None
    path: str | None
    code: str | None


@dataclass(frozen=True)
class AuditView:
    """One audit run's verdict on one copy of a bag."""

    run_id: str
    started_at: dt.datetime
    location: str
    files_checked: int
    failures: tuple[str, ...]  # "<code> <path>" of each failed check


class LedgerView:
    """A read-only connection to a fixity ledger."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = display_url(url)

    @classmethod
    def open(cls, url: str | None, bags_dir: Path) -> LedgerView | None:
        """The ledger at ``url`` (or ``$STRONGROOM_LEDGER``), else the SQLite one beside the bags.

        None when no URL is given and the bags directory has no ledger (bags made with
        ``--no-ledger``): the catalogue then says so.  A ledger named but not readable is an error.
        """
        named = bool(url or os.environ.get(LEDGER_ENV))
        real = resolve_url(url, bags_dir)
        if not named and not (bags_dir / SQLITE_NAME).is_file():
            return None
        try:
            engine = _engine(real)
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table("bags"):
                    raise LedgerError(f"cannot open the ledger {display_url(real)}: it holds no Strongroom ledger")
        except SQLAlchemyError as exc:
            raise LedgerError(f"cannot open the ledger {display_url(real)}: {_reason(exc)}") from None
        return cls(engine, real)

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, query: Any) -> Sequence[Any]:
        try:
            with self.engine.connect() as conn:
                return conn.execute(query).all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger {self.url}: {_reason(exc)}") from None

    def registered(self) -> dict[str, dt.datetime]:
        """bag name -> when it was registered, for every bag of the ledger."""
        return {name: when for name, when in self._rows(sa.select(BagRow.name, BagRow.registered_at))}

    def signature(self) -> tuple[int, int]:
        """How many bags the ledger holds and the highest id: changes whenever a bag is registered."""
        row = self._rows(sa.select(sa.func.count(BagRow.id), sa.func.max(BagRow.id)))[0]
        return int(row[0] or 0), int(row[1] or 0)

    def copies(self, names: Sequence[str]) -> dict[str, list[CopyState]]:
        """Every recorded copy of each bag, with its newest fixity check and that check's verdict.

        An audit gives every event of one check of a copy the same time, so the newest check
        failed when the newest failed event is as new as it.  Grouped in the database: a bag of
        many files audited many times is never read event by event here.
        """
        found: dict[str, list[CopyState]] = {n: [] for n in names}
        locations = self._rows(sa.select(BagRow.name, LocationRow.url, LocationRow.added_at)
                               .join(LocationRow, LocationRow.bag_id == BagRow.id)
                               .where(BagRow.name.in_(list(names))).order_by(LocationRow.id))

        def newest(*where: Any) -> dict[tuple[str, str], dt.datetime]:
            last = sa.func.max(EventRow.date_time)
            rows = self._rows(sa.select(BagRow.name, EventRow.location, last)
                              .join(EventRow, EventRow.bag_id == BagRow.id)
                              .where(BagRow.name.in_(list(names)), EventRow.event_type == "fix",
                                     EventRow.location.is_not(None), *where)
                              .group_by(BagRow.name, EventRow.location))
            return {(name, location): _utc(when) for name, location, when in rows}

        checked, failed = newest(), newest(EventRow.outcome != "suc")
        for name, url, added in locations:
            when = checked.get((name, url))
            verdict = None if when is None else "damaged" if failed.get((name, url)) == when else "clean"
            found[name].append(CopyState(url, added, when, verdict))
        return found

    def events(self, name: str) -> tuple[list[EventView], int]:
        """The bag's PREMIS history but the audits' fixity checks, oldest first; and how many of those."""
        rows = self._rows(sa.select(EventRow.event_type, EventRow.date_time, EventRow.detail, EventRow.outcome,
                                    EventRow.outcome_detail, EventRow.agent_ids, EventRow.run_id,
                                    EventRow.location, EventRow.path, EventRow.code)
                          .join(BagRow, BagRow.id == EventRow.bag_id)
                          .where(BagRow.name == name, EventRow.run_id.is_(None))
                          .order_by(EventRow.date_time, EventRow.id))
        audited = self._rows(sa.select(sa.func.count(EventRow.id)).join(BagRow, BagRow.id == EventRow.bag_id)
                             .where(BagRow.name == name, EventRow.run_id.is_not(None)))[0][0]
        return [EventView(r[0], r[1], r[2] or "", r[3], r[4] or "", _agents(r[5]), *r[6:]) for r in rows], audited

    def audits(self, name: str, *, failures_shown: int = 20) -> list[AuditView]:
        """Every audit run's verdict on each copy of the bag, oldest first (counted in the database)."""
        checks = sa.func.count(EventRow.id)
        key = (EventRow.run_id, AuditRunRow.started_at, EventRow.location)
        rows = self._rows(sa.select(*key, checks).join(BagRow, BagRow.id == EventRow.bag_id)
                          .join(AuditRunRow, AuditRunRow.id == EventRow.run_id)
                          .where(BagRow.name == name, EventRow.event_type == "fix")
                          .group_by(*key).order_by(AuditRunRow.started_at))
        failed = self._rows(sa.select(EventRow.run_id, EventRow.location, EventRow.code, EventRow.outcome,
                                      EventRow.path).join(BagRow, BagRow.id == EventRow.bag_id)
                            .where(BagRow.name == name, EventRow.event_type == "fix", EventRow.run_id.is_not(None),
                                   EventRow.outcome != "suc").order_by(EventRow.id))
        failures: dict[tuple[str, str], list[str]] = {}
        for run_id, location, code, outcome, path in failed:
            failures.setdefault((run_id, location or ""), []).append(f"{code or outcome} {path or '(the bag)'}")
        views = []
        for run_id, started, location, count in rows:
            found = failures.get((run_id, location or ""), [])
            shown = found[:failures_shown] + ([f"... and {len(found) - failures_shown} more"]
                                              if len(found) > failures_shown else [])
            views.append(AuditView(run_id, _utc(started), location or "", int(count), tuple(shown)))
        return views

    def files(self, name: str) -> list[FileReference]:
        """The bag's registered files with their reference digests, by path."""
        rows = self._rows(sa.select(FileRow.path, FileRow.kind, FileRow.size, DigestRow.algorithm, DigestRow.value)
                          .join(BagRow, BagRow.id == FileRow.bag_id)
                          .join(DigestRow, DigestRow.file_id == FileRow.id)
                          .where(BagRow.name == name).order_by(FileRow.path))
        found: dict[str, FileReference] = {}
        for path, kind, size, algorithm, value in rows:
            found.setdefault(path, FileReference(path, kind, size, {})).digests[algorithm] = value
        return list(found.values())


def _engine(url: str) -> Engine:
    """An engine that cannot write: SQLite opened read-only, PostgreSQL sessions READ ONLY."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if not database or database == ":memory:" or not Path(database).is_file():
            raise UsageError(f"{display_url(url)}: no such ledger file")
        # mode=ro: SQLite itself refuses every write on this connection.
        ro = f"sqlite:///file:{Path(database).resolve().as_posix()}?mode=ro&uri=true"
        engine = sa.create_engine(ro, connect_args={"timeout": 30.0})

        def read_only(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA query_only=ON")

        sa_event.listen(engine, "connect", read_only)
        return engine
    engine = sa.create_engine(url, pool_pre_ping=True)

    def pg_read_only(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cursor.close()
        dbapi_connection.commit()

    sa_event.listen(engine, "connect", pg_read_only)
    return engine


def _utc(value: Any) -> dt.datetime:
    """A timestamp from an aggregate (which SQLAlchemy returns untyped on SQLite) as UTC."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise LedgerError(f"not a timestamp in the ledger: {value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _agents(value: str | None) -> tuple[str, ...]:
    try:
        found = json.loads(value or "[]")
    except ValueError:
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
