"""Measuring one command: wall time and peak memory of its own subprocess.

Before each measure every dirty page of earlier work is flushed (``os.sync``, not timed), so a
command never pays for the writes of the one before it - Strongroom's writer ends with a
``syncfs`` that would otherwise flush the previous reference bag too.  Peak memory is the
``ru_maxrss`` that ``wait4`` returns for that child (and the children it waited for).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    """One run of one command."""

    seconds: float
    peak_mb: float
    #: User + system CPU seconds of the process and the children it waited for.
    cpu: float = 0.0
    #: The time the job measured itself when it excludes a start-up (Prefect server, client).
    inner: float | None = None
    #: Peak RSS of the measured process alone and of its largest child, when the job reports them
    #: (``wait4`` gives only the larger of the two).
    own_peak_mb: float | None = None
    child_peak_mb: float | None = None
    #: The 1-minute load average when the command started (other work on the machine).
    load: float = 0.0

    @property
    def measured(self) -> float:
        return self.inner if self.inner is not None else self.seconds


@dataclass
class Case:
    """A command measured several times; ``output`` is removed before and after each run."""

    name: str
    argv: list[str]
    output: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)

    def median(self) -> float:
        return statistics.median(s.measured for s in self.samples)

    def cpu(self) -> float:
        return statistics.median(s.cpu for s in self.samples)

    def peak_mb(self) -> float:
        return max(s.peak_mb for s in self.samples)

    def own_peak_mb(self) -> float | None:
        """Peak of the measured process alone, when the job reported it."""
        own = [s.own_peak_mb for s in self.samples if s.own_peak_mb is not None]
        return max(own) if own else None

    def child_peak_mb(self) -> float | None:
        """Peak of its largest child (bagit-python's second opinion), when the job reported it."""
        child = [s.child_peak_mb for s in self.samples if s.child_peak_mb is not None]
        return max(child) if child else None

    def load(self) -> str:
        """The load averages the rounds started at."""
        return "-".join(f"{v:.1f}" for v in sorted({min(s.load for s in self.samples),
                                                     max(s.load for s in self.samples)}))

    def spread(self) -> str:
        times = sorted(s.measured for s in self.samples)
        return f"{times[0]:.2f}-{times[-1]:.2f}" if len(times) > 1 else f"{times[0]:.2f}"


class CommandFailed(RuntimeError):
    """A measured command exited non-zero."""


def run(case: Case, cwd: Path) -> Sample:
    """Run ``case`` once from a clean output and a flushed disk; record time and peak memory."""
    _clear(case.output)
    if case.output is not None:
        case.output.mkdir(parents=True)
    os.sync()
    env = {**os.environ, **case.env}
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(case.argv, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise CommandFailed(f"{case.name}: exit {proc.returncode}\n{stderr[-2000:]}")
    _clear(case.output)
    reported = _reported(stdout)
    sample = Sample(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime, _inner(stdout),
                    reported.get("own_peak_mb"), reported.get("child_peak_mb"), load)
    case.samples.append(sample)
    return sample


def run_rounds(cases: Sequence[Case], rounds: int, cwd: Path) -> None:
    """Every case once per round, the order rotated each round (interleaved, not back to back)."""
    for r in range(rounds):
        order = list(cases[r % len(cases):]) + list(cases[:r % len(cases)])
        for case in order:
            sample = run(case, cwd)
            print(f"  round {r + 1}/{rounds}  {case.name:<34} {sample.measured:8.2f} s "
                  f"{sample.cpu:8.2f} s CPU {sample.peak_mb:7.1f} MB  load {os.getloadavg()[0]:.1f}",
                  file=sys.stderr, flush=True)


def _reported(stdout: str) -> dict[str, float]:
    """The figures a job printed as JSON on its last line (peaks), if any."""
    lines = stdout.strip().splitlines()
    try:
        value = json.loads(lines[-1]) if lines else None
    except ValueError:
        return {}
    return {k: float(v) for k, v in value.items() if k.endswith("_mb")} if isinstance(value, dict) else {}


def _inner(stdout: str) -> float | None:
    lines = stdout.strip().splitlines()
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return float(value["inner"]) if isinstance(value, dict) and "inner" in value else None


def _clear(path: Path | None) -> None:
    if path is not None and (path.exists() or path.is_symlink()):
        shutil.rmtree(path)
