"""Strongroom against the reference tools, side by side, on data this script builds itself.

    make bench                              # the full run (about 11 minutes on 2 cores)
    make bench BENCH_ARGS=--quick           # small data, 1 round: checks every measure works
    python benchmarks/bench.py --rounds 5 --skip scale,flows

Each measured command runs in its own subprocess (time and peak memory are its own), from a
flushed disk, several rounds interleaved; the table shows medians and the ratios the issue sets
as targets.  Nothing here is a test: no figure fails a build.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datasets  # noqa: E402 - the benchmark's own modules, beside this script
import flows_bench  # noqa: E402
import format_bench  # noqa: E402
import harvest_bench  # noqa: E402
import repair_bench  # noqa: E402
from measure import Case, run_rounds  # noqa: E402
from report import Row, machine, print_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
WORK = str(REPO / "benchmarks" / "workloads.py")
ALGS = "sha512,sha256"
PARTS = ("large", "small", "scale", "flows", "harvest", "formats", "repair")


def main(argv: list[str] | None = None) -> int:
    """Build the data, run every part asked for, print the table."""
    args = _parser().parse_args(argv)
    sizes = datasets.Sizes.quick() if args.quick else datasets.Sizes()
    rounds = args.rounds or (1 if args.quick else 3)
    skip = {s for s in args.skip.split(",") if s}
    data = args.data.resolve()
    out = data / "out"
    print(f"# data in {data}; {rounds} round(s); sizes {datasets.describe(sizes)}", file=sys.stderr)
    rows: list[Row] = []
    results: dict[str, Case] = {}
    if "large" not in skip:
        src = datasets.large_files(data, sizes.large_files, sizes.large_size)
        results |= _bag_and_validate("large", src, out, rounds, with_limit=True)
    if "small" not in skip:
        src = datasets.small_files(data, "small", sizes.small_files, sizes.small_size)
        results |= _bag_and_validate("small", src, out, rounds, with_limit=False)
    if "scale" not in skip:
        src = datasets.small_files(data, "scale", sizes.scale_files, sizes.scale_size)
        results |= _scale(src, out, args.scale_rounds)
    if "flows" not in skip:
        recs = datasets.records(data, sizes.records)
        results |= flows_bench.run(recs, out, args.flow_rounds, WORK)
    if "harvest" not in skip:
        results |= harvest_bench.run(data, out, rounds)
    if "formats" not in skip:
        results |= format_bench.run(datasets.records(data, sizes.records), out, rounds, WORK)
    if "repair" not in skip:
        results |= repair_bench.run(data, out, rounds)
    rows = (_rows(results, sizes) + harvest_bench.rows(results) + format_bench.rows(results, sizes.records)
            + repair_bench.rows(results))
    text = print_table(rows, results, machine(), sizes, rounds)
    if args.save:
        args.save.write_text(text, encoding="utf-8")
        (args.save.with_suffix(".json")).write_text(json.dumps(
            {name: [s.__dict__ for s in case.samples] for name, case in results.items()}, indent=1))
    shutil.rmtree(out, ignore_errors=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data and 1 round (for iterating)")
    p.add_argument("--rounds", type=int, default=0, help="rounds for the large and small parts (default 3)")
    p.add_argument("--scale-rounds", type=int, default=1, help="rounds for the 100,000-file part")
    p.add_argument("--flow-rounds", type=int, default=1, help="rounds for the flow part")
    p.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    p.add_argument("--data", type=Path, default=REPO / "benchmarks" / "data", help="where data is built")
    p.add_argument("--save", type=Path, help="also write the table (markdown) and raw samples (.json) here")
    return p


def _cli(*args: str) -> list[str]:
    return [PY, "-m", "pipeline.cli", *args]


def _bag_and_validate(label: str, src: Path, out: Path, rounds: int, *, with_limit: bool) -> dict[str, Case]:
    """Bagging and full validation of one data set, Strongroom and references interleaved."""
    bag = _reference_bag(src, out.parent / "bags" / label)
    o = out / label
    cases = [
        Case(f"{label}/ref-bag-p1", [PY, WORK, "copytree-make-bag", str(src), str(o / "r1" / "bag"), "1", ALGS],
             o / "r1"),
        Case(f"{label}/ref-bag-p2", [PY, WORK, "copytree-make-bag", str(src), str(o / "r2" / "bag"), "2", ALGS],
             o / "r2"),
        Case(f"{label}/sr-bag", _cli("bag", str(src), str(o / "s" / "bag")), o / "s"),
        Case(f"{label}/sr-bag-no-verify", [PY, WORK, "strongroom-bag-library", str(src), str(o / "n" / "bag"),
                                           "none"], o / "n"),
        Case(f"{label}/sr-bag-strongroom-verify", [PY, WORK, "strongroom-bag-library", str(src),
                                                   str(o / "v" / "bag"), "strongroom"], o / "v"),
        Case(f"{label}/ref-validate-p1", [PY, WORK, "bagit-validate", str(bag), "1"]),
        Case(f"{label}/ref-validate-p2", [PY, WORK, "bagit-validate", str(bag), "2"]),
        Case(f"{label}/sr-validate", _cli("validate", str(bag))),
    ]
    if with_limit:
        cases.append(Case(f"{label}/hashlib-limit", [PY, WORK, "hashlib-limit", str(bag / "data"), ALGS,
                                                     str(os.cpu_count() or 1)]))
    print(f"# {label}: {len(cases)} commands x {rounds} round(s)", file=sys.stderr)
    run_rounds(cases, rounds, REPO)
    return {c.name: c for c in cases}


def _reference_bag(src: Path, bag: Path) -> Path:
    """One bag of ``src`` (made by Strongroom, read by both validators); reused across runs."""
    stamp = bag.parent / f".{bag.name}.ready"
    key = (src.parent / ".ready").read_text()  # the data set's parameters: a new size, a new bag
    if stamp.is_file() and stamp.read_text() == key:
        return bag
    shutil.rmtree(bag, ignore_errors=True)
    bag.parent.mkdir(parents=True, exist_ok=True)
    from subprocess import run

    run(_cli("bag", str(src), str(bag)), check=True, cwd=REPO, stdout=open(os.devnull, "w"))
    stamp.write_text(key)
    return bag


def _scale(src: Path, out: Path, rounds: int) -> dict[str, Case]:
    """``strongroom bag`` then ``strongroom validate`` of that bag, on the 100,000-file set."""
    o = out / "scale"
    bag = o / "bag"
    cases = {"scale/sr-bag": Case("scale/sr-bag", _cli("bag", str(src), str(bag))),
             "scale/sr-validate": Case("scale/sr-validate", _cli("validate", str(bag))),
             # bagit-python on the same bag: its own time and memory at this file count, which
             # its second opinion inside `strongroom bag` also costs.
             "scale/ref-validate-p1": Case("scale/ref-validate-p1", [PY, WORK, "bagit-validate", str(bag), "1"]),
             # The same bag without bagit-python's second opinion: the peak of Strongroom's own
             # process (the second opinion runs in a child process at this size).
             "scale/sr-bag-strongroom-verify": Case("scale/sr-bag-strongroom-verify", [
                 PY, WORK, "strongroom-bag-library", str(src), str(o / "v" / "bag"), "strongroom"])}
    print(f"# scale: bag + validate x {rounds} round(s)", file=sys.stderr)
    for _ in range(rounds):
        shutil.rmtree(o, ignore_errors=True)
        o.mkdir(parents=True)
        run_rounds([cases["scale/sr-bag"]], 1, REPO)
        run_rounds([cases["scale/sr-validate"]], 1, REPO)
        run_rounds([cases["scale/ref-validate-p1"]], 1, REPO)
        (o / "v").mkdir()
        run_rounds([cases["scale/sr-bag-strongroom-verify"]], 1, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return cases


def _ratio(results: dict[str, Case], num: str, den: str) -> float | None:
    if num not in results or den not in results:
        return None
    return results[num].median() / results[den].median()


def _rows(results: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """The issue's table, one row per target."""
    r = results
    gib = f"{sizes.large_files * sizes.large_size / 2**30:g} GiB"
    small = f"{sizes.small_files:,} small files"
    rows = [
        Row(f"bag {gib} of large files (`strongroom bag`, both verifiers)", "≤ 0.75 × copytree + make_bag p1",
            _ratio(r, "large/sr-bag", "large/ref-bag-p1"), 0.75),
        Row(f"bag {small}", "≤ 0.35 × the same reference", _ratio(r, "small/sr-bag", "small/ref-bag-p1"), 0.35),
        Row(f"full validation, {gib}", "≤ 0.8 × bagit validate p1",
            _ratio(r, "large/sr-validate", "large/ref-validate-p1"), 0.8),
        Row(f"full validation, {gib}", "≤ 1.25 × hashlib limit",
            _ratio(r, "large/sr-validate", "large/hashlib-limit"), 1.25),
        Row(f"full validation, {small}", "≤ 0.3 × bagit validate p1",
            _ratio(r, "small/sr-validate", "small/ref-validate-p1"), 0.3),
    ]
    peaks = [c.peak_mb() for n, c in r.items() if "/sr-" in n and c.samples and not n.startswith("scale/")]
    rows.append(Row(f"peak memory, any Strongroom bag/validate above ({gib}, {small})", "≤ 150 MB",
                    max(peaks) if peaks else None, 150.0, unit="MB"))
    if "scale/sr-bag" in r and "small/sr-bag" in r:
        big = r["scale/sr-bag"].median() + r["scale/sr-validate"].median()
        ten = r["small/sr-bag"].median() + r["small/sr-validate"].median()
        rows.append(Row(f"{sizes.scale_files:,} files, bag + validate", f"≤ 12 × the {sizes.small_files:,}-file "
                        "time", big / ten, 12.0))
        rows.append(Row(f"{sizes.scale_files:,} files, peak memory", "≤ 150 MB",
                        max(r["scale/sr-bag"].peak_mb(), r["scale/sr-validate"].peak_mb()), 150.0, unit="MB"))
        rows.append(Row(f"(info) {sizes.scale_files:,} files: peak memory of `strongroom validate` alone", "",
                        r["scale/sr-validate"].peak_mb(), None, unit="MB"))
        if "scale/ref-validate-p1" in r:
            rows.append(Row(f"(info) {sizes.scale_files:,} files: peak memory of bagit-python validate alone", "",
                            r["scale/ref-validate-p1"].peak_mb(), None, unit="MB"))
        if "scale/sr-bag-strongroom-verify" in r:
            rows.append(Row(f"(info) {sizes.scale_files:,} files: peak memory of `strongroom bag` without "
                            "bagit-python's second opinion", "", r["scale/sr-bag-strongroom-verify"].peak_mb(),
                            None, unit="MB"))
        if "scale/ref-validate-p1" in r:
            rows.append(Row(f"(info) {sizes.scale_files:,} files: validate vs bagit-python", "",
                            _ratio(r, "scale/sr-validate", "scale/ref-validate-p1"), None))
    rows.append(Row(f"ingest of {sizes.records:,} small records through the flow", "≤ 2 × the library alone",
                    _ratio(r, "flows/ingest-flow", "flows/ingest-library"), 2.0))
    rows.append(Row(f"audit of {sizes.records:,} small bags through the flow", "≤ 0.5 × bagit-python one by one",
                    _ratio(r, "flows/audit-flow", "flows/bagit-validate-many"), 0.5))
    rows.append(Row(f"(info) audit of {sizes.records:,} bags: library alone (no Prefect)", "cost split",
                    _ratio(r, "flows/audit-library", "flows/bagit-validate-many"), None))
    rows.append(Row(f"(info) bag {gib}: Strongroom, no verifiers", "cost split",
                    _ratio(r, "large/sr-bag-no-verify", "large/ref-bag-p1"), None))
    rows.append(Row(f"(info) bag {gib}: Strongroom verifier only", "cost split",
                    _ratio(r, "large/sr-bag-strongroom-verify", "large/ref-bag-p1"), None))
    rows.append(Row(f"(info) bag {small}: Strongroom, no verifiers", "cost split",
                    _ratio(r, "small/sr-bag-no-verify", "small/ref-bag-p1"), None))
    rows.append(Row(f"(info) bag {gib}: vs make_bag p2", "",
                    _ratio(r, "large/sr-bag", "large/ref-bag-p2"), None))
    return rows


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"# bench finished in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    raise SystemExit(code)
