"""The two flow targets: ingest through Prefect vs the library, audit through Prefect vs bagit-python.

The audit's ledger is on PostgreSQL (a fresh database per run), as the issue's audit target sets.

Prefect runs against a real server started here (on PostgreSQL, as production runs it; a
SQLite-backed server answers 503 "database is locked" after bursts of task runs).  Its start is
excluded, as the issue asks: the flow jobs connect once with an empty warm-up flow and time the
real flow call only.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from measure import Case, run_rounds

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
PG_ADMIN = os.environ.get("STRONGROOM_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


def run(records: Path, out: Path, rounds: int, work: str) -> dict[str, Case]:
    """Ingest and audit cases, interleaved, against one Prefect server."""
    o = out / "flows"
    with prefect_server() as api_url:
        env = {"PREFECT_API_URL": api_url}
        cases = [
            Case("flows/ingest-library", [PY, work, "ingest-library", str(records), str(o / "lib")], o / "lib"),
            Case("flows/ingest-flow", [PY, work, "ingest-flow", str(records), str(o / "flow")], o / "flow", env),
        ]
        cases += _audit_cases(records, o, work, env)
        print(f"# flows: {len(cases)} commands x {rounds} round(s)", file=sys.stderr)
        run_rounds(cases, rounds, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return {c.name: c for c in cases}


def _audit_cases(records: Path, o: Path, work: str, env: dict[str, str]) -> list[Case]:
    """Audit through the flow vs bagit-python one by one, over bags ingested once (not timed)."""
    bags = o / "audit-bags"
    shutil.rmtree(bags, ignore_errors=True)
    bags.mkdir(parents=True)
    ledger = _pg_ledger()
    subprocess.run([PY, work, "ingest-library-ledger", str(records), str(bags), ledger], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    return [
        Case("flows/bagit-validate-many", [PY, work, "bagit-validate-many", str(bags)]),
        Case("flows/audit-flow", [PY, work, "audit-flow", str(bags), ledger], None, env),
        Case("flows/audit-library", [PY, work, "audit-library", str(bags), ledger]),
    ]


def _pg_ledger() -> str:
    """A fresh PostgreSQL database for the audit's ledger (as production keeps it); its URL.

    Dropped with the Prefect server's database at the end of the run (see :func:`prefect_server`)."""
    import psycopg

    db = f"strongroom_bench_ledger_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    _LEDGERS.append(db)
    return PG_ADMIN.replace("postgresql://", "postgresql+psycopg://").rsplit("/", 1)[0] + f"/{db}"


_LEDGERS: list[str] = []


@contextmanager
def prefect_server() -> Iterator[str]:
    """A Prefect server on 127.0.0.1 backed by a fresh PostgreSQL database; its API URL."""
    import psycopg

    db = f"strongroom_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    port = _free_port()
    home = Path(tempfile.mkdtemp(prefix="strongroom-bench-prefect-"))
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "DO_NOT_TRACK": "1", "PREFECT_UI_ENABLED": "false",
           "PREFECT_SERVER_DATABASE_CONNECTION_URL":
               PG_ADMIN.replace("postgresql://", "postgresql+asyncpg://").rsplit("/", 1)[0] + f"/{db}"}
    env.pop("PREFECT_API_URL", None)
    log = open(home / "server.log", "wb")
    server = subprocess.Popen([str(Path(PY).parent / "prefect"), "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(url, server, home / "server.log")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()
        shutil.rmtree(home, ignore_errors=True)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            for name in [db, *_LEDGERS]:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        _LEDGERS.clear()


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer within {timeout:.0f} s")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
