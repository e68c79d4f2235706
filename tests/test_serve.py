"""``strongroom serve`` against a real Prefect server process on loopback, backed by PostgreSQL;
``prefect.yaml`` describes the same deployments."""

from __future__ import annotations

import inspect
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SECRET = "not-a-real-secret-7f3a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the Prefect server exited during start-up"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def prefect_server(tmp_path: Path) -> Iterator[str]:
    """``prefect server start`` on a free loopback port, on a PostgreSQL database of its own."""
    import sqlalchemy as sa

    admin_url = os.environ.get("STRONGROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    db = f"strongroom_prefect_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
    port = _free_port()
    host_url = admin_url.rsplit("/", 1)[0].replace("postgresql+psycopg://", "postgresql+asyncpg://")
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "server-home"),
           "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"{host_url}/{db}",
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1", "PREFECT_SERVER_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    server = subprocess.Popen([str(Path(sys.executable).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port), "--no-services"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/health", server, timeout=90)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": db})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}"'))
        admin.dispose()


def _deployments(api: str) -> list[dict[str, object]]:
    import httpx

    response = httpx.post(f"{api}/deployments/filter", json={}, timeout=10)
    response.raise_for_status()
    return list(response.json())


@pytest.mark.slow
@pytest.mark.postgres
def test_serve_registers_both_deployments_with_schedules_and_stops_cleanly(prefect_server: str,
                                                                          tmp_path: Path) -> None:
    (tmp_path / "records").mkdir()
    (tmp_path / "bags").mkdir()
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PREFECT_HOME": str(tmp_path / "client-home")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--records", str(tmp_path / "records"),
         "--bags", str(tmp_path / "bags"), "--ledger", f"postgresql://auditor:{SECRET}@127.0.0.1:5432/ledger",
         "--ingest-cron", "7 * * * *", "--audit-cron", "30 3 * * *", "--older-than", "30d", "--limit", "50"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        found: dict[str, dict[str, object]] = {}
        while len(found) < 2:
            assert serve.poll() is None, serve.communicate()
            assert time.monotonic() < deadline, "serve did not register its deployments"
            found = {str(d["name"]): d for d in _deployments(prefect_server)}
            time.sleep(0.5)
        crons = {name: [s["schedule"]["cron"] for s in d["schedules"]]  # type: ignore[index, union-attr]
                 for name, d in found.items()}
        assert crons == {"strongroom-ingest": ["7 * * * *"], "strongroom-audit-nightly": ["30 3 * * *"]}
        audit_params = found["strongroom-audit-nightly"]["parameters"]
        assert audit_params == {"bags_dir": str((tmp_path / "bags").resolve()), "older_than": "2592000s",
                                "limit": 50, "max_bytes": None, "lease_seconds": 300.0}
        assert found["strongroom-ingest"]["parameters"] == {
            "records_dir": str((tmp_path / "records").resolve()), "bags_dir": str((tmp_path / "bags").resolve())}
        assert SECRET not in json.dumps(list(found.values()))  # the ledger URL reaches runs by environment only
    finally:
        serve.send_signal(signal.SIGTERM)
        out, err = serve.communicate(timeout=60)
    assert serve.returncode == 0, err
    assert SECRET not in out + err


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
