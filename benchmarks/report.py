"""The benchmark's table and the description of the machine it ran on."""

from __future__ import annotations

import hashlib
import os
import platform
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from datasets import Sizes
from measure import Case


@dataclass(frozen=True)
class Row:
    """One target: what was measured against what, and whether it is met."""

    work: str
    target: str
    value: float | None
    limit: float | None
    unit: str = "×"
    #: The target is a floor (a speed-up), not a ceiling.
    at_least: bool = False

    def measured(self) -> str:
        if self.value is None:
            return "not measured"
        return f"{self.value:.0f} MB" if self.unit == "MB" else f"{self.value:.2f} ×"

    def met(self) -> str:
        if self.value is None or self.limit is None:
            return "-" if self.value is not None or self.limit is None else "not measured"
        ok = self.value >= self.limit if self.at_least else self.value <= self.limit
        return "yes" if ok else "**no**"


def hash_rates(seconds: float = 0.25) -> dict[str, float]:
    """MiB/s one core hashes now with each algorithm the benchmark uses (the machine's hashlib
    limit at this moment: on a shared host it moves with the other work)."""
    return {alg: _speed(alg, seconds) for alg in ("sha512", "sha256")}


def machine(rates: list[dict[str, float]] | None = None) -> list[str]:
    """What the figures were measured on; ``rates``: :func:`hash_rates` at the start and the end."""
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [ln.split(":", 1)[1].strip() for ln in cpuinfo.read_text().splitlines()
                 if ln.startswith("model name")]
        cpu = names[0] if names else cpu
    mem = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        kib = int(meminfo.read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    fs = subprocess.run(["df", "-T", str(Path(__file__).parent)], capture_output=True, text=True).stdout
    fstype = fs.splitlines()[-1].split()[1] if fs.strip() else "?"
    return [
        f"{cpu}, {os.cpu_count()} cores{mem}; filesystem {fstype}; {platform.system()} {platform.release()}",
        f"Python {platform.python_version()}, {ssl.OPENSSL_VERSION}; one core hashes (hashlib, MiB/s) "
        + "; ".join(f"{when}: " + ", ".join(f"{alg} {rate:.0f}" for alg, rate in r.items())
                    for when, r in zip(("at the start", "at the end", "now"), rates or [hash_rates()])),
    ]


def _speed(alg: str, seconds: float = 0.25) -> float:
    """MiB/s of ``alg`` on one core, hashing 1 MiB blocks for about ``seconds``."""
    block = bytes(1 << 20)
    h = hashlib.new(alg)
    done = 0
    started = time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds or done < 8:
        h.update(block)
        done += 1
    return done / elapsed


def print_table(rows: list[Row], results: dict[str, Case], machine_lines: list[str], sizes: Sizes,
                rounds: int) -> str:
    """Print the target table and the raw medians; return the same text (markdown)."""
    lines = ["## Targets", "", "| work | target | measured | met? |", "|---|---|---|---|"]
    lines += [f"| {r.work} | {r.target} | {r.measured()} | {r.met()} |" for r in rows]
    lines += ["", "## Every command (median of the rounds, wall seconds; peak RSS of its process)", "",
              "| command | median s | range s | CPU s (median) | rounds | peak MB | own / child peak MB | load |",
              "|---|---|---|---|---|---|---|---|"]
    for name, case in results.items():
        if case.samples:
            own, child = case.own_peak_mb(), case.child_peak_mb()
            split = f"{own:.0f} / {child:.0f}" if own is not None and child is not None else ""
            lines.append(f"| {name} | {case.median():.2f} | {case.spread()} | {case.cpu():.2f} | "
                         f"{len(case.samples)} | {case.peak_mb():.0f} | {split} | {case.load()} |")
    lines += ["", "Machine: " + machine_lines[0] + ".", machine_lines[1] + ".",
              f"Rounds: {rounds} (large/small parts); data: {sizes}.",
              f"Run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, `{' '.join(sys.argv)}`."]
    text = "\n".join(lines) + "\n"
    print(text)
    return text
