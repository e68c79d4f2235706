"""Strongroom against the reference tools, side by side, on data this script builds itself.

    make bench                              # the full run (about 11 minutes on 2 cores)
    make bench BENCH_ARGS=--quick           # small data, 1 round: checks every measure works
    make bench BENCH_ARGS=--large-scale     # also bag and validate 1,000,000 files (+7-8 min)
    python benchmarks/bench.py --rounds 5 --skip scale,flows

A part is a function of :class:`Run` returning its measured cases, listed in :data:`PARTS`
(name -> function), with a function adding its rows to the table in :data:`ROWS`.  A new part
lives in a module of its own beside this one and adds one line to each.

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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import audit_bench  # noqa: E402 - the benchmark's own modules, beside this script
import datasets  # noqa: E402
import flows_bench  # noqa: E402
import format_bench  # noqa: E402
import harvest_bench  # noqa: E402
import repair_bench  # noqa: E402
from measure import Case, run_rounds  # noqa: E402
from report import Row, hash_rates, machine, print_table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
WORK = str(REPO / "benchmarks" / "workloads.py")
ALGS = "sha512,sha256"


@dataclass(frozen=True)
class Run:
    """What every part needs: where data and output go, how big, how many rounds, the options."""

    data: Path
    out: Path
    sizes: datasets.Sizes
    rounds: int
    args: argparse.Namespace


Part = Callable[[Run], dict[str, Case]]


def _large(run: Run) -> dict[str, Case]:
    src = datasets.large_files(run.data, run.sizes.large_files, run.sizes.large_size)
    return _bag_and_validate("large", src, run.out, run.rounds, with_limit=True)


def _small(run: Run) -> dict[str, Case]:
    src = datasets.small_files(run.data, "small", run.sizes.small_files, run.sizes.small_size)
    return _bag_and_validate("small", src, run.out, run.rounds, with_limit=False)


def _scale_part(run: Run) -> dict[str, Case]:
    src = datasets.small_files(run.data, "scale", run.sizes.scale_files, run.sizes.scale_size)
    return _scale(src, run.out, run.args.scale_rounds)


def _flows(run: Run) -> dict[str, Case]:
    recs = datasets.records(run.data, run.sizes.records)
    return flows_bench.run(recs, run.out, run.args.flow_rounds, WORK)


def _million(run: Run) -> dict[str, Case]:
    name = "million" if run.sizes.million_files == 1_000_000 else "million-quick"
    # 100 files a directory, as the 100,000-file set it is compared with (the default per_dir)
    src = datasets.small_files(run.data, name, run.sizes.million_files, run.sizes.scale_size)
    return _million_files(src, run.out)


def _harvest(run: Run) -> dict[str, Case]:
    return harvest_bench.run(run.data, run.out, run.rounds)


def _formats(run: Run) -> dict[str, Case]:
    return format_bench.run(datasets.records(run.data, run.sizes.records), run.out, run.rounds, WORK)


def _repair(run: Run) -> dict[str, Case]:
    return repair_bench.run(run.data, run.out, run.rounds)


def _audit_scale(run: Run) -> dict[str, Case]:
    return audit_bench.run(run.data, run.out, run.sizes.audit_bags, run.args.flow_rounds, WORK)


#: Every part, in the order they run: name -> what it measures.  Add a part here (and its rows in ROWS).
PARTS: dict[str, Part] = {"large": _large, "small": _small, "scale": _scale_part, "flows": _flows,
                          "harvest": _harvest, "formats": _formats, "repair": _repair,
                          "million": _million, "audit-scale": _audit_scale}
#: Parts that run only when asked, by the option named: too long for a routine run.
OPT_IN = {"million": "large_scale", "audit-scale": "audit_scale"}


def main(argv: list[str] | None = None) -> int:
    """Build the data, run every part asked for, print the table."""
    args = _parser().parse_args(argv)
    sizes = datasets.Sizes.quick() if args.quick else datasets.Sizes()
    rounds = args.rounds or (1 if args.quick else 3)
    skip = {s for s in args.skip.split(",") if s}
    skip |= {part for part, option in OPT_IN.items() if not getattr(args, option)}
    data = args.data.resolve()
    run = Run(data, data / "out", sizes, rounds, args)
    print(f"# data in {data}; {rounds} round(s); sizes {datasets.describe(sizes)}", file=sys.stderr)
    rates = [hash_rates()]
    results: dict[str, Case] = {}
    for name, part in PARTS.items():
        if name not in skip:
            results |= part(run)
    rates.append(hash_rates())
    rows = [row for add in ROWS for row in add(results, sizes)]
    text = print_table(rows, results, machine(rates), sizes, rounds)
    if args.save:
        args.save.write_text(text, encoding="utf-8")
        (args.save.with_suffix(".json")).write_text(json.dumps(
            {name: [s.__dict__ for s in case.samples] for name, case in results.items()}, indent=1))
    shutil.rmtree(run.out, ignore_errors=True)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small data and 1 round (for iterating)")
    p.add_argument("--rounds", type=int, default=0, help="rounds for the large and small parts (default 3)")
    p.add_argument("--scale-rounds", type=int, default=1, help="rounds for the 100,000-file part")
    p.add_argument("--flow-rounds", type=int, default=1, help="rounds for the flow part")
    p.add_argument("--skip", default="", help=f"comma-separated parts to skip: {','.join(PARTS)}")
    p.add_argument("--large-scale", action="store_true",
                   help="also bag and validate 1,000,000 files (7-8 minutes more here, plus building them once; not for CI)")
    p.add_argument("--audit-scale", action="store_true",
                   help="also audit 10,000 small bags in a PostgreSQL ledger (ingested first, not timed)")
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
        Case(f"{label}/copytree", [PY, WORK, "copytree", str(src), str(o / "c" / "copy")], o / "c"),
        Case(f"{label}/sr-bag", _cli("bag", str(src), str(o / "s" / "bag")), o / "s"),
        Case(f"{label}/sr-bag-no-second-opinion", _cli("bag", "--no-second-opinion", str(src), str(o / "v" / "bag")),
             o / "v"),
        Case(f"{label}/sr-bag-no-verify", [PY, WORK, "strongroom-bag-library", str(src), str(o / "n" / "bag"),
                                           "none"], o / "n"),
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


def _peaks(*args: str) -> list[str]:
    """``strongroom ARGS...`` run so that it reports its own peak and its child's (see workloads)."""
    return [PY, WORK, "strongroom-cli-peaks", *args]


