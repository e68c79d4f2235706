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
from pipeline.ledger import LEDGER_ENV, SQLITE_NAME, display_url, resolve_url
from pipeline.ledger.schema import AuditRunRow, BagRow, DigestRow, EventRow, FileRow, LocationRow


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


@dataclass(frozen=True)
class FileView:
    """One file of a bag as registered: size and reference digests."""

    path: str
    kind: str
    size: int
    digests: dict[str, str]


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
        """Every recorded copy of each bag, with its newest fixity check and that check's verdict."""
        found: dict[str, list[CopyState]] = {n: [] for n in names}
        locations = self._rows(sa.select(BagRow.name, LocationRow.url, LocationRow.added_at)
                               .join(LocationRow, LocationRow.bag_id == BagRow.id)
                               .where(BagRow.name.in_(list(names))).order_by(LocationRow.id))
        checks = self._rows(sa.select(BagRow.name, EventRow.location, EventRow.date_time, EventRow.outcome)
                            .join(EventRow, EventRow.bag_id == BagRow.id)
                            .where(BagRow.name.in_(list(names)), EventRow.event_type == "fix",
                                   EventRow.location.is_not(None)))
        newest: dict[tuple[str, str], tuple[dt.datetime, bool]] = {}
        for name, location, when, outcome in checks:
            key = (name, location)
            last, failed = newest.get(key, (None, False))
            if last is None or when > last:
                newest[key] = (when, outcome != "suc")
            elif when == last:
                newest[key] = (when, failed or outcome != "suc")
        for name, url, added in locations:
            when, failed = newest.get((name, url), (None, False))
            found[name].append(CopyState(url, added, when, None if when is None else
                                         ("damaged" if failed else "clean")))
        return found

    def events(self, name: str) -> list[EventView]:
        """The bag's PREMIS history, oldest first."""
        rows = self._rows(sa.select(EventRow.event_type, EventRow.date_time, EventRow.detail, EventRow.outcome,
                                    EventRow.outcome_detail, EventRow.agent_ids, EventRow.run_id,
                                    EventRow.location, EventRow.path, EventRow.code)
                          .join(BagRow, BagRow.id == EventRow.bag_id).where(BagRow.name == name)
                          .order_by(EventRow.date_time, EventRow.id))
        return [EventView(r[0], r[1], r[2] or "", r[3], r[4] or "", _agents(r[5]), *r[6:]) for r in rows]

    def audits(self, name: str) -> list[AuditView]:
        """Every audit run's verdict on each copy of the bag, oldest first."""
        rows = self._rows(sa.select(EventRow.run_id, AuditRunRow.started_at, EventRow.location, EventRow.outcome,
                                    EventRow.code, EventRow.path)
                          .join(BagRow, BagRow.id == EventRow.bag_id)
                          .join(AuditRunRow, AuditRunRow.id == EventRow.run_id)
                          .where(BagRow.name == name, EventRow.event_type == "fix")
                          .order_by(AuditRunRow.started_at, EventRow.id))
        runs: dict[tuple[str, str], tuple[dt.datetime, int, list[str]]] = {}
        for run_id, started, location, outcome, code, path in rows:
            _, count, failures = runs.setdefault((run_id, location or ""), (started, 0, []))
            if outcome != "suc":
                failures.append(f"{code or outcome} {path or '(the bag)'}")
            runs[(run_id, location or "")] = (started, count + 1, failures)
        return [AuditView(run_id, started, location, count, tuple(failures))
                for (run_id, location), (started, count, failures) in runs.items()]

    def files(self, name: str) -> list[FileView]:
        """The bag's registered files with their reference digests, by path."""
        rows = self._rows(sa.select(FileRow.path, FileRow.kind, FileRow.size, DigestRow.algorithm, DigestRow.value)
                          .join(BagRow, BagRow.id == FileRow.bag_id)
                          .join(DigestRow, DigestRow.file_id == FileRow.id)
                          .where(BagRow.name == name).order_by(FileRow.path))
        found: dict[str, FileView] = {}
        for path, kind, size, algorithm, value in rows:
            found.setdefault(path, FileView(path, kind, size, {})).digests[algorithm] = value
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


def _agents(value: str | None) -> tuple[str, ...]:
    try:
        found = json.loads(value or "[]")
    except ValueError:
        return ()
    return tuple(str(a) for a in found) if isinstance(found, list) else ()


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
