"""The first ledger schema: bags, files, digests, locations, PREMIS events, audit runs.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create every table of the first ledger version."""
    op.create_table(
        "bags",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("external_identifier", sa.Text),
        sa.Column("profile", sa.Text),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("algorithms", sa.String(128), nullable=False),
        sa.Column("total_bytes", sa.BigInteger, nullable=False),
        sa.Column("file_count", sa.Integer, nullable=False),
        sa.Column("registered_at", _TS, nullable=False),
        sa.Column("last_checked_at", _TS),
        sa.Column("last_outcome", sa.String(16)),
        sa.Column("claimed_by", sa.String(64)),
        sa.Column("lease_until", _TS),
    )
    op.create_index("ix_bags_last_checked_at", "bags", ["last_checked_at"])
    op.create_table(
        "files",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bag_id", sa.Integer, sa.ForeignKey("bags.id", ondelete="CASCADE"), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("bag_id", "path", name="uq_files_bag_path"),
    )
    op.create_table(
        "digests",
        sa.Column("file_id", sa.Integer, sa.ForeignKey("files.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("algorithm", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
    )
    op.create_table(
        "locations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bag_id", sa.Integer, sa.ForeignKey("bags.id", ondelete="CASCADE"), nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("added_at", _TS, nullable=False),
        sa.UniqueConstraint("bag_id", "url", name="uq_locations_bag_url"),
    )
    op.create_table(
        "audit_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("started_at", _TS, nullable=False),
        sa.Column("finished_at", _TS),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("options", sa.Text, nullable=False),
        sa.Column("bags_checked", sa.Integer, nullable=False),
        sa.Column("bags_damaged", sa.Integer, nullable=False),
        sa.Column("bytes_read", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("bag_id", sa.Integer, sa.ForeignKey("bags.id", ondelete="CASCADE"), nullable=False),
        sa.Column("identifier", sa.String(255), nullable=False, unique=True),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("date_time", _TS, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(64), nullable=False),
        sa.Column("outcome_detail", sa.Text, nullable=False),
        sa.Column("object_ids", sa.Text, nullable=False),
        sa.Column("agent_ids", sa.Text, nullable=False),
        sa.Column("run_id", sa.String(64), sa.ForeignKey("audit_runs.id")),
        sa.Column("location", sa.Text),
        sa.Column("path", sa.Text),
        sa.Column("code", sa.String(32)),
    )
    op.create_index("ix_events_bag_id", "events", ["bag_id", "id"])
    op.create_index("ix_events_run_id", "events", ["run_id"])


def downgrade() -> None:
    """Drop every table (an empty ledger)."""
    for table in ("events", "audit_runs", "locations", "digests", "files", "bags"):
        op.drop_table(table)
