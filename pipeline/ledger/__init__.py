"""The fixity ledger: reference digests, locations, PREMIS history and audit runs, apart from the bags.

A bag's own manifests cannot prove a bag intact: damage that rewrites a file and its manifest line
together passes validation.  The ledger keeps, in a database of its own, every file's size and
digests as registered, where each copy of the bag lives, every PREMIS event (ingest, fixity checks,
replications) and every audit run.

Storage: SQLite by default (``<bags>/.strongroom-ledger.sqlite``, no set-up) or any SQLAlchemy URL,
PostgreSQL for several machines auditing one collection (``--ledger URL`` / ``STRONGROOM_LEDGER``).
The schema is versioned with Alembic and brought to the newest version whenever a ledger is opened.

Concurrent audits claim bags with a *lease* (``claimed_by`` and ``lease_until`` columns) rather than
by holding ``SELECT ... FOR UPDATE`` row locks for the length of a check: a check of a large bag can
take hours, and a lease lets each bag's results commit in their own short transaction while the
claim stays visible to every other process, on SQLite as on PostgreSQL.  On PostgreSQL the claim
itself picks its row with ``FOR UPDATE SKIP LOCKED`` so that simultaneous claimers never block on,
or both take, the same bag.  A process that dies keeps its claim only until the lease runs out.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.errors import LedgerError, UsageError
from pipeline.ledger.schema import AuditRunRow, BagRow, DigestRow, EventRow, FileRow, LocationRow
from pipeline.premis import (
    AnyObject,
    PremisAgent,
    PremisEvent,
    PremisObject,
    PremisRelationship,
    PremisRepresentation,
    render_premis,
    strongroom_agent,
)

#: Name of the SQLite ledger kept next to the bags when no URL is given.
SQLITE_NAME = ".strongroom-ledger.sqlite"
#: How long a SQLite writer waits for another (thread or process) before giving up.
SQLITE_BUSY_SECONDS = 30.0
#: Environment variable naming the ledger URL.
LEDGER_ENV = "STRONGROOM_LEDGER"
Origin = Literal["ingest", "register"]
FileKind = Literal["payload", "tag"]
UTC = dt.timezone.utc
#: The events table for Core bulk inserts (the ORM's bulk path costs more than the insert itself).
_EVENTS = sa.Table("events", EventRow.metadata)
#: Serialises Alembic in this process (its context is module-global; see :func:`upgrade_to_head`).
_MIGRATION_LOCK = threading.RLock()
#: Threads of this process switch a fresh SQLite ledger to WAL one at a time (see :func:`_use_wal`).
_WAL_SWITCH_LOCK = threading.Lock()


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC (the ledger stores nothing else)."""
    return dt.datetime.now(UTC)


@dataclass(frozen=True)
class FileReference:
    """What the ledger holds for one file of a bag: the reference the audit compares with."""

    path: str
    kind: FileKind
    size: int
    digests: dict[str, str]
    #: "manifest" when the digests were read from the bag's manifests, "computed" when hashed.
    source: str = "manifest"
    #: The file's PRONOM identifier (``x-fmt/111``) as identified at ingest, if it was.
    puid: str | None = None


@dataclass(frozen=True)
class BagReference:
    """A registered bag as the ledger knows it."""

    name: str
    external_identifier: str | None
    profile: str | None
    origin: str
    algorithms: tuple[str, ...]
    total_bytes: int
    file_count: int
    registered_at: dt.datetime
    last_checked_at: dt.datetime | None = None
    last_outcome: str | None = None
    locations: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckRecord:
    """One fixity-check event of an audit, with the facts the ledger indexes besides PREMIS."""

    event: PremisEvent
    location: str
    path: str | None = None
    code: str | None = None


@dataclass(frozen=True)
class CheckedBag:
    """One bag's finished check, as :meth:`Ledger.record_checks` stores it."""

    name: str
    records: tuple[CheckRecord, ...]
    damaged: bool
    bytes_read: int


@dataclass(frozen=True)
class RegisteredContent:
    """Everything :meth:`Ledger.register_bag` stores about a bag's content."""

    name: str
    external_identifier: str | None
    profile: str | None
    algorithms: tuple[str, ...]
    files: tuple[FileReference, ...] = field(default_factory=tuple)


