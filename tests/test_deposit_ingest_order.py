"""Issue 10: ``ingest --deposit-to ocfl://`` deposits a record's earlier, never deposited versions first.

An OCFL object takes versions in order; a record bagged as v2 whose v1 never went there used to
fail ("deposit v1 first") and count as failed although its bag was made.  Through the CLI, as a
user runs it.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.deposit import open_target

from .conftest import run_cli


def test_ingest_deposits_the_missing_earlier_version_first(
        prefect_api_url: str, records_copy: Path, tmp_path: Path) -> None:
    env = {"PREFECT_API_URL": prefect_api_url}
    bags, root = tmp_path / "bags", tmp_path / "ocfl"
    first = run_cli("ingest", "--records", records_copy, "--bags", bags, env=env)
    assert first.returncode == 0, first.stderr
    record = records_copy / "icg-peru-1986" / "record.yaml"
    record.write_text(record.read_text(encoding="utf-8") + "\n# a change: the next bag is v2\n", encoding="utf-8")
    second = run_cli("ingest", "--records", records_copy, "--bags", bags,
                     "--deposit-to", f"ocfl://{root}?create=1", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "deposit" not in second.stderr, second.stderr
    held = open_target(f"ocfl://{root}").list()
    assert "icg-peru-1986.v1" in held and "icg-peru-1986.v2" in held, held
