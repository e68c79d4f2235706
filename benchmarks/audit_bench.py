"""The audit at scale (``--audit-scale``): 10,000 small bags in a PostgreSQL ledger.

Targets: the audit flow at most 0.5x, the audit library at most 0.3x bagit-python validating the
bags one by one; two audit processes sharing the ledger at least 1.7x as fast as one (they
split the due bags through the ledger's claims).  The bags are ingested once (not timed) into a
fresh database; every audit run checks every bag again (a new run re-checks what was checked
before it began).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import flows_bench
from measure import Case, run_rounds

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable


def run(data: Path, out: Path, bags: int, rounds: int, work: str) -> dict[str, Case]:
    """Ingest ``bags`` records once, then audit them in the interleaved ways above."""
    records = datasets.records(data / "audit-scale", bags)
    o = out / "audit-scale"
    bags_dir = o / "bags"
    shutil.rmtree(o, ignore_errors=True)
    bags_dir.mkdir(parents=True)
    with flows_bench.prefect_server() as api_url:
        ledger = flows_bench._pg_ledger()
        print(f"# audit-scale: ingesting {bags:,} records (not timed)", file=sys.stderr)
        subprocess.run([PY, work, "ingest-library-ledger", str(records), str(bags_dir), ledger], check=True,
                       cwd=REPO, stdout=subprocess.DEVNULL)
        cases = [
            Case("audit-scale/bagit-validate-many", [PY, work, "bagit-validate-many", str(bags_dir)]),
            Case("audit-scale/audit-library", [PY, work, "audit-library", str(bags_dir), ledger]),
            Case("audit-scale/audit-library-2-processes", [PY, work, "audit-library-processes", str(bags_dir),
                                                           ledger, "2"]),
            Case("audit-scale/audit-flow", [PY, work, "audit-flow", str(bags_dir), ledger], None,
                 {"PREFECT_API_URL": api_url}),
        ]
        print(f"# audit-scale: {len(cases)} commands x {rounds} round(s)", file=sys.stderr)
        run_rounds(cases, rounds, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return {c.name: c for c in cases}
