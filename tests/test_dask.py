"""Flows on a real Dask cluster of worker processes produce what the default runner produces.

The cluster is a ``distributed.LocalCluster`` with two worker *processes* (one thread each); the
workers report to the session's Prefect test harness through ``PREFECT_API_URL`` in their
environment, as the README asks of a real cluster's workers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("prefect_harness")

RECORD = """\
id: dask-{n}
dc:
  title:
    - {{value: Item {n} bagged on a Dask worker, lang: en}}
rights:
  statement:
    - {{value: Copyright Undetermined., lang: en}}
  uri: http://rightsstatements.org/vocab/UND/1.0/
source_organization: Strongroom tests
payload:
  - path: item.txt
  - path: sub/part%2.bin
"""


@pytest.fixture(scope="module")
def dask_address(prefect_harness: None) -> Iterator[str]:
    """A LocalCluster of 2 worker processes (1 thread each) that reports to the test harness."""
    from distributed import LocalCluster
    from prefect.settings import PREFECT_API_URL

    env = {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "DO_NOT_TRACK": "1",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(REPO)}
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                           env=env)
    try:
        yield str(cluster.scheduler_address)
    finally:
        cluster.close()


@pytest.fixture
def records(tmp_path: Path, repo_root: Path) -> Path:
    """The first record of the archive and three small ones, in a private records directory."""
    root = tmp_path / "records"
    shutil.copytree(repo_root / "records" / "icg-peru-1986", root / "icg-peru-1986")
    for n in range(1, 4):
        folder = root / f"dask-{n}"
        (folder / "sub").mkdir(parents=True)
        (folder / "record.yaml").write_text(RECORD.format(n=n), encoding="utf-8")
        (folder / "item.txt").write_text(f"item {n}\n" * 100, encoding="utf-8")
        (folder / "sub" / "part%2.bin").write_bytes(os.urandom(3000 + n))
    return root


def _tasks_seen(address: str) -> int:
    """How many tasks the Dask scheduler has run so far (its transition log grows with each)."""
    from distributed import Client

    with Client(address, timeout=30) as client:
        return int(client.run_on_scheduler(lambda dask_scheduler: dask_scheduler.transition_counter))


def _bag_contents(bags: Path) -> dict[str, Any]:
    """Per bag: payload manifests, bag-info (but its date), tag file names and every payload byte."""
    seen: dict[str, Any] = {}
    for bag in sorted(p for p in bags.iterdir() if not p.name.startswith(".")):
        manifests = {p.name: p.read_text() for p in sorted(bag.glob("manifest-*.txt"))}
        info = [ln for ln in (bag / "bag-info.txt").read_text().splitlines() if not ln.startswith("Bagging-Date")]
        tags = sorted(str(p.relative_to(bag)) for p in bag.rglob("*") if p.is_file()
                      and p.relative_to(bag).parts[0] != "data")
        payload = {str(p.relative_to(bag)): p.read_bytes() for p in sorted((bag / "data").rglob("*"))
                   if p.is_file()}
        seen[bag.name] = (manifests, info, tags, payload)
    return seen


def test_ingest_on_dask_worker_processes_makes_the_same_bags(records: Path, tmp_path: Path,
                                                             dask_address: str) -> None:
    from flows.ingest import ingest_flow
    from flows.runners import task_runner

    default = ingest_flow(records_dir=str(records), bags_dir=str(tmp_path / "default"), use_ledger=False)
    before = _tasks_seen(dask_address)
    on_dask = ingest_flow.with_options(task_runner=task_runner("dask", dask_address))(
        records_dir=str(records), bags_dir=str(tmp_path / "dask"), use_ledger=False)
    assert _tasks_seen(dask_address) > before, "no task reached the Dask cluster"
    assert default["bagged"] == on_dask["bagged"] == 4 and on_dask["failed"] == 0
    ours, theirs = _bag_contents(tmp_path / "default"), _bag_contents(tmp_path / "dask")
    assert sorted(ours) == ["dask-1.v1", "dask-2.v1", "dask-3.v1", "icg-peru-1986.v1"]
    assert ours == theirs


@pytest.mark.slow  # a second kind of pool; Dask above is the multi-machine path the issue asks for
def test_ingest_on_a_process_pool_makes_the_same_bags(records: Path, tmp_path: Path) -> None:
    from flows.ingest import ingest_flow
    from flows.runners import task_runner

    default = ingest_flow(records_dir=str(records), bags_dir=str(tmp_path / "default"), use_ledger=False)
    pooled = ingest_flow.with_options(task_runner=task_runner("processes", max_workers=2))(
        records_dir=str(records), bags_dir=str(tmp_path / "processes"), use_ledger=False)
    assert default["bagged"] == pooled["bagged"] == 4 and pooled["failed"] == 0
    assert _bag_contents(tmp_path / "default") == _bag_contents(tmp_path / "processes")


def test_audit_on_dask_finds_the_same_damage(records: Path, tmp_path: Path, dask_address: str) -> None:
    pytest.importorskip("flows.audit")
    from flows.audit import audit_flow
    from flows.ingest import ingest_flow
    from flows.runners import task_runner

    bags = tmp_path / "bags"
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    from flows.settings import ledger_environment

    with ledger_environment(ledger):  # how the CLI hands flows the ledger (never as a parameter)
        ingest_flow(records_dir=str(records), bags_dir=str(bags))
        with (bags / "dask-2.v1" / "data" / "item.txt").open("ab") as fh:
            fh.write(b"damage")
        default = asyncio.run(audit_flow(bags_dir=str(bags), older_than=None, return_state=True))
        # A batch of one bag per task, so the damaged bag and the others go to different workers.
        on_dask = asyncio.run(audit_flow.with_options(task_runner=task_runner("dask", dask_address))(
            bags_dir=str(bags), older_than=None, batch_size=1, return_state=True))
    assert default.is_failed() and on_dask.is_failed()  # damage fails the run, on either runner
    ours, theirs = default.result(raise_on_failure=False), on_dask.result(raise_on_failure=False)
    assert _damage(ours) == _damage(theirs)
    assert [(name, damaged) for name, damaged, _ in _damage(ours) if damaged] == [("dask-2.v1", True)]


def _damage(result: dict[str, Any]) -> list[tuple[str, bool, list[tuple[str, str]]]]:
    """Per bag: its name, whether damaged, and each finding's code and path (no run ids or times)."""
    return sorted((b["name"], b["damaged"], sorted((f["code"], f["path"]) for loc in b["locations"]
                                                   for f in loc["findings"])) for b in result["bags"])


def test_task_runner_kinds_and_refusals() -> None:
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner
    from prefect_dask import DaskTaskRunner

    from flows.runners import task_runner
    from pipeline.errors import UsageError

    assert isinstance(task_runner("threads"), ThreadPoolTaskRunner)
    assert isinstance(task_runner("processes"), ProcessPoolTaskRunner)
    assert isinstance(task_runner("dask", "tcp://127.0.0.1:8786"), DaskTaskRunner)
    with pytest.raises(UsageError):
        task_runner("threads", "tcp://127.0.0.1:8786")
    with pytest.raises(UsageError):
        task_runner("dask", "127.0.0.1:8786")
    with pytest.raises(UsageError):
        task_runner("fibres")  # type: ignore[arg-type]
