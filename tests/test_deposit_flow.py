"""The deposit flow under the session's Prefect harness, and ``strongroom deposit`` as a user runs it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from pipeline.audit import register_bag

from .conftest import run_cli


def _task_run_names(flow_run_id: Any) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> list[Any]:
        async with get_client() as client:
            return list(await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))))

    return sorted(t.name for t in asyncio.run(read()))


def test_the_flow_runs_one_task_per_bag_and_a_failed_bag_does_not_stop_the_others(
        prefect_harness: None, make_bag: Any, tmp_path: Path) -> None:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.deposit import deposit_flow
    from pipeline.deposit import open_target

    a = make_bag("a", files={"x.txt": b"a\n"})
    b = make_bag("b", files={"x.txt": b"b\n"})
    clash = make_bag("c", files={"x.txt": b"ours\n"})
    store = ((tmp_path / "store").as_uri() + "?create=1")
    open_target(store).put(make_bag("c", files={"x.txt": b"theirs\n"}, bags=tmp_path / "elsewhere"))
    state = deposit_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))(
        [str(a), str(b), str(clash)], store, False, return_state=True)
    report = state.result()
    assert [r["bag"] for r in report["bags"]] == ["a.v1", "b.v1", "c.v1"]
    assert [r["outcome"] for r in report["bags"]] == ["deposited", "deposited", "failed"]
    assert "nothing overwritten" in report["bags"][2]["error"]
    assert report["exit_code"] == 1
    assert _task_run_names(state.state_details.flow_run_id) == ["deposit a.v1", "deposit b.v1", "deposit c.v1"]


def test_the_cli_deposits_through_the_flow_and_says_unchanged_the_second_time(
        prefect_api_url: str, make_bag: Any, tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> None:
    bag = make_bag("rec")
    url = f"s3://{s3_bucket}/copies?endpoint={moto_endpoint}"
    env = {"PREFECT_API_URL": prefect_api_url}
    first = run_cli("deposit", bag, "--to", url, "--no-ledger", "--json", env=env)
    assert first.returncode == 0, first.stderr
    row = json.loads(first.stdout)["bags"][0]
    assert row["outcome"] == "deposited" and row["verified"] is True
    assert row["location"] == f"s3://{s3_bucket}/copies/rec.v1?endpoint={moto_endpoint}"
    again = run_cli("deposit", bag, "--to", url, "--no-ledger", env=env)
    assert again.returncode == 0 and "unchanged  rec.v1" in again.stdout
    assert "0 deposited, 1 unchanged, 0 failed" in again.stdout


def test_the_cli_without_the_flow_records_in_the_ledger(make_bag: Any, tmp_path: Path) -> None:
    from pipeline.ledger import Ledger

    bag = make_bag("rec")
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        register_bag(ledger, bag, origin="ingest")
    store = tmp_path / "store"
    out = run_cli("deposit", bag, "--to", f"ocfl://{store}?create=1", "--no-flow")
    assert out.returncode == 0, out.stderr
    assert f"deposited  rec.v1 -> ocfl://{store}/rec.v1" in out.stdout
    with Ledger.open(None, bags_dir=bag.parent) as ledger:
        assert f"ocfl://{store}/rec.v1" in ledger.locations("rec.v1")
        assert [e.outcome for e in ledger.events("rec.v1") if e.event_type == "rep"] == ["suc"]


@pytest.mark.parametrize("args, code, message", [
    (["--to", "ftp://example.org/x"], 2, "unknown deposit target"),
    (["--to", "s3://KEY:SECRET@bucket"], 2, "credentials do not belong"),
    (["--to", "s3://bucket/p?endpoint=http://KEY:SECRET@127.0.0.1:9"], 2, "credentials do not belong"),
    (["--to", "s3://bucket/p?aws_secret_access_key=SECRET"], 2, "unknown: aws_secret_access_key"),
    (["--to", "s3://bucket/p?endpoint=127.0.0.1:9000"], 2, "endpoint must be an http:// or https:// URL"),
])
def test_cli_usage_errors_are_one_line(make_bag: Any, args: list[str], code: int, message: str) -> None:
    out = run_cli("deposit", make_bag("rec"), "--no-flow", *args)
    assert out.returncode == code
    assert out.stderr.startswith("strongroom: error:") and message in out.stderr
    assert "SECRET" not in out.stderr and "Traceback" not in out.stderr


def test_cli_refuses_a_directory_that_is_not_a_bag(tmp_path: Path) -> None:
    out = run_cli("deposit", tmp_path, "--to", (tmp_path / "s").as_uri(), "--no-flow")
    assert out.returncode == 2 and "not a bag directory" in out.stderr


def test_cli_failure_is_one_line_and_exit_1(make_bag: Any, tmp_path: Path) -> None:
    bag = make_bag("rec")  # not registered in the ledger: refused before anything is copied
    out = run_cli("deposit", bag, "--to", ((tmp_path / "store").as_uri() + "?create=1"), "--no-flow")
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "not registered in the ledger" in out.stderr
    assert not (tmp_path / "store" / "rec.v1").exists()


@pytest.mark.postgres
def test_a_ledger_password_is_never_a_flow_run_parameter(prefect_harness: None, make_bag: Any, tmp_path: Path,
                                                       fresh_pg_url: str) -> None:
    # Prefect keeps every flow run's parameters in its database and shows them in its UI: a
    # ledger URL with a password must reach the tasks another way.
    from prefect.client.orchestration import get_client

    from flows.deposit import run_deposit
    from pipeline.ledger import Ledger

    ledger_url = fresh_pg_url.replace("postgres@", "postgres:TopSecret42@", 1)  # trust auth: any password
    bag = make_bag("rec")
    with Ledger.open(ledger_url) as ledger:
        register_bag(ledger, bag, origin="ingest")
    (tmp_path / "store").mkdir()
    report = run_deposit([str(bag)], (tmp_path / "store").as_uri(), ledger_url=ledger_url)
    assert report["deposited"] == 1, report

    async def parameters() -> list[Any]:
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=5, sort="EXPECTED_START_TIME_DESC")
            return [r.parameters for r in runs if r.flow_id and r.parameters.get("to", "").endswith("store")]

    seen = asyncio.run(parameters())
    assert seen and "TopSecret42" not in json.dumps(seen, default=str)
    with Ledger.open(ledger_url) as ledger:
        assert [e.outcome for e in ledger.events("rec.v1") if e.event_type == "rep"] == ["suc"]
