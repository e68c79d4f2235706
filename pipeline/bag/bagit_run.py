"""One full bagit-python validation, as plain data: run in Strongroom's process or as a script.

This module imports nothing of Strongroom's, so :mod:`pipeline.bag.second_opinion` can run it
as ``python -I pipeline/bag/bagit_run.py BAG`` in a child interpreter that holds only bagit
(pydantic & co would add ~20 MB to it) and read its JSON answer.

bagit-python stops at its completeness check: in a bag with a ``%`` in a payload name (which its
decoder cannot read, an excused complaint) it would never compare a single digest.  So when its
only complaints are about completeness, its own digest check (``Bag._validate_entries``, what
``validate()`` runs next) is run too and its complaints added: the second opinion stays a full
validation whatever names the bag holds.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import bagit

_COMPLETENESS = (bagit.FileMissing, bagit.UnexpectedFile)


def validate(path: str, processes: int = 1) -> dict[str, Any]:
    """``{"valid": True}`` or ``{"error": text, "details": [[kind, path, text], ...] or None}``.

    ``processes`` > 1: bagit-python hashes that many files at once (its own multiprocessing
    pool: only in a child interpreter of its own, never in a threaded process).
    """
    logger = logging.getLogger("bagit")
    level = logger.level
    logger.setLevel(logging.CRITICAL)  # it logs every file it hashes; the findings say what matters
    try:
        bag = bagit.Bag(path)
        try:
            bag.validate(processes=processes)
        except bagit.BagValidationError as exc:
            details = list(getattr(exc, "details", None) or [])
            if details and all(isinstance(d, _COMPLETENESS) for d in details):
                try:
                    bag._validate_entries(processes)
                except bagit.BagValidationError as more:
                    details += list(getattr(more, "details", None) or [])
            return {"error": str(exc), "details": [[type(d).__name__, str(getattr(d, "path", "")), str(d)]
                                                   for d in details]}
    except bagit.BagError as exc:
        return {"error": str(exc), "details": None}
    finally:
        logger.setLevel(level)
    return {"valid": True}


def _main(args: list[str]) -> None:
    """``bagit_run.py BAG [PROCESSES]``, or ``bagit_run.py -``: started early, bagit already
    imported, it waits for ``[bag, processes]`` (JSON) on stdin; at end of input it just exits."""
    if args[0] != "-":
        print(json.dumps(validate(args[0], int(args[1]) if len(args) > 1 else 1)))
        return
    line = sys.stdin.readline()
    if line.strip():
        path, processes = json.loads(line)
        print(json.dumps(validate(str(path), int(processes))))


if __name__ == "__main__":
    _main(sys.argv[1:])
