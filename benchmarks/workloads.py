"""What one measured benchmark subprocess runs: ``python benchmarks/workloads.py NAME ARGS...``.

Each job runs in a fresh process so its peak memory (``wait4``'s ``ru_maxrss``) is its own.  Jobs
whose measure excludes a start-up cost (a Prefect server, its client) print
``{"inner": seconds}`` as their last stdout line; the bench then uses that figure.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import sys
import time
from collections.abc import Callable
from typing import Any
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHUNK = 1 << 20


def copytree_make_bag(source: str, dest: str, processes: str, algorithms: str) -> None:
    """The reference: copy the tree (bagit-python bags in place), then bagit.make_bag on the copy."""
    import bagit

    logging.getLogger("bagit").setLevel(logging.WARNING)
    shutil.copytree(source, dest)
    bagit.make_bag(dest, processes=int(processes), checksums=algorithms.split(","))


def copytree(source: str, dest: str) -> None:
    """A bare ``shutil.copytree``: what copying the files alone costs on this disk."""
    shutil.copytree(source, dest)


def strongroom_cli_peaks(*args: str) -> None:
    """``strongroom ARGS...`` in this process, then the peak memory of this process alone and of
    its largest child (bagit-python's second opinion): ``wait4`` gives only the larger of the two."""
    import resource

    from pipeline.cli import main as cli_main

    code = cli_main(list(args))
    own = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"own_peak_mb": own / 1024, "child_peak_mb": child / 1024}))
    raise SystemExit(code)


def bagit_validate(bag: str, processes: str) -> None:
    """The reference validation: bagit-python, full (every checksum)."""
    import bagit

    logging.getLogger("bagit").setLevel(logging.WARNING)
    bagit.Bag(bag).validate(processes=int(processes))


def bagit_validate_many(bags_dir: str) -> None:
    """bagit-python validating every bag of a directory, one by one (the audit reference)."""
    import bagit

    logging.getLogger("bagit").setLevel(logging.WARNING)
    started = time.perf_counter()
    for bag in sorted(Path(bags_dir).iterdir()):
        if (bag / "bagit.txt").is_file():
            bagit.Bag(str(bag)).validate(processes=1)
    _inner(time.perf_counter() - started)


def _hash_one(job: tuple[str, tuple[str, ...]]) -> int:
    path, algorithms = job
    hashers = [hashlib.new(a) for a in algorithms]
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(view):
            for h in hashers:
                h.update(view[:n])
            size += n
    for h in hashers:
        h.hexdigest()
    return size


