"""Shared fixtures.  Fixture data is never changed in place: tests copy it into ``tmp_path``.

Modules add their own fixtures below under a comment naming the module; keep this file append-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

# Keep Prefect quiet and offline in every test process (and the subprocesses they start).
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SEED = SHARED / "seeds" / "000_5b99444169de3d3a.txt"
SEED_SHA256 = "246b6f3eecd785210211962ece94d16350e7aec34991bc8c3d85bfcecb822364"
CONFORMANCE = SHARED / "bagit-conformance-suite"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def seed_path() -> Path:
    """The first item of the archive, as shipped in ../shared (read-only)."""
    if not SEED.is_file():
        pytest.skip(f"{SEED} is absent")
    return SEED


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One Prefect test harness (temporary database, ephemeral API) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None,
            env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``strongroom ARGS...`` in a subprocess, exactly as a user would."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *map(str, args)],
        cwd=cwd or REPO, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def cli() -> object:
    """The ``run_cli`` function, as a fixture."""
    return run_cli


def _pg_admin_url() -> str:
    return os.environ.get("STRONGROOM_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on 127.0.0.1:5432 for this test session; dropped after."""
    import sqlalchemy as sa

    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"strongroom_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = _pg_admin_url().rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"), {"d": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture
def seed_copy(tmp_path: Path, seed_path: Path) -> Path:
    """A private copy of the seed text."""
    target = tmp_path / "src" / seed_path.name
    target.parent.mkdir(parents=True)
    shutil.copyfile(seed_path, target)
    return target


# --- ingest, CLI and flows (lead) ---

@pytest.fixture(scope="session")
def prefect_api_url(prefect_harness: None) -> str:
    """The harness server's API URL, for CLI subprocesses that must report to it."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url, "the Prefect test harness did not set PREFECT_API_URL"
    return str(url)


@pytest.fixture
def records_copy(tmp_path: Path) -> Path:
    """A private copy of the repository's records/ directory (the seed record and its text)."""
    target = tmp_path / "records"
    shutil.copytree(REPO / "records", target)
    return target


# --- deposit (pipeline/deposit, flows/deposit.py) ---

#: Fake credentials for the local S3 server: real-looking enough for boto3, worthless anywhere else.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "strongroom-test-key", "AWS_SECRET_ACCESS_KEY": "strongroom-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A real S3-compatible server (``moto_server``) on a free loopback port, for one test module.

    One per module, not per session: moto keeps every bucket and object in memory, and a server
    that had served the whole suite answered the repair tests 5-8 times slower than a fresh one.

    Fake credentials are put in the environment of this process (and so of the CLI subprocesses).
    """
    import time
    import urllib.request

    exe = Path(sys.executable).parent / "moto_server"
    if not exe.exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = _free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in FAKE_AWS}
    os.environ.update(FAKE_AWS)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(url + "/", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def s3_bucket(moto_endpoint: str) -> str:
    """A fresh, empty bucket on the session's S3 server; returns its name."""
    import boto3

    name = f"strongroom-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    return name


@pytest.fixture
def make_bag(tmp_path: Path) -> object:
    """``make_bag(record_id, version=1, files={"a.txt": b"..."})`` -> a Strongroom bag in tmp_path/bags."""
    from pipeline.bag.writer import STRONGROOM_PROFILE_ID, bag_directory

    def make(record_id: str = "rec", version: int = 1, files: dict[str, bytes] | None = None,
             bags: Path | None = None) -> Path:
        source = tmp_path / "sources" / f"{record_id}.v{version}"
        for rel, content in (files or {"text.txt": b"Strongroom test payload\n"}).items():
            (source / rel).parent.mkdir(parents=True, exist_ok=True)
            (source / rel).write_bytes(content)
        bags_dir = bags or tmp_path / "bags"
        bags_dir.mkdir(parents=True, exist_ok=True)
        info = [("Source-Organization", "Strongroom test suite"), ("External-Identifier", record_id),
                ("External-Description", f"Test bag {record_id} version {version}"),
                ("BagIt-Profile-Identifier", STRONGROOM_PROFILE_ID)]
        return bag_directory(source, bags_dir / f"{record_id}.v{version}", info=info, verifiers=[]).path

    return make


# --- fixity ledger and audit (pipeline/ledger/, pipeline/audit/) ---

@pytest.fixture
def fresh_pg_url(pg_url: str) -> Iterator[str]:
    """An empty PostgreSQL schema of its own for one test (ledgers must not see each other's bags).

    A schema (chosen through ``search_path`` in the URL) is made and dropped in milliseconds, where
    a database per test would cost a checkpoint each.
    """
    import sqlalchemy as sa

    schema = f"ledger_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{pg_url}?options=-csearch_path%3D{schema}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh ledger URL: SQLite in tmp_path, or a new database on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    return str(request.getfixturevalue("fresh_pg_url"))


def kill_after_files(call: str, files: int) -> int:
    """Run ``call`` (Python code with a ``progress`` callback in scope) in a child process and
    SIGKILL it once ``files`` payload files have been copied; return its exit status."""
    script = ("import sys\nfrom pathlib import Path\n"
              "def progress(done, files):\n"
              "    sys.stdout.write(f'{files}\\n')  # one write a line: progress may come from threads\n"
              "    sys.stdout.flush()\n" + call)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip().isdigit() and int(line) >= files:
            child.kill()
            break
    return child.wait()


# --- web: OAI-PMH provider and catalogue (pipeline/web, strongroom web) ---

@pytest.fixture(scope="session")
def web_collection(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The seed (ingested, registered, audited) and generated bags to serve; see tests/web_support.py."""
    from tests.web_support import make_collection

    return make_collection(tmp_path_factory.mktemp("web"))


@pytest.fixture(scope="session")
def web_server(web_collection: object) -> Iterator[object]:
    """``strongroom web`` serving ``web_collection`` on a free loopback port, for the session."""
    from tests.web_support import WebServer

    with WebServer(web_collection.bags) as server:  # type: ignore[attr-defined]
        yield server