def display_url(url: str) -> str:
    """``url`` with any password masked, fit for logs and reports."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is shown as a placeholder, never raw
        return "<unparsable ledger URL>"


def resolve_url(url: str | None, bags_dir: Path | None) -> str:
    """The ledger URL to use: ``url``, else ``$STRONGROOM_LEDGER``, else SQLite next to the bags."""
    chosen = url or os.environ.get(LEDGER_ENV) or None
    if chosen:
        if chosen.startswith(("postgresql://", "postgres://")):
            # psycopg 3 is the driver Strongroom ships; SQLAlchemy would otherwise look for psycopg2.
            chosen = "postgresql+psycopg://" + chosen.split("://", 1)[1]
        _check_url(chosen)
        return chosen
    if bags_dir is None:
        raise UsageError(f"no ledger: pass --ledger URL, set {LEDGER_ENV}, or name the bags directory")
    if not bags_dir.is_dir():
        problem = "is not a directory" if os.path.lexists(bags_dir) else "bags directory does not exist"
        raise UsageError(f"{bags_dir}: {problem}")
    return f"sqlite:///{(bags_dir.resolve() / SQLITE_NAME).as_posix()}"


def _check_url(url: str) -> None:
    """UsageError when ``url`` is no database URL Strongroom can use (a mistyped --ledger)."""
    try:
        sa.engine.make_url(url).get_dialect()
    except SQLAlchemyError:
        raise UsageError(f"ledger URL {display_url(url)}: not a database URL Strongroom can use "
                         "(e.g. sqlite:///PATH or postgresql://USER@HOST/DATABASE)") from None


def upgrade_to_head(engine: Engine) -> None:
    """Bring the ledger behind ``engine`` to the newest Alembic revision of ``pipeline/ledger/migrations``.

    Alembic keeps its ``context`` and ``op`` as module globals, so two threads migrating at once
    corrupt each other's state: migrations in this process are serialised by a lock, and skipped
    when the database is already at head (one cheap query, the usual case).  Other processes are
    kept apart on PostgreSQL by the advisory lock taken in ``migrations/env.py``.
    """
    head = _head_revision()
    if _current_revision(engine) == head:
        return
    with _MIGRATION_LOCK:
        if _current_revision(engine) == head:  # another thread migrated while this one waited
            return
        from alembic import command

        config = _alembic_config()
        with engine.connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
            connection.commit()


def _alembic_config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).with_name("migrations")))
    return config


@functools.cache
def _head_revision() -> str | None:
    """The newest revision of the migrations shipped with Strongroom (read once per process)."""
    from alembic.script import ScriptDirectory

    with _MIGRATION_LOCK:
        head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    return str(head) if head is not None else None


def _current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for a database Alembic has never touched."""
    with engine.connect() as connection:
        if not sa.inspect(connection).has_table("alembic_version"):
            return None
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        return str(revision) if revision is not None else None


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets audits read while another process writes; the busy timeout makes writers queue
    # instead of failing at once; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_SECONDS * 1000)}")
    _use_wal(cursor)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _use_wal(cursor: Any) -> None:
    """Put the database in WAL mode (kept in the file: done once, by the first connection).

    SQLite answers "database is locked" at once, without calling the busy handler, when a
    connection asks for WAL while another holds a lock on a database still in rollback mode: the
    case of several tasks opening a fresh ledger together.  So the mode is read first (WAL is
    usually set already), threads of this process take turns to switch it, and a switch refused
    by another process is retried until the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_SECONDS
    pause = 0.005
    while True:
        try:
            if str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
                return
            with _WAL_SWITCH_LOCK:
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.25)


class Ledger:
    """A connection to one fixity ledger.  Open with :meth:`Ledger.open`; close or use ``with``."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = display_url(url)
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def open(cls, url: str | None = None, *, bags_dir: Path | None = None) -> Ledger:
        """Open (creating or migrating as needed) the ledger at ``url``; see :func:`resolve_url`."""
        real = resolve_url(url, bags_dir)
        try:
            sqlite = sa.engine.make_url(real).get_backend_name() == "sqlite"
            # The driver's own timeout covers the connection's first statements too.
            engine = sa.create_engine(real, pool_pre_ping=True,
                                      connect_args={"timeout": SQLITE_BUSY_SECONDS} if sqlite else {})
            if sqlite:
                sa_event.listen(engine, "connect", _sqlite_pragmas)
            upgrade_to_head(engine)
        except (SQLAlchemyError, OSError, ImportError) as exc:
            raise LedgerError(f"cannot open the ledger {display_url(real)}: {_reason(exc)}") from None
        return cls(engine, real)

    def close(self) -> None:
        """Release every connection."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction, committed on success; database errors become LedgerError."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger {self.url}: {_reason(exc)}") from None

    # -- registration -----------------------------------------------------------------------------

    def register(self, content: RegisteredContent, location: str, *, origin: Origin,
                 events: Sequence[PremisEvent] = ()) -> str:
        """Record a bag's ``content`` (files, sizes, digests), its ``location`` and ``events``.

        The ledger never reads a bag: the code that reads one builds ``content`` from it
        (:func:`pipeline.audit.register_bag`).  ``origin="ingest"`` means Strongroom made the bag
        and its manifests were just verified; ``origin="register"`` means the bag was made elsewhere
        and was re-read against its manifests (the origin is recorded).  Registering the same bag
        again adds only what is new (location, events); different content under a registered name
        is refused.  Returns the bag's name.
        """
        if origin not in ("ingest", "register"):
            raise UsageError(f"unknown registration origin {origin!r}")
        with self.session() as s:
            row = s.scalar(sa.select(BagRow).where(BagRow.name == content.name))
            if row is None:
                row = _insert_bag(s, content, origin)
            else:
                _check_same_content(s, row, content)
            _add_location(s, row, location)
            for event in events:
                _add_event(s, row, event)
        return content.name

    def add_location(self, bag_name: str, url: str) -> None:
        """Record that a copy of the bag lives at ``url`` (idempotent)."""
        with self.session() as s:
            _add_location(s, self._bag(s, bag_name), url)

    def add_event(self, bag_name: str, event: PremisEvent) -> None:
        """Append a PREMIS event to the bag's history (an event already recorded is not repeated)."""
        with self.session() as s:
            _add_event(s, self._bag(s, bag_name), event)

    def events(self, bag_name: str) -> list[PremisEvent]:
        """The bag's full PREMIS history, oldest first."""
        with self.session() as s:
            bag = self._bag(s, bag_name)
            rows = s.scalars(sa.select(EventRow).where(EventRow.bag_id == bag.id).order_by(EventRow.id))
            return [_event_from_row(r) for r in rows]

    def premis_xml(self, bag_name: str) -> bytes:
        """The bag's whole PREMIS history as one PREMIS 3 document: its files, events and agents."""
        events = self.events(bag_name)
        files = sorted(self.files(bag_name).values(), key=lambda f: f.path)
        inside = (PremisRelationship(type="structural", subtype="is included in", related=(bag_name,)),)
        objects: list[AnyObject] = [PremisObject(identifier=f.path, size=f.size, digests=f.digests, puid=f.puid,
                                                 relationships=inside) for f in files]
        objects.append(_bag_object(bag_name, [f.path for f in files], events))
        agents = {a.identifier: a for a in [strongroom_agent()]}
        for agent_id in (a for e in events for a in e.agent_ids if a not in agents):
            # The ledger keeps agent identifiers only; "name/version" is how Strongroom writes them.
            name, _, version = agent_id.partition("/")
            agents[agent_id] = PremisAgent(identifier=agent_id, name=name or agent_id, version=version or None)
        return render_premis(objects, events, list(agents.values()))

    def locations(self, bag_name: str) -> list[str]:
        """Every location recorded for the bag, in the order they were added."""
        with self.session() as s:
            bag = self._bag(s, bag_name)
            return list(s.scalars(sa.select(LocationRow.url).where(LocationRow.bag_id == bag.id)
                                  .order_by(LocationRow.id)))

    def bag(self, bag_name: str) -> BagReference:
        """The ledger's record of one bag (raises LedgerError when it is not registered)."""
        with self.session() as s:
            return _reference(s, self._bag(s, bag_name))

    def bags(self) -> list[BagReference]:
        """Every registered bag, by name."""
        with self.session() as s:
            return _references(s, list(s.scalars(sa.select(BagRow).order_by(BagRow.name))))

    def files(self, bag_name: str) -> dict[str, FileReference]:
        """The reference of every file of the bag, keyed by bag path."""
        with self.session() as s:
            bag = self._bag(s, bag_name)
            rows = s.execute(sa.select(FileRow.path, FileRow.kind, FileRow.size, DigestRow.algorithm,
                                       DigestRow.value, DigestRow.source, FileRow.puid)
                             .join(DigestRow, DigestRow.file_id == FileRow.id).where(FileRow.bag_id == bag.id))
            found: dict[str, FileReference] = {}
            for path, kind, size, algorithm, value, source, puid in rows:
                ref = found.setdefault(path, FileReference(path, _kind(kind), size, {}, source, puid))
                ref.digests[algorithm] = value
            return found

    def _bag(self, s: Session, bag_name: str) -> BagRow:
        row = s.scalar(sa.select(BagRow).where(BagRow.name == bag_name))
        if row is None:
            raise LedgerError(f"{bag_name}: not registered in the ledger {self.url}")
        return row

    # -- audits ------------------------------------------------------------------------------------

    def start_run(self, options: Mapping[str, object]) -> str:
        """Record the start of an audit run; return its identifier."""
        run_id = f"urn:uuid:{uuid.uuid4()}"
        with self.session() as s:
            s.add(AuditRunRow(id=run_id, started_at=utcnow(), host=socket.gethostname(), pid=os.getpid(),
                              status="running", options=json.dumps(dict(options), default=str),
                              bags_checked=0, bags_damaged=0, bytes_read=0))
        return run_id

    def finish_run(self, run_id: str, *, status: str = "finished") -> None:
        """Mark an audit run finished (a run killed midway stays ``running`` forever)."""
        with self.session() as s:
            s.execute(sa.update(AuditRunRow).where(AuditRunRow.id == run_id)
                      .values(status=status, finished_at=utcnow()))

    def run_started_at(self, run_id: str) -> dt.datetime:
        """When the audit run began."""
        with self.session() as s:
            run = s.get(AuditRunRow, run_id)
            if run is None:
                raise LedgerError(f"no audit run {run_id} in the ledger")
            return run.started_at

    def claim_next(self, run_id: str, *, not_checked_since: dt.datetime,
                   lease_seconds: float) -> BagReference | None:
        """Claim the bag checked longest ago (never checked first), or None when none is due.

        A bag is due when it was not checked since ``not_checked_since`` and no live lease holds
        it.  The claim lasts ``lease_seconds`` unless renewed (:meth:`renew_claim`).
        """
        claimed = self.claim_batch(run_id, not_checked_since=not_checked_since, lease_seconds=lease_seconds)
        return claimed[0] if claimed else None

    def due_sizes(self, *, not_checked_since: dt.datetime, count: int) -> list[int]:
        """The sizes (``total_bytes``) of the next ``count`` due bags, in claim order; claims nothing.

        A hint for sizing a batch before claiming it: another process may claim some of these
        bags first, so the claimer checks what it actually got.
        """
        with self.session() as s:
            return list(s.scalars(self._due(not_checked_since, utcnow()).with_only_columns(BagRow.total_bytes)
                                  .limit(count)))

    def claim_batch(self, run_id: str, *, not_checked_since: dt.datetime, lease_seconds: float,
                    count: int = 1) -> list[BagReference]:
        """Claim up to ``count`` due bags in one transaction, checked-longest-ago first (in that order).

        One statement claims the whole batch: on PostgreSQL its rows are picked ``FOR UPDATE SKIP
        LOCKED``, so simultaneous claimers take disjoint batches without waiting on one another.
        """
        now = utcnow()
        due = self._due(not_checked_since, now).limit(max(1, count)).with_for_update(skip_locked=True)
        lease = now + dt.timedelta(seconds=lease_seconds)
        with self.session() as s:
            ids = list(s.scalars(sa.update(BagRow).where(BagRow.id.in_(due.scalar_subquery()))
                                 .values(claimed_by=run_id, lease_until=lease).returning(BagRow.id)))
            if not ids:
                return []
            rows = list(s.scalars(sa.select(BagRow).where(BagRow.id.in_(ids))))
            return sorted(_references(s, rows), key=_claim_order)

    @staticmethod
    def _due(not_checked_since: dt.datetime, now: dt.datetime) -> sa.Select[Any]:
        """Bags not checked since ``not_checked_since`` and held by no live lease, in claim order."""
        return (sa.select(BagRow.id)
                .where(sa.or_(BagRow.last_checked_at.is_(None), BagRow.last_checked_at < not_checked_since))
                .where(sa.or_(BagRow.lease_until.is_(None), BagRow.lease_until < now))
                .order_by(BagRow.last_checked_at.asc().nulls_first(), BagRow.name))

    def renew_claim(self, bag_name: str, run_id: str, lease_seconds: float) -> bool:
        """Extend this run's lease on a bag; False when the claim was lost (lease ran out)."""
        return bool(self.renew_claims([bag_name], run_id, lease_seconds))

    def renew_claims(self, bag_names: Sequence[str], run_id: str, lease_seconds: float) -> int:
        """Extend this run's leases on ``bag_names`` in one statement; how many it still held."""
        with self.session() as s:
            result = s.execute(sa.update(BagRow).where(BagRow.name.in_(list(bag_names)), BagRow.claimed_by == run_id)
                               .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds)))
            return int(getattr(result, "rowcount", 0) or 0)

    def release_claims(self, bag_names: Sequence[str], run_id: str) -> None:
        """Give claimed bags back unchecked, in one statement."""
        if not bag_names:
            return
        with self.session() as s:
            s.execute(sa.update(BagRow).where(BagRow.name.in_(list(bag_names)), BagRow.claimed_by == run_id)
                      .values(claimed_by=None, lease_until=None))

    def claim_bags(self, bag_names: Sequence[str], holder: str, *, lease_seconds: float) -> list[str]:
        """Claim the named bags that no other live lease holds (a repair's claim); the names claimed.

        The same lease as an audit's (``claimed_by``/``lease_until``): while a repair holds a bag no
        audit claims it, and no other repair.  One conditional ``UPDATE``: on PostgreSQL a second
        claimer waits on the row and then finds it held; on SQLite writers take turns.
        """
        now = utcnow()
        with self.session() as s:
            free = sa.or_(BagRow.lease_until.is_(None), BagRow.lease_until < now, BagRow.claimed_by == holder)
            return list(s.scalars(sa.update(BagRow).where(BagRow.name.in_(list(bag_names)), free)
                                  .values(claimed_by=holder, lease_until=now + dt.timedelta(seconds=lease_seconds))
                                  .returning(BagRow.name)))

    def add_records(self, bag_name: str, records: Sequence[CheckRecord]) -> None:
        """Append events with the location, file and finding code they concern, in one transaction.

        How a repair records its evidence (recovery, fixity check of the source, quarantine); the
        bag's reference is never touched.
        """
        if not records:
            return
        with self.session() as s:
            bag = self._bag(s, bag_name)
            s.execute(sa.insert(_EVENTS), [_event_values(bag.id, r.event, run_id=None, location=r.location,
                                                         path=r.path, code=r.code) for r in records])

    def files_of(self, bag_names: Sequence[str]) -> dict[str, dict[str, FileReference]]:
        """:meth:`files` of several bags in one query (bag name -> path -> reference)."""
        found: dict[str, dict[str, FileReference]] = {name: {} for name in bag_names}
        with self.session() as s:
            rows = s.execute(sa.select(BagRow.name, FileRow.path, FileRow.kind, FileRow.size, DigestRow.algorithm,
                                       DigestRow.value, DigestRow.source)
                             .join(FileRow, FileRow.bag_id == BagRow.id)
                             .join(DigestRow, DigestRow.file_id == FileRow.id)
                             .where(BagRow.name.in_(list(bag_names))))
            for name, path, kind, size, algorithm, value, source in rows:
                files = found[name]
                ref = files.get(path)
                if ref is None:
                    ref = files[path] = FileReference(path, _kind(kind), size, {}, source)
                ref.digests[algorithm] = value
        return found

    def record_checks(self, run_id: str, checked: Sequence[CheckedBag]) -> None:
        """Store the checks of several bags - every event, outcomes, the run's tallies - in one transaction.

        All or nothing: a crash before the commit records none of them, and their claims lapse, so
        the next run checks them again; no bag is ever marked checked without its events.  One
        commit (one fsync of a SQLite ledger) per batch instead of one per bag.
        """
        if not checked:
            return
        now = utcnow()
        names = [c.name for c in checked]
        damaged = [c.name for c in checked if c.damaged]
        ours = BagRow.claimed_by == run_id
        with self.session() as s:
            # One statement marks the bags checked, releases this run's claims on them and gives
            # their ids; a write first, so that a SQLite transaction never has to upgrade a read.
            ids = dict(s.execute(sa.update(BagRow).where(BagRow.name.in_(names)).values(
                last_checked_at=now,
                last_outcome=sa.case((BagRow.name.in_(damaged), "damaged"), else_="clean"),
                claimed_by=sa.case((ours, sa.null()), else_=BagRow.claimed_by),
                lease_until=sa.case((ours, sa.null()), else_=BagRow.lease_until),
            ).returning(BagRow.name, BagRow.id).execution_options(synchronize_session=False)).tuples().all())
            for c in checked:
                if c.name not in ids:
                    raise LedgerError(f"{c.name}: not registered in the ledger {self.url}")
            events = [_event_values(ids[c.name], r.event, run_id=run_id, location=r.location, path=r.path,
                                    code=r.code) for c in checked for r in c.records]
            # Fresh identifiers: no look-up per event (a bag may hold tens of thousands of files).
            _insert_events(s, events)
            s.execute(sa.update(AuditRunRow).where(AuditRunRow.id == run_id).values(
                bags_checked=AuditRunRow.bags_checked + len(checked),
                bags_damaged=AuditRunRow.bags_damaged + len(damaged),
                bytes_read=AuditRunRow.bytes_read + sum(c.bytes_read for c in checked)))

    def run_summary(self, run_id: str) -> dict[str, Any]:
        """The recorded tallies of an audit run."""
        with self.session() as s:
            run = s.get(AuditRunRow, run_id)
            if run is None:
                raise LedgerError(f"no audit run {run_id} in the ledger")
            return {"id": run.id, "status": run.status, "started_at": run.started_at,
                    "finished_at": run.finished_at, "bags_checked": run.bags_checked,
                    "bags_damaged": run.bags_damaged, "bytes_read": run.bytes_read}


