"""``strongroom serve`` as a new user runs it (no Prefect server configured: serve starts its own);
``prefect.yaml`` describes the same deployments."""

from __future__ import annotations

import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _serve(records: Path, bags: Path, home: Path, *crons: str) -> subprocess.Popen[str]:
    """``strongroom serve`` as a new user runs it: no PREFECT_API_URL, a fresh HOME and PREFECT_HOME."""
    env = {**os.environ, "HOME": str(home / "home"), "PREFECT_HOME": str(home / "prefect")}
    env.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--records", str(records), "--bags", str(bags), *crons],
        cwd=home, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _ui_address(serve: subprocess.Popen[str], timeout: float = 180) -> str:
    """The UI address serve prints once its own server answers (read from its standard output)."""
    assert serve.stdout is not None
    deadline = time.monotonic() + timeout
    for line in serve.stdout:  # serve prints this line within the timeout or exits
        if "Prefect UI at " in line:
            return line.split("Prefect UI at ", 1)[1].split()[0]
        assert time.monotonic() < deadline, "serve printed no UI address"
    raise AssertionError(f"serve exited before its server answered: {serve.communicate()}")


def _completed_runs(api: str, deployment: str) -> list[dict[str, object]]:
    import httpx

    response = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
        "deployments": {"name": {"any_": [deployment]}},
        "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
    response.raise_for_status()
    return list(response.json())


def _port_open(url: str) -> bool:
    host, _, port = url.removeprefix("http://").partition(":")
    with socket.socket() as s:
        return s.connect_ex((host, int(port))) == 0


@pytest.fixture(scope="module")
def serve_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One fresh HOME and PREFECT_HOME for this module (the second serve reuses the migrated database)."""
    return tmp_path_factory.mktemp("serve-home")


@pytest.mark.slow
def test_serve_without_a_server_starts_one_and_its_schedules_bag_a_new_record(serve_home: Path,
                                                                             tmp_path: Path) -> None:
    records, bags = tmp_path / "records", tmp_path / "bags"
    records.mkdir()
    bags.mkdir()
    serve = _serve(records, bags, serve_home, "--ingest-cron", "* * * * *", "--audit-cron", "* * * * *")
    try:
        ui = _ui_address(serve)
        api = f"{ui}/api"
        shutil.copytree(REPO / "records" / "icg-peru-1986", records / "icg-peru-1986")  # dropped in later
        deadline = time.monotonic() + 150
        while not (bags / "icg-peru-1986.v1" / "bagit.txt").is_file():
            assert serve.poll() is None, serve.communicate()
            assert time.monotonic() < deadline, "no bag within 150 s: the ingest schedule did not run"
            time.sleep(1)
        found = {str(d["name"]): d for d in _deployments(api)}
        crons = {name: [s["schedule"]["cron"] for s in d["schedules"]]  # type: ignore[index, union-attr]
                 for name, d in found.items()}
        assert crons == {"strongroom-ingest": ["* * * * *"], "strongroom-audit-nightly": ["* * * * *"]}
        assert found["strongroom-ingest"]["parameters"] == {"records_dir": str(records.resolve()),
                                                            "bags_dir": str(bags.resolve())}
        for deployment in ("strongroom-audit-nightly", "strongroom-ingest"):  # the bag is there before
            while not _completed_runs(api, deployment):                        # its run has finished
                assert time.monotonic() < deadline + 60, f"{deployment}: the schedule produced no completed run"
                time.sleep(2)
        assert _port_open(ui)
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert "Traceback" not in err and "strongroom: error" not in err, err
    assert "strongroom serve: stopped" in out
    assert not _port_open(ui), "serve left its Prefect server running"


@pytest.mark.slow
def test_serve_stops_cleanly_on_ctrl_c_and_stops_its_server(serve_home: Path, tmp_path: Path) -> None:
    serve = _serve(tmp_path, tmp_path, serve_home, "--ingest-cron", "0 0 1 1 *")
    try:
        ui = _ui_address(serve)
        assert serve.stdout is not None
        for line in serve.stdout:  # the deployments are registered and served
            if "being served" in line:
                break
    finally:
        serve.send_signal(signal.SIGINT)
        out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert "Traceback" not in err and "strongroom: error" not in err, err
    assert not _port_open(ui), "serve left its Prefect server running"


def _deployments(api: str) -> list[dict[str, object]]:
    import httpx

    response = httpx.post(f"{api}/deployments/filter", json={}, timeout=10)
    response.raise_for_status()
    return list(response.json())


def test_prefect_yaml_describes_the_same_deployments_for_a_work_pool() -> None:
    from flows.audit import audit_flow
    from flows.ingest import ingest_flow
    from flows.serve import AUDIT_DEPLOYMENT, INGEST_DEPLOYMENT

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {INGEST_DEPLOYMENT, AUDIT_DEPLOYMENT}
    for name, flow in ((INGEST_DEPLOYMENT, ingest_flow), (AUDIT_DEPLOYMENT, audit_flow)):
        d = deployments[name]
        path, _, attr = d["entrypoint"].partition(":")
        assert (REPO / path).is_file() and attr == flow.fn.__name__
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(d["parameters"]) <= accepted, f"{name}: unknown parameters"
        assert d["schedules"] and all(s["cron"] for s in d["schedules"])
        assert d["work_pool"]["name"] == "strongroom"
        assert not any("ledger" in key for key in d["parameters"])  # credentials stay in the environment
    assert deployments[AUDIT_DEPLOYMENT]["parameters"]["older_than"] == "90d"


def test_serve_refuses_bad_options_before_starting_prefect(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from pipeline.cli import main

    assert main(["serve", "--records", str(tmp_path / "none"), "--bags", str(tmp_path)]) == 2
    assert "no such records directory" in capsys.readouterr().err
    assert main(["serve", "--records", str(tmp_path), "--bags", str(tmp_path), "--older-than", "x"]) == 2
    assert "not a duration" in capsys.readouterr().err


def test_a_ledger_password_never_reaches_the_deployments(tmp_path: Path) -> None:
    """The ledger URL travels to the served flow runs in the environment, never as a parameter
    (Prefect shows parameters in its UI and API)."""
    import json

    from flows.serve import ServeOptions, deployments

    secret = "postgresql+psycopg://strongroom:s3cret-pw@127.0.0.1:5432/ledger"
    built = deployments(ServeOptions(records_dir=tmp_path, bags_dir=tmp_path, ledger_url=secret))
    assert len(built) == 2
    for deployment in built:
        shown = json.dumps(deployment.model_dump(mode="json"), default=str)
        assert "s3cret-pw" not in shown
        assert not any("ledger" in key for key in deployment.parameters)


@pytest.mark.parametrize("filtered", [False, True])
def test_a_half_built_event_loop_left_by_a_stop_is_not_reported_but_other_errors_are(filtered: bool) -> None:
    # A SIGINT while asyncio builds an event loop leaves one whose __del__ fails at exit: that
    # exact artifact is dropped once serve starts; any other unraisable error still shows.
    setup = "from pipeline.cli.serve import _drop_stop_artifacts; _drop_stop_artifacts()\n" if filtered else ""
    code = setup + (
        "import asyncio, gc\n"
        "loop = asyncio.SelectorEventLoop.__new__(asyncio.SelectorEventLoop)\n"
        "del loop; gc.collect()\n"
        "class Other:\n"
        "    def __del__(self): raise AttributeError('not an artifact')\n"
        "other = Other(); del other; gc.collect()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert ("BaseEventLoop.__del__" in done.stderr) is not filtered, done.stderr
    assert "not an artifact" in done.stderr
