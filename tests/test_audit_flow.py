"""The audit flow through real Prefect: artifact history, a failed run and an event on damage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.ledger import Ledger
from pipeline.audit import register_bag

MakeBag = Callable[..., Path]


@pytest.fixture
def registered(tmp_path: Path, make_bag: MakeBag) -> Path:
    """Three registered bags in tmp_path/bags (SQLite ledger beside them)."""
    for i in range(3):
        make_bag(f"flow{i}", files={"text.txt": f"flow bag {i}\n".encode()})
    bags = tmp_path / "bags"
    with Ledger.open(bags_dir=bags) as ledger:
        for i in range(3):
            register_bag(ledger, bags / f"flow{i}.v1", origin="ingest")
    return bags


def _artifacts(key: str) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))

    return asyncio.run(read())


def _damage_events(run_id: str, timeout: float = 30) -> list[Any]:
    """The strongroom.audit.damage events about this audit run (events arrive asynchronously)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    async def read() -> list[Any]:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(event=EventNameFilter(name=["strongroom.audit.damage"])), limit=50)
            return [e for e in page.events if e.payload.get("run_id") == run_id]

    deadline = time.monotonic() + timeout
    while True:
        found = asyncio.run(read())
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def test_a_clean_audit_completes_and_adds_a_summary_table_to_the_history(prefect_harness: None,
                                                                         registered: Path) -> None:
    from flows.audit import ARTIFACT_KEY, audit_flow

    before = len(_artifacts(ARTIFACT_KEY))
    state = asyncio.run(audit_flow(bags_dir=str(registered), older_than=None, return_state=True))
    assert state.is_completed(), state.message
    assert state.result()["summary"]["bags_checked"] == 3
    tables = _artifacts(ARTIFACT_KEY)
    assert len(tables) == before + 1  # one more version under the same key: the audit history
    newest = max(tables, key=lambda a: a.created)
    assert "all intact" in (newest.description or "")


def test_damage_fails_the_run_lists_each_damaged_file_and_emits_an_event(prefect_harness: None,
                                                                        registered: Path) -> None:
    import json

    from flows.audit import ARTIFACT_KEY, audit_flow

    (registered / "flow1.v1/data/text.txt").write_text("rot\n")
    (registered / "flow2.v1/data/new.txt").write_text("intruder\n")
    state = asyncio.run(audit_flow(bags_dir=str(registered), older_than=None, return_state=True))
    assert state.is_failed()
    assert "2 DAMAGED" in (state.message or "")
    newest = max(_artifacts(ARTIFACT_KEY), key=lambda a: a.created)
    rows = newest.data if isinstance(newest.data, list) else json.loads(newest.data)
    assert {(r["bag"], r["path"], r["code"]) for r in rows[:-1]} == {
        ("flow1.v1", "data/text.txt", "AUD004"), ("flow2.v1", "data/new.txt", "AUD003")}
    assert rows[-1]["bag"] == "(summary)"
    with Ledger.open(bags_dir=registered) as ledger:  # the run's id is in the events it recorded
        run_id = next(e.detail for e in ledger.events("flow1.v1") if e.event_type == "fix")
    run = (run_id or "").split("audit run ")[1].split(")")[0]
    events = _damage_events(run)
    assert len(events) == 1
    assert {d["bag"] for d in events[0].payload["damaged"]} == {"flow1.v1", "flow2.v1"}


def test_a_rolling_flow_run_skips_what_was_verified_recently(prefect_harness: None, registered: Path) -> None:
    from flows.audit import audit_flow

    first = asyncio.run(audit_flow(bags_dir=str(registered), older_than="90d", limit=2, return_state=True))
    second = asyncio.run(audit_flow(bags_dir=str(registered), older_than="90d", return_state=True))
    assert first.result()["summary"]["bags_checked"] == 2
    assert second.result()["summary"]["bags_checked"] == 1


def test_run_audit_flow_works_from_inside_a_running_event_loop(prefect_harness: None, registered: Path) -> None:
    """A curator's notebook already runs an event loop, where asyncio.run refuses to start another."""
    from flows.audit import run_audit_flow

    async def from_a_notebook_cell() -> Any:
        return run_audit_flow(str(registered), older_than=None)

    state = asyncio.run(from_a_notebook_cell())
    assert state.is_completed() and state.result()["summary"]["bags_checked"] == 3


