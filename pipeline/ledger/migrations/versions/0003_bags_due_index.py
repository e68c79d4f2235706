"""An index in the order audits claim bags (never checked first, then checked longest ago, then by
name), in place of the plain index on ``last_checked_at``.

Every claim asks for the first due bags in that order.  Without an index that gives it, the
database read and sorted the whole ``bags`` table for each batch of 32 bags: 5.7 ms a claim on
2,000 bags here, growing with the collection and with the row versions each audit leaves behind
(a ledger whose server does not vacuum often), so that an audit's claims cost quadratic time.
Walking this index, a claim reads only the rows it takes (0.14 ms on the same 2,000 bags).  The
new index also serves every look-up the old one did (it leads with ``last_checked_at``).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Replace ``ix_bags_last_checked_at`` by ``ix_bags_due`` (last_checked_at NULLS FIRST, name)."""
    # SQLite sorts NULL first in ascending order and has no NULLS FIRST in an index definition.
    first = "last_checked_at" if op.get_bind().dialect.name == "sqlite" else "last_checked_at ASC NULLS FIRST"
    op.create_index("ix_bags_due", "bags", [sa.text(first), "name"])
    op.drop_index("ix_bags_last_checked_at", table_name="bags")


def downgrade() -> None:
    """Back to the plain index on ``last_checked_at``."""
    op.create_index("ix_bags_last_checked_at", "bags", ["last_checked_at"])
    op.drop_index("ix_bags_due", table_name="bags")
