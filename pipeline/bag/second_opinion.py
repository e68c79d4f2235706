"""bagit-python as an independent second opinion on every bag Strongroom writes.

bagit-python 1.9.0 is the reference implementation, but it cannot read one thing RFC 8493
requires: a payload name containing ``%`` (written ``%25`` in manifests).  Its decoder knows only
``%0D``/``%0A``, so it reports such a file as missing and its on-disk name as unexpected.  Those
complaints - and only those - are set aside here and said in an ``info`` finding; every other
complaint is an error that stops publication.

**Where it runs.**  ``bagit.Bag(path).validate()`` keeps an index of the whole bag (every path
and digest from the manifests, then every computed digest: measured 1.4 KB a file, 163 MB peak
RSS validating a 100,000 x 1 KiB bag on its own, 21 MB of it the interpreter and its import).
In the writer's process that index came on top of Strongroom's own (190 MB peak RSS for
``strongroom bag`` of 100,000 files even with a flat writer; in a child: the Strongroom process
59 MB, the child 163 MB; at 10,000 files 50 MB in-process, 43 MB with the child).  For bags of :data:`CHILD_PROCESS_FILES` files or
more it therefore runs in a fresh child interpreter that imports nothing but bagit: the writer's
process stays flat and bagit-python's index is returned to the system when the child ends.
Starting the child costs 0.15-0.3 s here (interpreter + ``import bagit``), which small bags -
ingest writes many of them - never pay.  It is the same full validation either way, and its
complaints are explained by the same code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.bag.names import encode_path
from pipeline.findings import Finding

CODE = "SECOND-OPINION"
#: Bags with at least this many payload files are validated by bagit-python in a child process.
#: At 10,000 files its index is ~14 MB and the child's start ~0.2 s of a 10-15 s job (1-2%).
CHILD_PROCESS_FILES = 10_000

#: (kind, path, text) of one bagit-python complaint.
Complaint = tuple[str, str, str]


def bagit_python_findings(bag: Path, *, in_child: bool | None = None) -> list[Finding]:
    """Validate ``bag`` fully with bagit-python; its complaints as findings.

    ``in_child``: run it in a child process (default: for bags of CHILD_PROCESS_FILES files or more).
    """
    if in_child is None:
        in_child = _payload_lines(bag) >= CHILD_PROCESS_FILES
    return _findings(_in_child(bag) if in_child else _in_process(bag))


def _in_process(bag: Path) -> dict[str, Any]:
    from pipeline.bag import bagit_run  # imports bagit (~0.1 s): only when it runs here

    return bagit_run.validate(os.fspath(bag))


def _in_child(bag: Path) -> dict[str, Any]:
    done = subprocess.run(_child_command(bag), capture_output=True, text=True, check=False)
    try:
        answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # it crashed (killed, out of memory...): that is no opinion
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit status {done.returncode}"]
        return {"error": f"its validation did not complete ({tail[0]})", "details": None}
    return answer


def _child_command(bag: Path) -> list[str]:
    # -I: no user site, no PYTHON* variables, no current directory on the path: bagit from this
    # interpreter's own site-packages, as in this process.
    return [sys.executable, "-I", os.fspath(Path(__file__).with_name("bagit_run.py")), os.fspath(bag)]


def _findings(answer: dict[str, Any]) -> list[Finding]:
    if answer.get("valid"):
        return []
    if answer["details"] is None:
        return [_rejects(answer["error"])]
    return _explain(answer["error"], [(str(k), str(p), str(t)) for k, p, t in answer["details"]])


def _rejects(message: str) -> Finding:
    return Finding(code=CODE, message=f"bagit-python rejects the bag: {message}")


def _explain(error: str, details: Sequence[Complaint]) -> list[Finding]:
    if not details:
        return [_rejects(error)]
    missing = {path for kind, path, _ in details if kind == "FileMissing"}
    unexpected = {path for kind, path, _ in details if kind == "UnexpectedFile"}
    # A name with '%' appears to bagit-python as missing under its encoded form and unexpected
    # under its real one; pair them up, nothing else is excused.
    excused = {p for p in unexpected if "%" in p and encode_path(p) in missing}
    excused_encoded = {encode_path(p) for p in excused}
    found: list[Finding] = []
    for _, path, text in details:
        if path in excused or path in excused_encoded:
            continue
        found.append(Finding(code=CODE, path=path, message=f"bagit-python: {text}"))
    if excused and not found:
        found.append(Finding(code=CODE, severity="info",
                             message=f"bagit-python agrees, except that it cannot read {len(excused)} "
                                     "payload name(s) containing '%' (its decoder lacks %25)"))
    return found


def _payload_lines(bag: Path) -> int:
    """Lines of the longest payload manifest: the bag's file count, read in 1 MiB blocks."""
    most = 0
    try:
        for entry in os.scandir(bag):
            if entry.name.startswith("manifest-") and entry.is_file(follow_symlinks=False):
                with open(entry.path, "rb") as fh:
                    most = max(most, sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b"")))
    except OSError:
        return 0  # bagit-python, in this process, says what is wrong with it
    return most
