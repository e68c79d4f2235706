"""Alembic environment for the fixity ledger, driven programmatically by :mod:`pipeline.ledger`.

There is no ``alembic.ini``: :func:`pipeline.ledger.upgrade_to_head` builds the configuration and
hands over an open connection in ``config.attributes["connection"]``.  On PostgreSQL a
transaction-level advisory lock serialises migrations, so several audit machines opening a fresh
ledger at the same moment do not race to create the same tables; on SQLite the migration's
transaction takes the database's write lock before Alembic reads the current revision
(``BEGIN IMMEDIATE``), which keeps processes sharing one ledger file apart in the same way.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

#: Arbitrary but fixed key of the advisory lock that guards ledger migrations.
MIGRATION_LOCK_KEY = 0x5354524F  # "STRO"


def run_migrations(connection: Connection) -> None:
    """Upgrade the ledger behind ``connection`` to the newest schema, in one transaction."""
    # transactional_ddl: Alembic takes SQLite for a database without transactional DDL and then
    # commits after each migration, which would let another process, waiting at BEGIN IMMEDIATE,
    # run the next migration too (seen with 0002: "duplicate column name").  SQLite's DDL is
    # transactional: one transaction holds every migration, as on PostgreSQL.
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=False,
                      transactional_ddl=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        elif connection.dialect.name == "sqlite":
            # The driver opens SQLite transactions lazily and shared; this one must write from its
            # first statement, waiting (busy timeout) for any other process migrating the file.
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        context.run_migrations()


_connection = context.config.attributes.get("connection")
if _connection is None:  # pragma: no cover - only reachable through a misconfigured call
    raise RuntimeError("the Strongroom ledger migrations run only through pipeline.ledger")
run_migrations(_connection)
