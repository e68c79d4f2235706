"""The fixity ledger's tables as SQLAlchemy 2 models (the schema itself is made by the migrations).

These classes mirror ``pipeline/ledger/migrations/versions``; a change here needs a new migration.
Times are stored in UTC and always come back timezone-aware, whatever the database.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UTC = dt.timezone.utc


class UTCDateTime(sa.types.TypeDecorator[dt.datetime]):
    """A timestamp stored in UTC and read back timezone-aware.

    SQLite keeps no time zone; storing naive UTC there keeps text comparisons (``<``) correct.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        stamp = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
        if not isinstance(stamp, dt.datetime):
            raise TypeError(f"not a timestamp: {value!r}")
        return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base of the ledger models."""


class BagRow(Base):
    """A registered bag, its reference totals, when it was last checked and who holds it now."""

    __tablename__ = "bags"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    external_identifier: Mapped[str | None] = mapped_column(sa.Text)
    profile: Mapped[str | None] = mapped_column(sa.Text)
    origin: Mapped[str] = mapped_column(sa.String(16))
    algorithms: Mapped[str] = mapped_column(sa.String(128))
    total_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    file_count: Mapped[int] = mapped_column(sa.Integer)
    registered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    last_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(sa.String(16))
    claimed_by: Mapped[str | None] = mapped_column(sa.String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class FileRow(Base):
    """One payload or tag file of a registered bag, with its reference size."""

    __tablename__ = "files"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    bag_id: Mapped[int] = mapped_column(sa.ForeignKey("bags.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(sa.Text)
    kind: Mapped[str] = mapped_column(sa.String(8))
    size: Mapped[int] = mapped_column(sa.BigInteger)
    #: PRONOM identifier (``x-fmt/111``) identified at ingest; None when not identified (migration 0002).
    puid: Mapped[str | None] = mapped_column(sa.String(32))


class DigestRow(Base):
    """A reference digest of a file: from the bag's manifests, or computed at registration."""

    __tablename__ = "digests"
    file_id: Mapped[int] = mapped_column(sa.ForeignKey("files.id", ondelete="CASCADE"), primary_key=True)
    algorithm: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    value: Mapped[str] = mapped_column(sa.String(128))
    source: Mapped[str] = mapped_column(sa.String(16))


class LocationRow(Base):
    """A place a copy of the bag lives (``file://...``, ``s3://...``, ...)."""

    __tablename__ = "locations"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    bag_id: Mapped[int] = mapped_column(sa.ForeignKey("bags.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(sa.Text)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AuditRunRow(Base):
    """One audit process's run: its options, tallies and whether it finished."""

    __tablename__ = "audit_runs"
    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    host: Mapped[str] = mapped_column(sa.String(255))
    pid: Mapped[int] = mapped_column(sa.Integer)
    status: Mapped[str] = mapped_column(sa.String(16))
    options: Mapped[str] = mapped_column(sa.Text)
    bags_checked: Mapped[int] = mapped_column(sa.Integer)
    bags_damaged: Mapped[int] = mapped_column(sa.Integer)
    bytes_read: Mapped[int] = mapped_column(sa.BigInteger)


class EventRow(Base):
    """A PREMIS event of a bag; audit events also carry the run, location, file and finding code."""

    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    bag_id: Mapped[int] = mapped_column(sa.ForeignKey("bags.id", ondelete="CASCADE"))
    identifier: Mapped[str] = mapped_column(sa.String(255), unique=True)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    date_time: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    detail: Mapped[str] = mapped_column(sa.Text)
    outcome: Mapped[str] = mapped_column(sa.String(64))
    outcome_detail: Mapped[str] = mapped_column(sa.Text)
    object_ids: Mapped[str] = mapped_column(sa.Text)
    agent_ids: Mapped[str] = mapped_column(sa.Text)
    run_id: Mapped[str | None] = mapped_column(sa.String(64), sa.ForeignKey("audit_runs.id"))
    location: Mapped[str | None] = mapped_column(sa.Text)
    path: Mapped[str | None] = mapped_column(sa.Text)
    code: Mapped[str | None] = mapped_column(sa.String(32))
