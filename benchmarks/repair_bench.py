"""The repair target: healing one flipped file in a 1 GiB bag costs about the time to read that file.

A bag of the large data set (4 x 256 MiB, built once by :mod:`datasets`) is bagged, registered and
deposited to a directory (not timed).  Each round flips one byte of one payload file, and

* ``repair/sr-repair-one-file`` repairs it from the audit's findings (the checks of
  ``strongroom audit --repair``, made before the clock starts): one verified read of the good
  file, one write, a flush, a re-read and a rename;
* ``repair/hashlib-read-file`` reads that file once with hashlib, both of the bag's algorithms:
  the floor any verified copy pays;
* ``repair/sr-repair-cli`` (info) is ``strongroom repair`` as a user runs it: it checks every copy
  first, so it reads the whole bag twice over.

Both timed reads run warm (the check, or an untimed first read, leaves the file in the page
cache): what is compared is the hashing and writing, not the disk.  Jobs report their own time
(``{"inner": s}``), as :mod:`workloads` jobs do.

    python benchmarks/repair_bench.py          # this part alone
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # noqa: E402
from measure import Case, run_rounds  # noqa: E402
from report import Row  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
ME = str(Path(__file__).resolve())
NAME = "bench-repair.v1"
FILE = "data/volume-01.bin"


def run(data: Path, out: Path, rounds: int) -> dict[str, Case]:
    """Build the bag and its replica once per run, then measure the repair cases, interleaved."""
    sizes = datasets.Sizes()
    src = datasets.large_files(data / "repair", sizes.large_files, sizes.large_size)  # its own: --quick shrinks "large"
    work = out / "repair"
    bags = work / "bags"
    subprocess.run([PY, ME, "setup", str(src), str(bags), str(work / "copies")], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    rel = FILE if (bags / NAME / FILE).is_file() else sorted(p.relative_to(bags / NAME).as_posix()
                                                             for p in (bags / NAME / "data").iterdir())[0]
    ledger = f"sqlite:///{bags / '.strongroom-ledger.sqlite'}"
    cases = [
        Case("repair/sr-repair-one-file", [PY, ME, "repair-from-checks", str(bags), ledger, rel]),
        Case("repair/hashlib-read-file", [PY, ME, "hashlib-read", str(work / "copies" / NAME / rel)]),
        Case("repair/sr-repair-cli", [PY, ME, "repair-cli", str(bags), rel]),
    ]
    print(f"# repair: {len(cases)} commands x {rounds} round(s)", file=sys.stderr)
    try:
        run_rounds(cases, rounds, REPO)
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return {c.name: c for c in cases}


def rows(results: dict[str, Case]) -> list[Row]:
    """The repair row of the table, and the CLI's whole cost for information."""
    def ratio(num: str, den: str) -> float | None:
        if num not in results or den not in results or not results[num].samples or not results[den].samples:
            return None
        return results[num].median() / results[den].median()

    return [Row("repair one flipped 256 MiB file of a 1 GiB bag (from the audit's findings)",
                "≈ reading that file (≤ 2 × hashlib)", ratio("repair/sr-repair-one-file", "repair/hashlib-read-file"),
                2.0),
            Row("(info) `strongroom repair` of that bag: checks both copies first", "vs reading the file",
                ratio("repair/sr-repair-cli", "repair/hashlib-read-file"), None)]


# -- jobs (run in their own process by the bench) ---------------------------------------------------


def _setup(src: str, bags: str, copies: str) -> None:
    sys.path.insert(0, str(REPO))
    from pipeline.audit import register_bag
    from pipeline.bag.writer import bag_directory
    from pipeline.deposit import deposit_bag
    from pipeline.ledger import Ledger

    Path(bags).mkdir(parents=True, exist_ok=True)
    info = [("Source-Organization", "Strongroom benchmark"), ("External-Identifier", "bench-repair"),
            ("External-Description", "repair benchmark")]
    bag = bag_directory(Path(src), Path(bags) / NAME, info=info, verifiers=[]).path
    with Ledger.open(bags_dir=Path(bags)) as ledger:
        register_bag(ledger, bag, origin="ingest")
        deposit_bag(bag, f"file://{copies}?create=1", ledger=ledger, source_verified=True)


def _flip(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(12345)
        value = fh.read(1)[0]
        fh.seek(12345)
        fh.write(bytes([value ^ 0xFF]))


def _repair_from_checks(bags: str, ledger_url: str, rel: str) -> None:
    sys.path.insert(0, str(REPO))
    from pipeline.audit import check_location
    from pipeline.audit.repair import RepairOptions, repair_bag
    from pipeline.ledger import Ledger

    _flip(Path(bags) / NAME / rel)
    with Ledger.open(ledger_url) as ledger:
        reference = ledger.files(NAME)
        checks = [check_location(loc, NAME, reference, ("sha512", "sha256")) for loc in ledger.locations(NAME)]
        os.sync()
        started = time.perf_counter()
        result = repair_bag(ledger, NAME, RepairOptions(bags_dir=Path(bags)), checks=checks)
        elapsed = time.perf_counter() - started
    if result.outcome != "repaired" or len(result.actions) != 1:
        raise SystemExit(f"repair did not repair the one file: {result.outcome} {result.problems}")
    print(json.dumps({"inner": elapsed}))


def _hashlib_read(path: str) -> None:
    def read() -> None:
        hashers = [hashlib.sha512(), hashlib.sha256()]
        with open(path, "rb", buffering=0) as fh:
            while block := fh.read(1 << 20):
                for h in hashers:
                    h.update(block)

    read()  # warm, as the repair's source is after the audit's check
    started = time.perf_counter()
    read()
    print(json.dumps({"inner": time.perf_counter() - started}))


def _repair_cli(bags: str, rel: str) -> None:
    _flip(Path(bags) / NAME / rel)
    os.sync()
    started = time.perf_counter()
    subprocess.run([PY, "-m", "pipeline.cli", "repair", "--bags", bags], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL)
    print(json.dumps({"inner": time.perf_counter() - started}))


if __name__ == "__main__":
    jobs = {"setup": _setup, "repair-from-checks": _repair_from_checks, "hashlib-read": _hashlib_read,
            "repair-cli": _repair_cli}
    if len(sys.argv) > 1 and sys.argv[1] in jobs:
        jobs[sys.argv[1]](*sys.argv[2:])
    else:
        data = REPO / "benchmarks" / "data"
        results = run(data, data / "out", int(sys.argv[1]) if len(sys.argv) > 1 else 3)
        for row in rows(results):
            print(f"{row.work}: {row.measured()} (target {row.target}; met: {row.met()})")
        for name, case in results.items():
            print(f"{name}: median {case.median():.2f} s ({case.spread()})")
