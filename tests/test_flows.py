"""The ingest flow end to end under the session's Prefect test harness."""

from __future__ import annotations

import asyncio
from pathlib import Path

import bagit
import pytest


@pytest.fixture
def ingest_flow(prefect_harness: None):  # type: ignore[no-untyped-def]
    from flows.ingest import ingest_flow

    return ingest_flow


def _artifact_rows(key: str) -> list[dict[str, object]]:
    import json

    from prefect.client.orchestration import get_client

    async def latest() -> object:
        async with get_client() as client:
            return await client.read_latest_artifacts()

    artifacts = [a for a in asyncio.run(latest()) if a.key == key]  # type: ignore[attr-defined]
    assert artifacts, f"no artifact with key {key}"
    data = artifacts[0].data
    return json.loads(data) if isinstance(data, str) else list(data)


def test_ingest_flow_bags_the_seed_and_publishes_a_table_artifact(ingest_flow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                records_copy: Path) -> None:
    report = ingest_flow(records_dir=str(records_copy), bags_dir=str(tmp_path / "bags"))
    assert report["bagged"] == 1 and report["failed"] == 0 and report["exit_code"] == 0
    bag = tmp_path / "bags" / "icg-peru-1986.v1"
    bagit.Bag(str(bag)).validate()
    rows = _artifact_rows("strongroom-ingest")
    assert rows[0]["record"] == "record.yaml" and rows[0]["outcome"] == "bagged"
    assert rows[0]["bag"] == "icg-peru-1986.v1" and rows[0]["files"] == 1 and rows[0]["bytes"] == 27183


def test_ingest_flow_runs_one_task_per_record_and_others_proceed(ingest_flow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               records_copy: Path) -> None:
    (records_copy / "bad.record.yaml").write_text("id: [\n", encoding="utf-8")
    report = ingest_flow(records_dir=str(records_copy), bags_dir=str(tmp_path / "bags"), use_ledger=False)
    outcomes = sorted(r["outcome"] for r in report["records"])
    assert outcomes == ["bagged", "failed"] and report["exit_code"] == 1


def test_several_records_register_in_one_ledger_at_once(ingest_flow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                       records_copy: Path) -> None:
    """Tasks run side by side and each opens the ledger: a fresh ledger must not trip over itself."""
    import shutil

    from pipeline.ledger import Ledger

    seed = records_copy / "icg-peru-1986"
    for n in range(4):
        copy = records_copy / f"copy-{n}"
        shutil.copytree(seed, copy)
        record = copy / "record.yaml"
        record.write_text(record.read_text(encoding="utf-8").replace("id: icg-peru-1986", f"id: copy-{n}"),
                          encoding="utf-8")
    report = ingest_flow(records_dir=str(records_copy), bags_dir=str(tmp_path / "bags"))
    assert report["bagged"] == 5 and report["failed"] == 0, report
    with Ledger.open(None, bags_dir=tmp_path / "bags") as ledger:
        assert sorted(b.name for b in ledger.bags()) == sorted(
            ["icg-peru-1986.v1", *(f"copy-{n}.v1" for n in range(4))])
