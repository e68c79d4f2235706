"""The audit flow's ``repair`` parameter through real Prefect: a repair artifact, an event when repair fails."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.audit import register_bag
from pipeline.deposit import deposit_bag
from pipeline.ledger import Ledger
from tests.test_audit_faults import flip_byte

MakeBag = Callable[..., Path]


@pytest.fixture
def replicated(tmp_path: Path, make_bag: MakeBag) -> Path:
    """Two bags, registered and deposited to a directory; returns the bags directory."""
    for name in ("heal0", "heal1"):
        make_bag(name, files={"text.txt": f"{name} payload\n".encode() * 50})
    bags = tmp_path / "bags"
    with Ledger.open(bags_dir=bags) as ledger:
        for name in ("heal0", "heal1"):
            register_bag(ledger, bags / f"{name}.v1", origin="ingest")
            deposit_bag(bags / f"{name}.v1", f"file://{tmp_path}/copies?create=1", ledger=ledger)
    return bags


def _newest_rows(key: str) -> list[dict[str, str]]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key]))))

    newest = max(asyncio.run(read()), key=lambda a: a.created)
    return newest.data if isinstance(newest.data, list) else json.loads(newest.data)


def _failed_events(run_id: str, timeout: float = 30) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    async def read() -> list[Any]:
        async with get_client() as client:
            page = await client.read_events(
                filter=EventFilter(event=EventNameFilter(name=["strongroom.repair.failed"])), limit=50)
            return [e for e in page.events if e.payload.get("run_id") == run_id]

    deadline = time.monotonic() + timeout
    while not (found := asyncio.run(read())) and time.monotonic() < deadline:
        time.sleep(0.5)
    return found


def test_the_audit_flow_repairs_right_after_the_check_and_tables_what_it_repaired(
        prefect_harness: None, replicated: Path) -> None:
    from flows.audit import REPAIR_ARTIFACT_KEY, audit_flow

    good = (replicated / "heal1.v1/data/text.txt").read_bytes()
    flip_byte(replicated / "heal1.v1/data/text.txt", 4)
    state = asyncio.run(audit_flow(bags_dir=str(replicated), older_than=None, repair=True, return_state=True))
    assert state.is_completed(), state.message
    assert "1 DAMAGED" in (state.message or "") and "1 REPAIRED" in (state.message or "")
    assert (replicated / "heal1.v1/data/text.txt").read_bytes() == good
    rows = _newest_rows(REPAIR_ARTIFACT_KEY)
    assert [(r["bag"], r["action"], r["path"], r["code"]) for r in rows[:-1]] == [
        ("heal1.v1", "rewrite", "data/text.txt", "AUD001")]
    assert rows[-1]["bag"] == "(summary)"


def test_the_audit_flow_fails_and_emits_an_event_when_a_bag_cannot_be_repaired(
        prefect_harness: None, replicated: Path, tmp_path: Path) -> None:
    from flows.audit import audit_flow

    flip_byte(replicated / "heal0.v1/data/text.txt", 4)
    flip_byte(tmp_path / "copies/heal0.v1/data/text.txt", 9)  # no good copy is left
    state = asyncio.run(audit_flow(bags_dir=str(replicated), older_than=None, repair=True, return_state=True))
    assert state.is_failed()
    result = state.result(raise_on_failure=False)
    assert result["repair"]["bags"][0]["outcome"] == "unrepairable"
    found = _failed_events(result["run_id"])
    assert len(found) == 1 and found[0].payload["unrepaired"][0]["files"] == ["data/text.txt"]


def test_serve_passes_the_repair_option_to_the_nightly_audit(tmp_path: Path) -> None:
    from flows.serve import AUDIT_DEPLOYMENT, ServeOptions, deployments

    built = {d.name: d for d in deployments(ServeOptions(records_dir=tmp_path, bags_dir=tmp_path, audit_repair=True))}
    assert built[AUDIT_DEPLOYMENT].parameters["repair"] is True
    plain = {d.name: d for d in deployments(ServeOptions(records_dir=tmp_path, bags_dir=tmp_path))}
    assert plain[AUDIT_DEPLOYMENT].parameters["repair"] is False
