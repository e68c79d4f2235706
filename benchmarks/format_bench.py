"""The cost of format identification: ingest of small records with and without it.

    python benchmarks/format_bench.py                  # 1,000 records, 3 rounds
    python benchmarks/format_bench.py --records 200 --rounds 1

Both commands are the same library ingest loop (``workloads.py ingest-library``, every record
through ``ingest_record``, verifiers included, no ledger), one with ``STRONGROOM_IDENTIFY=1`` and
one with ``STRONGROOM_IDENTIFY=0``; the first pays siegfried's signature load (once per process)
and one in-process identification per payload file.  The issue's target: no more than 20 % slower.
``make bench`` runs this part too (``--skip formats`` leaves it out).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # noqa: E402 - the benchmark's own modules, beside this script
from measure import Case, run_rounds  # noqa: E402
from report import Row, machine, print_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
WORK = str(REPO / "benchmarks" / "workloads.py")
IDENTIFY_ENV = "STRONGROOM_IDENTIFY"  # pipeline.formats.IDENTIFY_ENV (not imported: no pipeline import here)
ON, OFF = "formats/ingest-identify", "formats/ingest-no-identify"


def run(records: Path, out: Path, rounds: int, work: str = WORK) -> dict[str, Case]:
    """Ingest ``records`` with and without identification, rounds interleaved."""
    o = out / "formats"
    cases = [Case(ON, [PY, work, "ingest-library", str(records), str(o / "on")], o / "on", {IDENTIFY_ENV: "1"}),
             Case(OFF, [PY, work, "ingest-library", str(records), str(o / "off")], o / "off", {IDENTIFY_ENV: "0"})]
    print(f"# formats: {len(cases)} commands x {rounds} round(s)", file=sys.stderr)
    run_rounds(cases, rounds, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return {c.name: c for c in cases}


def rows(results: dict[str, Case], records: int) -> list[Row]:
    """The target row: ingest time with identification / without, at most 1.20."""
    on, off = results.get(ON), results.get(OFF)
    measured = bool(on and off and on.samples and off.samples)
    ratio = on.median() / off.median() if measured and on and off else None
    cpu = on.cpu() / off.cpu() if measured and on and off else None
    return [Row(f"ingest {records:,} small records: PRONOM identification on", "≤ 1.20 × without",
                ratio, 1.20),
            # CPU time is steadier than wall time on a shared machine; shown, not a target.
            Row(f"ingest {records:,} small records: identification on, CPU (info)", "vs without", cpu, None)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--records", type=int, default=1_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", type=Path, default=REPO / "benchmarks" / "data", help="where data is built")
    args = p.parse_args(argv)
    data = args.data.resolve()
    results = run(datasets.records(data, args.records), data / "out", args.rounds)
    sizes = datasets.Sizes(records=args.records)
    print_table(rows(results, args.records), results, machine(), sizes, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
