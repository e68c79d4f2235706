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
ingest writes many of them - never pay; the writer starts it while it copies the payload
(:class:`SecondOpinion`), so it is ready when the bag is.  Payloads of large files are validated
there with one bagit-python process per core (:func:`processes_for`).  It is the same full
validation either way, and its complaints are explained by the same code.
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

#: Bags of at least this many bytes whose files average LARGE_FILE bytes or more are validated in
#: a child with one bagit-python process per core (at most MAX_PROCESSES): hashing-bound work
#: that bagit-python otherwise does on one core.  4 files of 256 MiB: 1.57 s with one process,
#: 0.87 s with two (benchmarks/RESULTS.md, ref-validate-p1/p2); many small files gain nothing
#: (its pool pickles every file's entry) and would add a copy of its index per process.
PARALLEL_BYTES = 64 << 20
LARGE_FILE = 1 << 20
MAX_PROCESSES = 4

#: (kind, path, text) of one bagit-python complaint.
Complaint = tuple[str, str, str]


def bagit_python_findings(bag: Path, *, in_child: bool | None = None) -> list[Finding]:
    """Validate ``bag`` fully with bagit-python; its complaints as findings.

    ``in_child``: run it in a child process (default: for bags of CHILD_PROCESS_FILES files or
    more, and for those it validates with several processes, see :func:`processes_for`).
    """
    files = _payload_lines(bag)
    processes = processes_for(files, _oxum_octets(bag))
    if in_child is None:
        in_child = files >= CHILD_PROCESS_FILES or processes > 1
    if not in_child:
        return _findings(_in_process(bag))
    return _findings(_in_child(bag, processes))


class SecondOpinion:
    """bagit-python's second opinion on one bag, whose child interpreter can start early.

    The writer calls :meth:`prepare` once it knows the payload (before copying it): when the
    bag will be validated in a child, the child starts then and imports bagit (0.15-0.3 s) while
    the payload is copied, and waits for the bag's path on its stdin.  Calling the object gives
    :func:`bagit_python_findings`, through that child when it is there.  :meth:`close` ends a
    child never used (a failed write).  One object per bag: it holds that bag's child.
    """

    def __init__(self) -> None:
        self._child: subprocess.Popen[str] | None = None

    def prepare(self, files: int, octets: int) -> None:
        """Start the child now if a bag of ``files`` files and ``octets`` bytes will need one."""
        if self._child is None and (files >= CHILD_PROCESS_FILES or processes_for(files, octets) > 1):
            self._child = subprocess.Popen(_child_command(None), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True)

    def __call__(self, bag: Path) -> list[Finding]:
        child, self._child = self._child, None
        if child is None:
            return bagit_python_findings(bag)
        processes = processes_for(_payload_lines(bag), _oxum_octets(bag))
        out, err = child.communicate(json.dumps([os.fspath(bag), processes]) + "\n")
        return _findings(_answer(out, err, child.returncode))

    def close(self) -> None:
        """End a child that was started and not used (its stdin closed, it exits)."""
        child, self._child = self._child, None
        if child is not None:
            child.communicate("")


def processes_for(files: int, octets: int | None) -> int:
    """bagit-python processes for a bag of ``files`` payload files and ``octets`` bytes."""
    if octets is None or files < 2 or octets < PARALLEL_BYTES or octets < files * LARGE_FILE:
        return 1
    return max(1, min(files, MAX_PROCESSES, os.cpu_count() or 1))


def _in_process(bag: Path) -> dict[str, Any]:
    from pipeline.bag import bagit_run  # imports bagit (~0.1 s): only when it runs here

    return bagit_run.validate(os.fspath(bag))


def _in_child(bag: Path, processes: int = 1) -> dict[str, Any]:
    done = subprocess.run(_child_command(bag, processes), capture_output=True, text=True, check=False)
    return _answer(done.stdout, done.stderr, done.returncode)


def _answer(stdout: str, stderr: str, returncode: int) -> dict[str, Any]:
    try:
        answer: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):  # it crashed (killed, out of memory...): that is no opinion
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {returncode}"]
        return {"error": f"its validation did not complete ({tail[0]})", "details": None}
    return answer


def _child_command(bag: Path | None, processes: int = 1) -> list[str]:
    """The child's command line; without a bag, it reads ``[path, processes]`` from stdin."""
    # -I: no user site, no PYTHON* variables, no current directory on the path: bagit from this
    # interpreter's own site-packages, as in this process.
    script = [sys.executable, "-I", os.fspath(Path(__file__).with_name("bagit_run.py"))]
    return script + ([os.fspath(bag), str(processes)] if bag is not None else ["-"])


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


def _oxum_octets(bag: Path) -> int | None:
    """The octets of bag-info.txt's Payload-Oxum (only to choose how many processes), or None."""
    try:
        with open(bag / "bag-info.txt", "rb") as fh:
            for line in fh:
                label, _, value = line.partition(b":")
                if label.strip().lower() == b"payload-oxum":
                    octets = value.strip().split(b".")[0]
                    return int(octets) if octets.isdigit() else None
    except OSError:
        return None
    return None