@pytest.mark.postgres
def test_a_ledger_password_is_never_a_flow_run_parameter(prefect_harness: None, make_bag: MakeBag,
                                                       fresh_pg_url: str) -> None:
    # Prefect keeps every flow run's parameters in its database and shows them in its UI.
    import json
    import os

    from prefect.client.orchestration import get_client

    from flows.audit import run_audit_flow
    from pipeline.ledger import LEDGER_ENV

    ledger_url = fresh_pg_url.replace("postgres@", "postgres:AuditSecret42@", 1)  # trust auth: any password
    bag = make_bag("pw")
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest")
    before = os.environ.get(LEDGER_ENV)
    state = run_audit_flow(str(bag.parent), ledger_url=ledger_url, older_than=None)
    assert state.is_completed(), state.message
    assert state.result()["summary"]["bags_checked"] == 1  # the flow really used the PostgreSQL ledger
    assert os.environ.get(LEDGER_ENV) == before  # restored after the run

    async def runs() -> list[Any]:
        async with get_client() as client:
            found = await client.read_flow_runs(limit=10, sort="EXPECTED_START_TIME_DESC")
            return [r for r in found if r.parameters.get("bags_dir") == str(bag.parent)]

    seen = asyncio.run(runs())
    assert len(seen) == 1
    assert "AuditSecret42" not in json.dumps(seen[0].parameters, default=str)
    assert "ledger_url" not in seen[0].parameters


def test_the_flow_checks_several_claimed_bags_at_once_each_exactly_once(prefect_harness: None, tmp_path: Path,
                                                                         make_bag: MakeBag) -> None:
    # Concurrency is observed in the ledger, not on a clock: while the flow runs, a watcher counts
    # the bags claimed by the run at the same moment.  Checked one after another, that is never 2.
    import threading

    import sqlalchemy as sa

    from flows.audit import run_audit_flow

    big = bytes(range(256)) * (16 * 4096)  # 16 MiB: a check lasts long enough to be seen
    for i in range(5):
        make_bag(f"par{i}", files={"big.bin": big[i:] + big[:i]})
    bags = tmp_path / "bags"
    with Ledger.open(bags_dir=bags) as ledger:
        for i in range(5):
            register_bag(ledger, bags / f"par{i}.v1", origin="ingest")
    engine = sa.create_engine(f"sqlite:///{bags / '.strongroom-ledger.sqlite'}")
    most, done = [0], threading.Event()

    def watch() -> None:
        with engine.connect() as conn:
            while not done.is_set():
                held = conn.execute(sa.text("SELECT count(*) FROM bags WHERE claimed_by IS NOT NULL")).scalar()
                conn.rollback()
                most[0] = max(most[0], int(held or 0))

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        state = run_audit_flow(str(bags), older_than=None, workers=3, batch_size=1)  # a task per bag
    finally:
        done.set()
        watcher.join()
        engine.dispose()
    assert state.is_completed(), state.message
    assert [b["name"] for b in state.result()["bags"]] and state.result()["summary"]["bags_checked"] == 5
    assert 2 <= most[0] <= 3  # several tasks at once, never more than the workers asked for
    with Ledger.open(bags_dir=bags) as ledger:
        assert [b.last_outcome for b in ledger.bags()] == ["clean"] * 5
        for i in range(5):  # each bag checked once: one fixity event per file, none twice
            fix = [e for e in ledger.events(f"par{i}.v1") if e.event_type == "fix"]
            assert sorted(o for e in fix for o in e.object_ids) == sorted(ledger.files(f"par{i}.v1"))


def test_a_task_worker_that_would_open_another_ledger_refuses(registered: Path) -> None:
    # A Dask worker without STRONGROOM_LEDGER would fall back to SQLite beside the bags: auditing
    # against that reference would be wrong, so the task refuses and says what to set.
    from flows.audit import Batch, audit_batch_task
    from pipeline.errors import LedgerError

    with Ledger.open(bags_dir=registered) as ledger:
        bag = ledger.bag("flow0.v1")
    with pytest.raises(LedgerError, match="set STRONGROOM_LEDGER in the workers' environment"):
        audit_batch_task.fn(str(registered), "urn:uuid:run", Batch([bag]), 300.0,
                            "postgresql+psycopg://db.example/ledger")
    with Ledger.open(bags_dir=registered) as ledger:
        assert ledger.bag("flow0.v1").last_checked_at is None  # nothing was checked or recorded


def test_the_flow_runs_one_task_per_batch_of_bags(prefect_harness: None, registered: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.audit import run_audit_flow

    state = run_audit_flow(str(registered), older_than=None, batch_size=2)
    assert state.is_completed(), state.message
    assert state.result()["summary"]["bags_checked"] == 3

    async def task_runs() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_task_runs(flow_run_filter=FlowRunFilter(
                id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))))

    names = sorted(r.name for r in asyncio.run(task_runs()))
    assert names == ["audit flow0.v1 (+1 more)", "audit flow2.v1 (+0 more)"]  # 3 bags in batches of 2
