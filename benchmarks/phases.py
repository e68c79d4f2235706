"""Where the time of one ``bag_directory`` goes: the cost split RESULTS.md reports.

    PYTHONPATH=. python benchmarks/phases.py SOURCE_DIR DEST_DIR [--no-second-opinion]

It wraps the writer's phases (payload check, copy, tag files, flush, each verifier, publish) with
timers, runs one bag and prints seconds per phase and the CPU of the process and its children.
The flush runs beside the verifiers, so phases overlap: "verify" is the wall time of both
verifiers together.  Run it with another checkout on ``PYTHONPATH`` to split the code before.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_TIMES: dict[str, float] = {}


def _timed(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            _TIMES[name] = _TIMES.get(name, 0.0) + time.perf_counter() - started

    for attr in ("prepare", "close"):  # a verifier object's hooks (bagit-python's early child)
        if hasattr(func, attr):
            setattr(timed, attr, getattr(func, attr))
    return timed


def main(argv: list[str]) -> None:
    """Bag ``argv[0]`` into ``argv[1]`` once, phases timed; print them as JSON."""
    from pipeline.bag import writer

    second = "--no-second-opinion" not in argv
    for name in ("check_payload", "_copy_payload", "_write_tag_files", "flush_tree", "_verify", "_publish",
                 "_add_final_tag_files"):
        if hasattr(writer, name):
            setattr(writer, name, _timed(name.strip("_"), getattr(writer, name)))
    try:
        verifiers = writer.default_verifiers(second_opinion=second)  # type: ignore[call-arg]
    except TypeError:  # a checkout before the option
        verifiers = writer.default_verifiers()
    timed = [_timed(f"verifier {i + 1}", v) for i, v in enumerate(verifiers)]
    started = time.perf_counter()
    writer.bag_directory(Path(argv[0]), Path(argv[1]), verifiers=timed)
    _TIMES["total"] = time.perf_counter() - started
    t = os.times()
    _TIMES["cpu (this process)"] = t.user + t.system
    _TIMES["cpu (children)"] = t.children_user + t.children_system
    print(json.dumps({k: round(v, 2) for k, v in _TIMES.items()}))


if __name__ == "__main__":
    main(sys.argv[1:])
