"""The ledger keeps each file's PUID (migration 0002), on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from pipeline.audit import register_bag
from pipeline.ingest import IngestOptions, ingest_record
from pipeline.ledger import Ledger, _alembic_config, _current_revision

from .conftest import REPO


def _upgrade_to(url: str, revision: str) -> None:
    """Bring a fresh database to ``revision`` with Strongroom's own migrations (as an old release did)."""
    from alembic import command

    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            config = _alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def _seed_bag(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "records", tmp_path / "records")
    result = ingest_record(tmp_path / "records" / "icg-peru-1986" / "record.yaml", tmp_path / "bags",
                           IngestOptions(verifiers=[]))
    assert result.bag is not None, result.error
    return result.bag


def test_a_0001_ledger_is_upgraded_and_keeps_its_bags(ledger_url: str, tmp_path: Path) -> None:
    _upgrade_to(ledger_url, "0001")
    engine = sa.create_engine(ledger_url)
    with engine.begin() as conn:  # a bag registered by the release before format identification
        conn.execute(sa.text("INSERT INTO bags (name, origin, algorithms, total_bytes, file_count, registered_at) "
                             "VALUES ('old.v1', 'ingest', 'sha256', 5, 1, '2026-11-30 00:00:00')"))
        conn.execute(sa.text("INSERT INTO files (bag_id, path, kind, size) "
                             "SELECT id, 'data/a.txt', 'payload', 5 FROM bags WHERE name = 'old.v1'"))
        conn.execute(sa.text("INSERT INTO digests (file_id, algorithm, value, source) "
                             "SELECT id, 'sha256', :v, 'manifest' FROM files"), {"v": "0" * 64})
    assert _current_revision(engine) == "0001"
    with Ledger.open(ledger_url) as ledger:
        assert _current_revision(engine) == "0003"
        assert ledger.files("old.v1")["data/a.txt"].puid is None  # not identified, not invented
        bag = _seed_bag(tmp_path)
        register_bag(ledger, bag, origin="ingest")
        files = ledger.files(bag.name)
        assert files["data/000_5b99444169de3d3a.txt"].puid == "x-fmt/111"
        assert files["metadata/premis.xml"].puid is None
    columns = {c["name"] for c in sa.inspect(engine).get_columns("files")}
    engine.dispose()
    assert "puid" in columns


def test_a_bag_with_another_tools_premis_registers_without_puids(ledger_url: str, tmp_path: Path) -> None:
    import bagit

    bag = tmp_path / "foreign.v1"
    bag.mkdir()
    (bag / "a.txt").write_text("made elsewhere\n")
    made = bagit.make_bag(str(bag), checksums=["sha256"])
    (bag / "metadata").mkdir()
    (bag / "metadata" / "premis.xml").write_bytes(b"<premis>not PREMIS 3 as Strongroom reads it</premis>")
    made.save()  # bagit-python lists the new tag file in its tag manifest
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="register")
        files = ledger.files(bag.name)
        assert "metadata/premis.xml" in files and all(f.puid is None for f in files.values())


def test_the_migration_chain_ends_at_0003() -> None:
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    assert scripts.get_current_head() == "0003"
    assert scripts.get_revision("0003").down_revision == "0002"
    assert scripts.get_revision("0002").down_revision == "0001"


def test_every_migration_runs_in_one_transaction_on_sqlite(tmp_path: Path) -> None:
    """One commit for 0001-0003: a process waiting at BEGIN IMMEDIATE cannot slip in between them
    and run 0002 a second time (it did: "duplicate column name: puid")."""
    from pipeline.ledger import upgrade_to_head

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledger.sqlite'}")
    commits: list[str] = []
    sa.event.listen(engine, "commit", lambda conn: commits.append("commit"))
    upgrade_to_head(engine)
    assert _current_revision(engine) == "0003" and commits == ["commit"]
    engine.dispose()
