"""The ``strongroom`` command: parsing, printing and exit codes; the work is done elsewhere.

Each group of commands lives in its own module with a ``register(subparsers)`` function; adding a
command is one module and one line in ``_COMMAND_MODULES``.  Commands that run a Prefect flow import
``flows`` lazily inside their handler, so ``bag``, ``validate`` and ``show`` never pay Prefect's
import cost.

Exit codes: 0 success, 1 the work found a problem or failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence

from pipeline.errors import StrongroomError, UsageError

_COMMAND_MODULES = (
    "pipeline.cli.ingest",  # ingest, bag, show
    "pipeline.cli.records",  # records check
    "pipeline.cli.validate",  # validate
    "pipeline.cli.audit",  # register, audit, events, serve
    "pipeline.cli.deposit",  # deposit
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (also used by the docs and tests)."""
    parser = argparse.ArgumentParser(
        prog="strongroom",
        description="Archival ingest, BagIt packaging, fixity audit and deposit.",
        epilog="Add --debug anywhere to see a traceback on errors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_in
    args_in = [a for a in args_in if a != "--debug"]
    try:
        args = build_parser().parse_args(args_in)
        args.debug = debug
        return int(args.handler(args))
    except UsageError as exc:
        return _fail(exc, debug, code=2)
    except StrongroomError as exc:
        return _fail(exc, debug, code=1)
    except BrokenPipeError:  # the reader (e.g. `| head`) went away: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print("strongroom: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the front door turns every failure into one line
        return _fail(exc, debug, code=1, unexpected=True)


def _fail(exc: BaseException, debug: bool, *, code: int, unexpected: bool = False) -> int:
    if debug:
        traceback.print_exception(exc)
    what = f"{type(exc).__name__}: {exc}" if unexpected else str(exc)
    hint = " (run with --debug for details)" if unexpected and not debug else ""
    print(f"strongroom: error: {what}{hint}", file=sys.stderr)
    return code


def _version() -> str:
    from pipeline import __version__

    return __version__
