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


def _task_run_names(flow_run_id: object) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def task_runs() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            return sorted(r.name for r in runs)

    return asyncio.run(task_runs())


def _copies(records_copy: Path, count: int) -> None:
    import shutil

    seed = records_copy / "icg-peru-1986"
    for n in range(count):
        copy = records_copy / f"copy-{n}"
        shutil.copytree(seed, copy)
        record = copy / "record.yaml"
        record.write_text(record.read_text(encoding="utf-8").replace("id: icg-peru-1986", f"id: copy-{n}"),
                          encoding="utf-8")


def test_records_per_task_groups_records_and_keeps_one_result_each(ingest_flow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                  records_copy: Path) -> None:
    _copies(records_copy, 2)
    (records_copy / "bad.record.yaml").write_text("id: [\n", encoding="utf-8")
    state = ingest_flow(records_dir=str(records_copy), bags_dir=str(tmp_path / "bags"), use_ledger=False,
                        records_per_task=2, return_state=True)
    report = state.result()
    assert sorted(r["outcome"] for r in report["records"]) == ["bagged", "bagged", "bagged", "failed"]
    names = _task_run_names(state.state_details.flow_run_id)
    assert len(names) == 2 and all(n.endswith("(+1 more)") for n in names), names  # 4 records, 2 a task


def test_a_small_run_keeps_one_task_per_record(ingest_flow, tmp_path: Path,  # type: ignore[no-untyped-def]
                                               records_copy: Path) -> None:
    _copies(records_copy, 2)
    state = ingest_flow(records_dir=str(records_copy), bags_dir=str(tmp_path / "bags"), use_ledger=False,
                        return_state=True)
    assert state.result()["bagged"] == 3
    assert _task_run_names(state.state_details.flow_run_id) == ["ingest copy-0", "ingest copy-1",
                                                                "ingest icg-peru-1986"]


def test_records_per_task_by_run_size() -> None:
    from flows.ingest import MAX_RECORDS_PER_TASK, ONE_TASK_PER_RECORD_UP_TO, group_size
    from pipeline.errors import UsageError

    assert group_size(1) == 1 and group_size(ONE_TASK_PER_RECORD_UP_TO) == 1
    assert group_size(1000) == 15 and group_size(10**6) == MAX_RECORDS_PER_TASK
    assert group_size(1000, requested=1) == 1
    with pytest.raises(UsageError):
        group_size(10, requested=0)