def bag_location(bag: Path) -> str:
    """The ``file://`` URL of a bag directory on this machine."""
    return bag.resolve().as_uri()


def _bag_object(bag_name: str, paths: Sequence[str], events: Sequence[PremisEvent]) -> PremisRepresentation:
    """The bag as a PREMIS representation: it includes its files; a later version has as source
    the version its modification event (``mod``/``mem``, written at ingest) names."""
    relationships = [PremisRelationship(type="structural", subtype="includes", related=tuple(paths))] if paths else []
    for event in events:
        sources = tuple(o for o in event.object_ids if o != bag_name)
        if event.event_type in ("mod", "mem") and bag_name in event.object_ids and sources:
            relationships.append(PremisRelationship(type="derivation", subtype="has source", related=sources,
                                                    events=(event.identifier,)))
    return PremisRepresentation(identifier=bag_name, relationships=tuple(relationships))


def _reason(exc: BaseException) -> str:
    # SQLAlchemy messages embed the statement and parameters; the first line says what went wrong.
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _kind(value: str) -> FileKind:
    return "payload" if value == "payload" else "tag"


def _reference(s: Session, row: BagRow) -> BagReference:
    return _references(s, [row])[0]


def _references(s: Session, rows: Sequence[BagRow]) -> list[BagReference]:
    """The references of ``rows``, their locations read in one query."""
    urls: dict[int, list[str]] = {row.id: [] for row in rows}
    for bag_id, url in s.execute(sa.select(LocationRow.bag_id, LocationRow.url)
                                 .where(LocationRow.bag_id.in_(list(urls))).order_by(LocationRow.id)):
        urls[bag_id].append(url)
    return [BagReference(row.name, row.external_identifier, row.profile, row.origin,
                         tuple(a for a in row.algorithms.split(",") if a), row.total_bytes, row.file_count,
                         row.registered_at, row.last_checked_at, row.last_outcome, tuple(urls[row.id]))
            for row in rows]


