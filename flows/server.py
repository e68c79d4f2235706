"""A Prefect server that ``strongroom serve`` starts, supervises and stops when none is configured.

Prefect's ephemeral API (what a flow gets without ``PREFECT_API_URL``) runs no scheduler service,
so served cron schedules would never create a run.  ``strongroom serve`` therefore starts a real
``prefect server start`` on a free loopback port, as a child process of the same Python, with its
SQLite database where Prefect keeps it (``$PREFECT_HOME``, default ``~/.prefect``).

This module imports no Prefect: ``PREFECT_API_URL`` must be in the environment before Prefect is
first imported, since Prefect reads its settings then.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.errors import StrongroomError

#: The first start on a fresh PREFECT_HOME migrates the database (~25 s on a loaded 2-core machine).
STARTUP_TIMEOUT = 180.0
STOP_TIMEOUT = 20.0


class ServerError(StrongroomError):
    """The Prefect server that ``serve`` started did not come up or stopped."""


def prefect_home() -> Path:
    """Where Prefect keeps its database and settings (``$PREFECT_HOME``, default ``~/.prefect``)."""
    return Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: receive SIGTERM when serve dies, even by SIGKILL (Linux only)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: serve's own finally-block still stops it
        pass


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server, kill it if it does not stop in time; wait so that it is not orphaned."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _wait_healthy(proc: subprocess.Popen[bytes], api: str, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(api):
        if proc.poll() is not None:
            raise ServerError(f"{api}: the Prefect server exited during start-up (code {proc.returncode}); "
                              f"see {log}")
        if time.monotonic() > deadline:
            raise ServerError(f"{api}: the Prefect server did not answer within {timeout:.0f} s; see {log}")
        time.sleep(0.5)


@contextmanager
def local_server(on_death: Callable[[int], None], *,
                 timeout: float = STARTUP_TIMEOUT) -> Iterator[str]:
    """Start ``prefect server start`` on loopback; yield its API URL; stop it on leaving.

    ``on_death(returncode)`` is called from a watcher thread if the server exits while in use.
    The server's output goes to ``$PREFECT_HOME/strongroom-server.log`` (Prefect's banner and access
    log are not Strongroom's report).
    """
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    log = home / "strongroom-server.log"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    prefect = Path(sys.executable).parent / "prefect"
    command = [str(prefect)] if prefect.exists() else [sys.executable, "-m", "prefect"]
    print(f"strongroom serve: starting a Prefect server (database in {home}; the first start takes "
          f"~30 s) ...", flush=True)
    with open(log, "ab") as out:
        # A session of its own: a Ctrl-C in the terminal reaches serve, which stops the runner first
        # and then this server, rather than both at once (the runner would lose its API mid-stop).
        proc = subprocess.Popen([*command, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=_die_with_parent)
    stopping = threading.Event()
    try:
        _wait_healthy(proc, api, log, timeout)

        def watch() -> None:
            code = proc.wait()
            if not stopping.is_set():
                on_death(code)

        threading.Thread(target=watch, name="strongroom-server-watch", daemon=True).start()
        print(f"strongroom serve: Prefect UI at http://127.0.0.1:{port} (API {api})", flush=True)
        yield api
    finally:
        stopping.set()
        _stop(proc)
