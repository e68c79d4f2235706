"""Prefect settings Strongroom applies before Prefect is first imported in a process."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

_DEFAULTS = {
    # Offline machines: no telemetry attempts filling the logs.
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # A fresh PREFECT_HOME migrates its SQLite database on the first ephemeral start (~25 s here);
    # Prefect's default 20 s timeout is too short for that.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
    # Users read Strongroom's report; Prefect's own chatter is for --verbose.
    "PREFECT_LOGGING_LEVEL": "WARNING",
}


# The runner's cancellation observer logs a websocket traceback when the API goes away at shutdown.
_QUIET_SERVICES = ("EventsWorker", "APILogWorker", "ResultsWorker", "prefect.FlowRunCancellingObserver")


def apply_defaults(*, verbose: bool = False) -> None:
    """Set Strongroom's Prefect defaults unless the user set them already."""
    for key, value in _DEFAULTS.items():
        if key == "PREFECT_LOGGING_LEVEL" and verbose:
            value = "INFO"
        os.environ.setdefault(key, value)
    if not verbose:
        # Prefect's background services log "Still processing items..." while they flush at exit;
        # the run's outcome is already decided by then, so that is noise in a user's terminal.
        for service in _QUIET_SERVICES:
            logging.getLogger(service).setLevel(logging.ERROR)


@contextmanager
def ledger_environment(ledger_url: str | None) -> Iterator[None]:
    """``$STRONGROOM_LEDGER`` set to ``ledger_url`` for the length of a run (unchanged when None).

    A ledger URL may carry a password, and Prefect keeps flow parameters with every run and shows
    them in its UI: the URL reaches tasks (threads here, or Dask workers that inherit the
    environment) this way, never as a parameter.
    """
    from pipeline.ledger import LEDGER_ENV

    if ledger_url is None:
        yield
        return
    before = os.environ.get(LEDGER_ENV)
    os.environ[LEDGER_ENV] = ledger_url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(LEDGER_ENV, None)
        else:
            os.environ[LEDGER_ENV] = before