def _claim_order(bag: BagReference) -> tuple[bool, dt.datetime, str]:
    """The order bags are claimed in: never checked first, then checked longest ago, then by name."""
    return (bag.last_checked_at is not None, bag.last_checked_at or dt.datetime.min.replace(tzinfo=UTC), bag.name)


def _insert_bag(s: Session, content: RegisteredContent, origin: Origin) -> BagRow:
    row = BagRow(name=content.name, external_identifier=content.external_identifier,
                 profile=content.profile, origin=origin, algorithms=",".join(content.algorithms),
                 total_bytes=sum(f.size for f in content.files), file_count=len(content.files),
                 registered_at=utcnow())
    s.add(row)
    s.flush()
    if not content.files:
        return row
    # Core bulk inserts: one round trip per batch rather than one flush per file.
    ids = dict(s.execute(sa.insert(FileRow).returning(FileRow.path, FileRow.id, sort_by_parameter_order=True),
                         [{"bag_id": row.id, "path": f.path, "kind": f.kind, "size": f.size, "puid": f.puid}
                          for f in content.files]).tuples().all())
    s.execute(sa.insert(DigestRow), [{"file_id": ids[f.path], "algorithm": alg, "value": value, "source": f.source}
                                     for f in content.files for alg, value in f.digests.items()])
    return row


