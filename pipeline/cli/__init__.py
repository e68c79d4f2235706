"""The ``strongroom`` command: parsing, printing and exit codes; the work is done elsewhere.

Each group of commands lives in its own module with a ``register(subparsers)`` function; adding a
command is one module and its command names in ``COMMANDS``.  When the command line names a
command, only that command's module is imported (``strongroom validate`` need not import what
``ingest``, ``audit`` or ``deposit`` import: measured, ~0.1 s of its start-up); ``--help`` and
anything else build the full parser.  Commands that run a Prefect flow import ``flows`` lazily
inside their handler, so ``bag``, ``validate`` and ``show`` never pay Prefect's import cost.

Exit codes: 0 success, 1 the work found a problem or failed, 2 usage error, 3 an internal error
(a failure Strongroom did not foresee: a bug to report, never a verdict on the archive).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from pipeline.errors import StrongroomError, UsageError

#: Exit code of a failure nobody foresaw, kept apart from 1 ("invalid", "damaged") so that a
#: cron job or a script never reads a crash as a verdict on a bag.
INTERNAL_ERROR = 3

#: command -> the module that registers it, in the order ``--help`` lists them.
COMMANDS: dict[str, str] = {
    "ingest": "pipeline.cli.ingest",
    "bag": "pipeline.cli.ingest",
    "show": "pipeline.cli.ingest",
    "records": "pipeline.cli.records",
    "validate": "pipeline.cli.validate",
    "register": "pipeline.cli.audit",
    "audit": "pipeline.cli.audit",
    "events": "pipeline.cli.audit",
    "serve": "pipeline.cli.serve",
    "deposit": "pipeline.cli.deposit",
    "web": "pipeline.cli.web",
    "repair": "pipeline.cli.repair",
    "restore": "pipeline.cli.repair",
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless its help already states it or there is none worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or action.default in (None, False, [], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _CommandParser(argparse.ArgumentParser):
    """A command's parser: its defaults in ``--help``, its one-line help as its description, and an
    unknown option reported with the command's own usage (argparse leaves it to the top level)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)
        self.register("action", "parsers", _Commands)

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs.get("help") and kwargs.get("default") not in (None, False, []):
            kwargs["help"] = "(default: %(default)s)"  # argparse prints no line for an option without help
        return super().add_argument(*args, **kwargs)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        parsed, extras = super().parse_known_args(args, namespace)
        if extras:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


class _Commands(argparse._SubParsersAction):  # type: ignore[type-arg]
    """Subcommands whose description defaults to their one-line help."""

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if kwargs.get("help") and not kwargs.get("description"):
            text = str(kwargs["help"])
            kwargs["description"] = text[0].upper() + text[1:] + "."
        return super().add_parser(name, **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser: every command (also used by the docs and tests), or only ``command``'s.

    A module registers all of its commands; with ``command`` given, only its module is imported.
    """
    parser = argparse.ArgumentParser(
        prog="strongroom",
        description="Archival ingest, BagIt packaging, fixity audit and deposit.",
        epilog="Add --debug anywhere to see a traceback on errors.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.register("action", "parsers", _Commands)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser)
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def _command_named(args: Sequence[str]) -> str | None:
    """The command the arguments name (their first word, before any option), if it is one."""
    if args and not args[0].startswith("-") and args[0] in COMMANDS:
        return args[0]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the process exit code."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_in
    args_in = [a for a in args_in if a != "--debug"]
    try:
        args = build_parser(_command_named(args_in)).parse_args(args_in)
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
        return _fail(exc, debug, code=INTERNAL_ERROR, unexpected=True)


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