def hashlib_limit(directory: str, algorithms: str, workers: str) -> None:
    """Plain hashlib over the same bytes, same algorithms, one process per core: the hashing limit.

    Largest files first so that the cores finish together (the best a scheduler can do).
    """
    algs = tuple(algorithms.split(","))
    files = [p for p in Path(directory).rglob("*") if p.is_file()]
    files.sort(key=lambda p: p.stat().st_size, reverse=True)
    jobs = [(str(p), algs) for p in files]
    # Chunks small enough that every worker gets a share: with 4 large files, a chunk of 16 gave
    # them all to one worker and the "limit" ran on one core.
    chunk = max(1, min(16, len(jobs) // (int(workers) * 8)))
    with multiprocessing.get_context("fork").Pool(int(workers)) as pool:
        sum(pool.imap_unordered(_hash_one, jobs, chunksize=chunk))


def strongroom_bag_library(source: str, dest: str, verifiers: str) -> None:
    """``bag_directory`` with a chosen set of verifiers (for the cost split of ``strongroom bag``)."""
    from pipeline.bag.second_opinion import bagit_python_findings
    from pipeline.bag.validator import validate_bag
    from pipeline.bag.writer import bag_directory

    def strongroom(path: Path) -> list[Any]:
        return list(validate_bag(path, depth="full").findings)

    chosen = {"none": [], "strongroom": [strongroom], "bagit": [bagit_python_findings],
              "both": [strongroom, bagit_python_findings]}[verifiers]
    bag_directory(Path(source), Path(dest), verifiers=chosen)


def ingest_library(records_dir: str, bags_dir: str) -> None:
    """Every record through ``ingest_record`` in one loop: the library alone, no ledger."""
    from pipeline.ingest import ingest_record, prepare_bags_dir
    from pipeline.records import discover_records

    started = time.perf_counter()
    bags = Path(bags_dir)
    prepare_bags_dir(bags)
    failed = [r for r in (ingest_record(p, bags) for p in discover_records(Path(records_dir)))
              if r.outcome != "bagged"]
    if failed:
        raise SystemExit(f"ingest failed: {failed[0].error}")
    _inner(time.perf_counter() - started)


def ingest_flow(records_dir: str, bags_dir: str) -> None:
    """The same records through the Prefect ingest flow (on the server PREFECT_API_URL names)."""
    from flows.settings import apply_defaults

    apply_defaults()
    from prefect import flow

    from flows.ingest import ingest_flow as run_flow

    @flow(name="strongroom-bench-warm-up")
    def warm_up() -> None:
        """Connects the client once, so the measure excludes start-up."""

    warm_up()
    started = time.perf_counter()
    report = run_flow(records_dir=records_dir, bags_dir=bags_dir, use_ledger=False)
    elapsed = time.perf_counter() - started
    if report["failed"]:
        raise SystemExit(f"ingest flow: {report['failed']} record(s) failed")
    _inner(elapsed)


def ingest_library_ledger(records_dir: str, bags_dir: str, ledger_url: str) -> None:
    """Ingest every record and register its bag in a ledger (the audit benchmark's fixture)."""
    from pipeline.ingest import ingest_record, prepare_bags_dir, register_result
    from pipeline.ledger import Ledger
    from pipeline.records import discover_records

    bags = Path(bags_dir)
    prepare_bags_dir(bags)
    with Ledger.open(ledger_url, bags_dir=bags) as ledger:
        for record in discover_records(Path(records_dir)):
            result = register_result(ingest_record(record, bags), ledger)
            if result.outcome != "bagged":
                raise SystemExit(f"ingest failed: {result.error}")


def audit_flow(bags_dir: str, ledger_url: str) -> None:
    """Every registered bag through the Prefect audit flow (on the server PREFECT_API_URL names)."""
    from flows.settings import apply_defaults

    apply_defaults()
    from prefect import flow

    from flows.audit import run_audit_flow as run_flow

    @flow(name="strongroom-bench-warm-up")
    def warm_up() -> None:
        """Connects the client once, so the measure excludes start-up."""

    warm_up()
    started = time.perf_counter()
    state = run_flow(bags_dir, ledger_url=ledger_url, older_than=None)
    elapsed = time.perf_counter() - started
    if not state.is_completed():
        raise SystemExit(f"audit flow: {state.message}")
    _inner(elapsed)


def audit_library(bags_dir: str, ledger_url: str) -> None:
    """The same audit through ``pipeline.audit.run_audit`` alone (no Prefect): the cost split."""
    from pipeline.audit import AuditOptions, run_audit
    from pipeline.ledger import Ledger

    started = time.perf_counter()
    with Ledger.open(ledger_url, bags_dir=Path(bags_dir)) as ledger:
        report = run_audit(ledger, AuditOptions())
    if report.damaged:
        raise SystemExit(f"audit: {len(report.damaged)} bag(s) damaged")
    _inner(time.perf_counter() - started)


def audit_library_processes(bags_dir: str, ledger_url: str, count: str) -> None:
    """``count`` audit-library processes started together on one ledger; the time until the last
    ends, each measured as ``audit_library`` measures itself (interpreter start-up excluded)."""
    import subprocess

    procs = [subprocess.Popen([sys.executable, __file__, "audit-library", bags_dir, ledger_url],
                              stdout=subprocess.PIPE, text=True) for _ in range(int(count))]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"audit processes exited {[p.returncode for p in procs]}")
    _inner(max(json.loads(out.strip().splitlines()[-1])["inner"] for out in outs))


def _inner(seconds: float) -> None:
    print(json.dumps({"inner": seconds}))


JOBS: dict[str, Callable[..., None]] = {
    "copytree": copytree,
    "strongroom-cli-peaks": strongroom_cli_peaks,
    "copytree-make-bag": copytree_make_bag,
    "bagit-validate": bagit_validate,
    "bagit-validate-many": bagit_validate_many,
    "hashlib-limit": hashlib_limit,
    "strongroom-bag-library": strongroom_bag_library,
    "ingest-library": ingest_library,
    "ingest-flow": ingest_flow,
    "ingest-library-ledger": ingest_library_ledger,
    "audit-flow": audit_flow,
    "audit-library": audit_library,
    "audit-library-processes": audit_library_processes,
}

if __name__ == "__main__":
    JOBS[sys.argv[1]](*sys.argv[2:])