def _check_same_content(s: Session, row: BagRow, content: RegisteredContent) -> None:
    """Refuse to re-register a name whose payload differs from what the ledger holds."""
    stored: dict[str, dict[str, str]] = {}
    rows = s.execute(sa.select(FileRow.path, DigestRow.algorithm, DigestRow.value)
                     .join(DigestRow, DigestRow.file_id == FileRow.id)
                     .where(FileRow.bag_id == row.id, FileRow.kind == "payload"))
    for path, alg, value in rows:
        stored.setdefault(path, {})[alg] = value
    given = {f.path: f.digests for f in content.files if f.kind == "payload"}
    if stored != given:
        raise LedgerError(f"{content.name}: already registered with different payload; "
                          "a changed bag must be ingested as a new version")


def _add_location(s: Session, bag: BagRow, url: str) -> None:
    exists = s.scalar(sa.select(LocationRow.id).where(LocationRow.bag_id == bag.id, LocationRow.url == url))
    if exists is None:
        s.add(LocationRow(bag_id=bag.id, url=url, added_at=utcnow()))


def _add_event(s: Session, bag: BagRow, event: PremisEvent, *, run_id: str | None = None,
               location: str | None = None, path: str | None = None, code: str | None = None) -> None:
    if s.scalar(sa.select(EventRow.id).where(EventRow.identifier == str(event.identifier))) is None:
        s.execute(sa.insert(EventRow), [_event_values(bag.id, event, run_id=run_id, location=location,
                                                      path=path, code=code)])