def _scale(src: Path, out: Path, rounds: int) -> dict[str, Case]:
    """``strongroom bag`` then ``strongroom validate`` of that bag, on the 100,000-file set."""
    o = out / "scale"
    bag = o / "bag"
    cases = {"scale/sr-bag": Case("scale/sr-bag", _peaks("bag", str(src), str(bag))),
             "scale/sr-validate": Case("scale/sr-validate", _cli("validate", str(bag))),
             # bagit-python on the same bag: its own time and memory at this file count, which
             # its second opinion inside `strongroom bag` also costs.
             "scale/ref-validate-p1": Case("scale/ref-validate-p1", [PY, WORK, "bagit-validate", str(bag), "1"])}
    print(f"# scale: bag + validate x {rounds} round(s)", file=sys.stderr)
    for _ in range(rounds):
        shutil.rmtree(o, ignore_errors=True)
        o.mkdir(parents=True)
        run_rounds([cases["scale/sr-bag"]], 1, REPO)
        run_rounds([cases["scale/sr-validate"]], 1, REPO)
        run_rounds([cases["scale/ref-validate-p1"]], 1, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return cases


def _million_files(src: Path, out: Path) -> dict[str, Case]:
    """``strongroom bag`` (default: bagit-python's second opinion in its child) and ``strongroom
    validate`` of 1,000,000 files of 1 KiB, once each."""
    o = out / "million"
    bag = o / "bag"
    cases = {"million/sr-bag": Case("million/sr-bag", _peaks("bag", str(src), str(bag))),
             "million/sr-validate": Case("million/sr-validate", _cli("validate", str(bag)))}
    print("# million: bag + validate, 1 round", file=sys.stderr)
    shutil.rmtree(o, ignore_errors=True)
    o.mkdir(parents=True)
    run_rounds([cases["million/sr-bag"]], 1, REPO)
    run_rounds([cases["million/sr-validate"]], 1, REPO)
    shutil.rmtree(o, ignore_errors=True)
    return cases


def _ratio(results: dict[str, Case], num: str, den: str) -> float | None:
    if num not in results or den not in results or not results[num].samples or not results[den].samples:
        return None
    return results[num].median() / results[den].median()


def _names(sizes: datasets.Sizes) -> tuple[str, str]:
    return f"{sizes.large_files * sizes.large_size / 2**30:g} GiB", f"{sizes.small_files:,} small files"


def _bag_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """``strongroom bag`` against copytree + make_bag, and its cost split."""
    gib, small = _names(sizes)
    return [
        Row(f"bag {gib} in {sizes.large_files} files (`strongroom bag`, default: both verifications)",
            "≤ 1.0 × copytree + make_bag p1", _ratio(r, "large/sr-bag", "large/ref-bag-p1"), 1.0),
        Row(f"bag {gib}, Strongroom's own verification only (`--no-second-opinion`)",
            "≤ 0.6 × copytree + make_bag p1", _ratio(r, "large/sr-bag-no-second-opinion", "large/ref-bag-p1"), 0.6),
        Row(f"bag {small} (`strongroom bag`, default)", "≤ 0.8 × copytree + make_bag p1",
            _ratio(r, "small/sr-bag", "small/ref-bag-p1"), 0.8),
        Row(f"(info) bag {small}, default, against a bare copytree", "",
            _ratio(r, "small/sr-bag", "small/copytree"), None),
        Row(f"(info) bag {small}, `--no-second-opinion`", "cost split",
            _ratio(r, "small/sr-bag-no-second-opinion", "small/ref-bag-p1"), None),
        Row(f"(info) bag {gib}: Strongroom, no verification at all", "cost split",
            _ratio(r, "large/sr-bag-no-verify", "large/ref-bag-p1"), None),
        Row(f"(info) bag {small}: Strongroom, no verification at all", "cost split",
            _ratio(r, "small/sr-bag-no-verify", "small/ref-bag-p1"), None),
        Row(f"(info) bag {gib}, default, vs make_bag p2", "", _ratio(r, "large/sr-bag", "large/ref-bag-p2"), None),
        Row(f"(info) bag {gib}, default, CPU seconds vs the reference's", "",
            _cpu_ratio(r, "large/sr-bag", "large/ref-bag-p1"), None),
    ]


def _cpu_ratio(r: dict[str, Case], num: str, den: str) -> float | None:
    if num not in r or den not in r or not r[num].samples or not r[den].samples:
        return None
    return r[num].cpu() / r[den].cpu()


def _validate_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """Full validation against bagit-python and against plain hashlib."""
    gib, small = _names(sizes)
    rows = [
        Row(f"full validation, {gib}", "≤ 0.8 × bagit validate p1",
            _ratio(r, "large/sr-validate", "large/ref-validate-p1"), 0.8),
        Row(f"full validation, {gib}", "≤ 1.25 × hashlib limit",
            _ratio(r, "large/sr-validate", "large/hashlib-limit"), 1.25),
        Row(f"full validation, {small}", "≤ 0.3 × bagit validate p1",
            _ratio(r, "small/sr-validate", "small/ref-validate-p1"), 0.3),
    ]
    peaks = [c.peak_mb() for n, c in r.items() if "/sr-" in n and c.samples and n.split("/")[0] in ("large", "small")]
    rows.append(Row(f"peak memory, any Strongroom bag/validate above ({gib}, {small})", "≤ 150 MB",
                    max(peaks) if peaks else None, 150.0, unit="MB"))
    return rows


def _scale_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """100,000 files: time against 10,000, memory of each process."""
    if "scale/sr-bag" not in r or not r["scale/sr-bag"].samples:
        return []
    n = f"{sizes.scale_files:,} files"
    rows = [Row(f"(info) {n}: peak of `strongroom validate`", "", r["scale/sr-validate"].peak_mb(), None, unit="MB"),
            Row(f"(info) {n}: peak of `strongroom bag`'s own process", "", r["scale/sr-bag"].own_peak_mb(), None,
                unit="MB"),
            Row(f"(info) {n}: peak of bagit-python's second opinion (its child)", "",
                r["scale/sr-bag"].child_peak_mb(), None, unit="MB"),
            Row(f"(info) {n}: validate vs bagit-python", "", _ratio(r, "scale/sr-validate", "scale/ref-validate-p1"),
                None)]
    if "small/sr-bag" in r:
        big = r["scale/sr-bag"].median() + r["scale/sr-validate"].median()
        ten = r["small/sr-bag"].median() + r["small/sr-validate"].median()
        rows.insert(0, Row(f"{n}, bag + validate", f"≤ 12 × the {sizes.small_files:,}-file time", big / ten, 12.0))
    return rows


def _million_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """1,000,000 files (``--large-scale``): memory of validate and of bag's own process."""
    if "million/sr-validate" not in r or not r["million/sr-validate"].samples:
        return []
    n = f"{sizes.million_files:,} files"
    return [
        Row(f"validate {n}: peak memory", "≤ 150 MB", r["million/sr-validate"].peak_mb(), 150.0, unit="MB"),
        Row(f"validate {n}: time", f"≤ 11 × the {sizes.scale_files:,}-file run",
            _ratio(r, "million/sr-validate", "scale/sr-validate"), 11.0),
        Row(f"bag {n}: Strongroom's own process", "≤ 150 MB", r["million/sr-bag"].own_peak_mb(), 150.0, unit="MB"),
        Row(f"(info) bag {n}: bagit-python's second opinion (its child)", "", r["million/sr-bag"].child_peak_mb(),
            None, unit="MB"),
    ]


def _flow_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """The flows against the library alone and against bagit-python."""
    return [
        Row(f"ingest of {sizes.records:,} small records through the flow", "≤ 2 × the library alone",
            _ratio(r, "flows/ingest-flow", "flows/ingest-library"), 2.0),
        Row(f"audit of {sizes.records:,} small bags through the flow", "≤ 0.5 × bagit-python one by one",
            _ratio(r, "flows/audit-flow", "flows/bagit-validate-many"), 0.5),
        Row(f"audit of {sizes.records:,} small bags, library alone (no Prefect)", "≤ 0.3 × bagit-python one by one",
            _ratio(r, "flows/audit-library", "flows/bagit-validate-many"), 0.3),
    ]


def _audit_rows(r: dict[str, Case], sizes: datasets.Sizes) -> list[Row]:
    """The audit at scale against bagit-python one by one; two processes against one."""
    if "audit-scale/audit-library" not in r or not r["audit-scale/audit-library"].samples:
        return []
    n, ref = f"{sizes.audit_bags:,} small bags (PostgreSQL ledger)", "audit-scale/bagit-validate-many"
    one, two = r["audit-scale/audit-library"], r["audit-scale/audit-library-2-processes"]
    return [
        Row(f"audit {n} through the flow", "≤ 0.5 × bagit-python one by one",
            _ratio(r, "audit-scale/audit-flow", ref), 0.5),
        Row(f"audit {n}, library alone", "≤ 0.3 × bagit-python one by one", _ratio(r, "audit-scale/audit-library", ref),
            0.3),
        Row(f"audit {n}: two processes against one (speed-up, higher is better)", "≥ 1.7 ×",
            one.median() / two.median() if two.samples else None, 1.7, at_least=True),
    ]


#: The table's rows, part by part: each function reads the results it knows (absent: no rows or
#: "not measured").  Add a part's rows here.
ROWS: list[Callable[[dict[str, Case], datasets.Sizes], list[Row]]] = [
    _bag_rows, _validate_rows, _scale_rows, _million_rows, _flow_rows, _audit_rows,
    lambda results, sizes: harvest_bench.rows(results),
    lambda results, sizes: format_bench.rows(results, sizes.records),
    lambda results, sizes: repair_bench.rows(results)]


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"# bench finished in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    raise SystemExit(code)
