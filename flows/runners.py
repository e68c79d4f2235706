"""Where a flow's tasks run: threads (default), local processes, or a Dask cluster.

Every Strongroom flow submits one task per record or bag, so the same flow scales from a laptop
to several machines by changing only its task runner::

    ingest_flow.with_options(task_runner=task_runner("dask", "tcp://scheduler:8786"))(...)

* ``threads`` - Prefect's ``ThreadPoolTaskRunner``: hashing releases the GIL, so threads already
  use every core for large files; the default.
* ``processes`` - Prefect's ``ProcessPoolTaskRunner``: one process per core, for many small
  records where Python itself (not hashing) is the bottleneck.
* ``dask`` - ``prefect_dask.DaskTaskRunner``: an existing cluster at ``dask_address``, or without
  one a temporary local cluster of worker processes.  Dask workers report task runs to the
  Prefect API themselves, so each needs ``PREFECT_API_URL`` (else each starts a private
  ephemeral server and its runs are lost).  For the temporary local cluster this module passes
  the current API URL on; on a real cluster set it in the workers' environment (README).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Literal, get_args

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from pipeline.errors import UsageError

RunnerKind = Literal["threads", "processes", "dask"]
RUNNER_KINDS: tuple[str, ...] = get_args(RunnerKind)
#: Settings a Dask worker process needs to behave like the flow's own process.
_WORKER_ENV = ("PREFECT_API_URL", "PREFECT_API_KEY", "DO_NOT_TRACK", "PREFECT_SERVER_ANALYTICS_ENABLED",
               "PREFECT_LOGGING_LEVEL", "STRONGROOM_LEDGER", "DASK_LOGGING__DISTRIBUTED")


def task_runner(kind: RunnerKind = "threads", dask_address: str | None = None, *,
                max_workers: int | None = None) -> TaskRunner[Any]:
    """The task runner for ``kind``; ``dask_address`` (``tcp://host:8786``) only with ``dask``."""
    if kind not in RUNNER_KINDS:
        raise UsageError(f"task runner {kind!r}: use one of {', '.join(RUNNER_KINDS)}")
    if dask_address and kind != "dask":
        raise UsageError("--dask-address needs --task-runner dask")
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=max_workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=max_workers)
    from prefect_dask.task_runners import DaskTaskRunner

    _quiet_dask()
    if dask_address:
        if not dask_address.startswith(("tcp://", "tls://", "ucx://", "inproc://")):
            raise UsageError(f"--dask-address {dask_address!r}: expected a scheduler address such as "
                             "tcp://host:8786")
        return DaskTaskRunner(address=dask_address)
    workers = max_workers or max(1, os.cpu_count() or 1)
    return DaskTaskRunner(cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                          "dashboard_address": None, "env": worker_environment()})


def _quiet_dask() -> None:
    """Dask's INFO lines (workers starting, closing) are for --verbose, like Prefect's own."""
    if os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING").upper() in ("DEBUG", "INFO"):
        return
    logging.getLogger("distributed").setLevel(logging.WARNING)
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # read by worker processes


def worker_environment() -> dict[str, str]:
    """The environment a Dask worker needs to report to this process's Prefect API.

    In ephemeral mode (no ``PREFECT_API_URL``) the ephemeral server is started now, so the flow
    and its workers share it instead of each worker starting its own.
    """
    env = {k: os.environ[k] for k in _WORKER_ENV if k in os.environ}
    env["PREFECT_API_URL"] = current_api_url()
    return env


def current_api_url() -> str:
    """The Prefect API this process talks to (starting the ephemeral server if that is the mode)."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if url:
        return str(url)
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start()
    return str(server.api_url)