def _insert_events(s: Session, events: Sequence[dict[str, Any]]) -> None:
    """Insert event rows in the session's transaction: on PostgreSQL in one ``COPY``.

    psycopg's ``executemany`` sends one ``INSERT`` per row, which the server parses, plans and
    runs one by one (11,000 audit events: 2.4 s of an audit's 10.4 s under cProfile), and a
    multi-row ``INSERT ... VALUES`` costs SQLAlchemy more to compile than it saves; ``COPY``
    streams every row in one statement.  SQLite runs in this process: it keeps ``executemany``, as
    does any other driver than psycopg 3 (whose cursor has ``copy``).
    """
    if not events:
        return
    dialect = s.get_bind().dialect
    if (dialect.name, dialect.driver) != ("postgresql", "psycopg"):
        s.execute(sa.insert(_EVENTS), list(events))
        return
    columns = list(events[0])
    raw: Any = s.connection().connection.dbapi_connection  # psycopg's connection, in this transaction
    with raw.cursor() as cursor, cursor.copy(
            f"COPY {_EVENTS.name} ({', '.join(columns)}) FROM STDIN") as copy:  # names: ours, not input
        for row in events:
            copy.write_row([row[c] for c in columns])


def _event_values(bag_id: int, event: PremisEvent, *, run_id: str | None, location: str | None,
                  path: str | None, code: str | None) -> dict[str, Any]:
    return {"bag_id": bag_id, "identifier": str(event.identifier), "event_type": str(event.event_type),
            "date_time": _as_datetime(event.date_time), "detail": event.detail or "",
            "outcome": str(event.outcome), "outcome_detail": event.outcome_detail or "",
            "object_ids": json.dumps(list(event.object_ids)), "agent_ids": json.dumps(list(event.agent_ids)),
            "run_id": run_id, "location": location, "path": path, "code": code}


def _as_datetime(value: object) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _event_from_row(row: EventRow) -> PremisEvent:
    # Validated on the way out too: a hand-edited ledger row cannot yield an impossible event.
    return PremisEvent.model_validate({
        "identifier": row.identifier, "event_type": row.event_type, "date_time": row.date_time,
        "detail": row.detail or None, "outcome": row.outcome, "outcome_detail": row.outcome_detail or None,
        "object_ids": tuple(json.loads(row.object_ids)), "agent_ids": tuple(json.loads(row.agent_ids))})
