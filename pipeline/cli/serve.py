"""CLI command ``serve``: the scheduled ingest and audit deployments, with a Prefect server if none is set.

Without ``PREFECT_API_URL`` the schedules need a server that runs Prefect's scheduler (the
ephemeral API does not), so ``serve`` starts one itself (``flows/server.py``) and stops it on exit.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, ContextManager

from pipeline.cli.audit import _audit_scope_options, _ledger_options, audit_options
from pipeline.cli.web import serve_options as _web_options
from pipeline.errors import UsageError

_DESCRIPTION = (
    "Serve two Prefect deployments until SIGTERM or Ctrl-C: strongroom-ingest (ingest new or changed "
    "records; idempotent, so a short cron watches the records directory) and strongroom-audit-nightly "
    "(the rolling fixity audit). With PREFECT_API_URL set, they are registered with that server. "
    "Without it, serve starts a Prefect server of its own on a free loopback port (database in "
    "$PREFECT_HOME, default ~/.prefect), prints the UI's address, and stops the server when it stops. "
    "Exit 0 when stopped by a signal, 1 if the server fails, 2 on usage errors.")


class _Defaults(argparse.HelpFormatter):
    """Show an option's default unless its help already states one or it has none."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def register(sub: "argparse._SubParsersAction[Any]") -> None:
    """Add ``serve``."""
    s = sub.add_parser("serve", help="run scheduled ingest and audit (Prefect) until stopped",
                       description=_DESCRIPTION, formatter_class=_Defaults)
    s.add_argument("--records", dest="records_dir", type=Path, default=Path("records"), metavar="DIR",
                   help="records directory to watch")
    _ledger_options(s)
    s.add_argument("--ingest-cron", default="*/15 * * * *", metavar="CRON",
                   help="when to ingest new or changed records")
    s.add_argument("--audit-cron", default="0 2 * * *", metavar="CRON", help="when to run the rolling audit")
    _audit_scope_options(s, default_older_than="90d")
    s.add_argument("--audit-repair", action="store_true",
                   help="the audit repairs damaged copies from verified ones right after its check")
    s.add_argument("--timezone", default="UTC", help="time zone of the cron schedules")
    _web_options(s)
    s.set_defaults(handler=run_serve)


#: Seconds Prefect's runner gets to stop by itself after the server died.
_DEATH_GRACE = 10.0


class _Stop(Exception):
    """SIGTERM arrived before Prefect's runner installed its own handler."""


@contextmanager
def _sigterm_stops() -> Iterator[None]:
    """SIGTERM means "stop cleanly" also while the server starts (Prefect's runner replaces it later)."""
    def handler(signum: int, frame: object) -> None:
        raise _Stop()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_serve(args: argparse.Namespace) -> int:
    """Start (if needed) a Prefect server, serve the scheduled deployments until interrupted."""
    options = audit_options(args)  # bad options are a usage error before Prefect starts
    from pipeline.ledger import resolve_url

    resolve_url(args.ledger, args.bags)  # a missing bags directory fails here, in one line
    if not args.records_dir.is_dir():
        raise UsageError(f"{args.records_dir}: no such records directory")
    from pipeline.cli.web import start_beside

    start_beside(args)  # --web: the port is taken here, before Prefect starts
    from flows.settings import apply_defaults

    apply_defaults()
    _drop_stop_artifacts()
    from flows.server import ServerError, local_server

    died: list[int] = []

    def on_death(code: int) -> None:
        died.append(code)
        os.kill(os.getpid(), signal.SIGTERM)  # stops Prefect's runner like a user's SIGTERM
        # ... but the runner's shutdown talks to the API it just lost and retries for minutes:
        # after a grace period, give the one error line and leave.
        threading.Timer(_DEATH_GRACE, _exit_dead, args=(code,)).start()

    own = not os.environ.get("PREFECT_API_URL")
    try:
        with _sigterm_stops():
            server: ContextManager[str | None] = local_server(on_death) if own else nullcontext(None)
            with server as api:
                if api is not None:
                    os.environ["PREFECT_API_URL"] = api  # before Prefect is imported; runs inherit it
                _serve(args, options)
    except (_Stop, KeyboardInterrupt, SystemExit):
        pass
    except Exception:
        if not died:
            raise
    if died:
        raise ServerError(_death_message(died[0]))
    _quiet_teardown()
    print("strongroom serve: stopped", flush=True)
    return 0


def _quiet_teardown() -> None:
    """After a stop by signal, keep the interpreter's teardown noise off the user's terminal.

    A signal that lands while Prefect's runner is still starting leaves its event loop and its
    start coroutine unfinished; when they are collected at exit Python prints "Exception ignored
    in BaseEventLoop.__del__" and "coroutine ... was never awaited".  They are not failures of the
    stop (the runner and the server are already down), so they are not shown.
    """
    import warnings

    warnings.filterwarnings("ignore", message="coroutine .* was never awaited", category=RuntimeWarning)
    sys.unraisablehook = lambda unraisable: None


def _drop_stop_artifacts() -> None:
    """Keep two known artifacts of a stop during Prefect's start-up off the terminal, from the start.

    A SIGINT that lands while asyncio builds an event loop leaves a half-built loop whose
    ``__del__`` fails (``AttributeError: ... '_ssock'``), and the runner's start coroutine is
    never awaited.  Both can be collected while the stop unwinds, before the end of ``run_serve``,
    so they are filtered here by their exact shape; every other unraisable error still shows.
    """
    import warnings

    warnings.filterwarnings("ignore", message="coroutine 'Runner.start' was never awaited",
                            category=RuntimeWarning)
    default = sys.unraisablehook

    def hook(unraisable: Any) -> None:
        where = getattr(unraisable.object, "__qualname__", "")
        if where == "BaseEventLoop.__del__" and isinstance(unraisable.exc_value, AttributeError):
            return
        default(unraisable)

    sys.unraisablehook = hook


def _death_message(code: int) -> str:
    return f"the Prefect server that serve started exited (code {code}); serve stopped"


def _exit_dead(code: int) -> None:
    print(f"strongroom: error: {_death_message(code)}", file=sys.stderr, flush=True)
    os._exit(1)  # noqa: SLF001 - the main thread is stuck in Prefect's retries against a dead API


def _serve(args: argparse.Namespace, options: Any) -> None:
    from flows.serve import ServeOptions, serve

    serve(ServeOptions(records_dir=args.records_dir, bags_dir=args.bags, ledger_url=args.ledger,
                       ingest_cron=args.ingest_cron, audit_cron=args.audit_cron, timezone=args.timezone,
                       audit=options, audit_repair=args.audit_repair))
