"""Each file's PRONOM format identifier (PUID), as identified at ingest (nullable: tag files, bags
registered from elsewhere and ledgers made before format identification have none).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``files.puid``; existing rows keep NULL (not identified)."""
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("puid", sa.String(32), nullable=True))


def downgrade() -> None:
    """Drop ``files.puid``."""
    with op.batch_alter_table("files") as batch:
        batch.drop_column("puid")
