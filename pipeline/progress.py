"""Progress bars for long runs (bagging, validation, audit, deposit) - on a terminal only.

Users of other BagIt tools report five-hour runs with no sign of life.  Strongroom's long
commands show bytes, files, rate and time left while attached to a terminal, and nothing at all
otherwise (logs and pipes stay clean).  ``rich`` is imported only when a bar is really shown, so
``strongroom bag`` and ``validate`` in a pipe do not pay for it.

Use::

    with progress_bar("copying", total_bytes=n, total_files=k) as meter:
        bag_directory(src, dest, progress=meter)       # meter(bytes_done, files_done)
        meter.phase("verifying", total_bytes=n, total_files=k)   # a new stage, counts from 0

    with bags_progress("depositing", bags) as done:   # runs over many bags (deposit, audit)
        for bag in bags:
            deposit(bag); done(bag)                    # advances by the bag's bytes and files

A meter takes *cumulative* figures, is cheap enough to call per file (it redraws at most ten
times a second) and may be called from several threads.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

#: (bytes done, files done), both cumulative: the writer's and the validator's progress callback.
Update = Callable[[int, int], None]
_REDRAW_SECONDS = 0.1


def wanted(stream: TextIO | None = None) -> bool:
    """True when a bar should be shown on ``stream`` (default stderr): a terminal, not TERM=dumb."""
    stream = stream if stream is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real stream
        return False
    return tty and os.environ.get("TERM") != "dumb" and not os.environ.get("STRONGROOM_NO_PROGRESS")


class Meter:
    """A progress callback ``meter(bytes_done, files_done)`` that does nothing (no terminal)."""

    def __call__(self, bytes_done: int, files_done: int) -> None:
        """Record cumulative figures for the current stage."""

    def phase(self, label: str, *, total_bytes: int | None = None, total_files: int | None = None) -> None:
        """Start a new stage (e.g. "verifying" after "copying"); its figures count from zero."""

    def close(self) -> None:
        """End the display."""


@contextmanager
def progress_bar(label: str, *, total_bytes: int | None = None, total_files: int | None = None,
                 stream: TextIO | None = None) -> Iterator[Meter]:
    """A meter: a live bar when ``stream`` (default stderr) is a terminal, else one doing nothing."""
    stream = stream if stream is not None else sys.stderr
    meter = _Bar(label, total_bytes, total_files, stream) if wanted(stream) else Meter()
    try:
        yield meter
    finally:
        meter.close()


class _Bar(Meter):
    """A rich progress bar throttled to a few redraws a second; it disappears when done."""

    def __init__(self, label: str, total_bytes: int | None, total_files: int | None, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
                                   TransferSpeedColumn)

        self._progress: Any = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
            TextColumn("{task.fields[files]}"), TransferSpeedColumn(), TimeRemainingColumn(),
            console=Console(file=stream), transient=True)
        self._lock = threading.Lock()
        self._task: Any = None
        self._progress.start()
        self.phase(label, total_bytes=total_bytes, total_files=total_files)

    def phase(self, label: str, *, total_bytes: int | None = None, total_files: int | None = None) -> None:
        with self._lock:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._of = f"/{total_files:,}" if total_files is not None else ""
            self._task = self._progress.add_task(label, total=total_bytes, files=f"0{self._of} files")
            self._last = 0.0
            self._latest = (0, 0)

    def __call__(self, bytes_done: int, files_done: int) -> None:
        with self._lock:
            self._latest = (bytes_done, files_done)
            now = time.monotonic()
            if now - self._last >= _REDRAW_SECONDS:
                self._last = now
                self._show()

    def _show(self) -> None:
        done, files = self._latest
        self._progress.update(self._task, completed=done, files=f"{files:,}{self._of} files")

    def close(self) -> None:
        with self._lock:
            self._show()
            self._progress.stop()


@contextmanager
def bags_progress(label: str, bags: Iterable[Path], *,
                  stream: TextIO | None = None) -> Iterator[Callable[[Path], None]]:
    """A bar over a run of whole bags; the callback ``done(bag)`` counts one bag as finished.

    The totals are the bags' files and bytes on disk (tag files included), walked only when a bar
    is shown; a finished bag advances the bar by its own share, so rate and time left are in
    bytes even when the bags differ widely in size.  Bags may finish in any order and from any
    thread; a bag not among ``bags`` advances the file count by what it holds.
    """
    stream = stream if stream is not None else sys.stderr
    if not wanted(stream):
        yield lambda bag: None
        return
    sizes = {str(b): directory_totals(b) for b in bags}
    total_bytes = sum(s[0] for s in sizes.values())
    total_files = sum(s[1] for s in sizes.values())
    lock = threading.Lock()
    counted = [0, 0]
    with progress_bar(label, total_bytes=total_bytes, total_files=total_files, stream=stream) as meter:
        def done(bag: Path) -> None:
            octets, files = sizes.get(str(bag)) or directory_totals(bag)
            with lock:
                counted[0] += octets
                counted[1] += files
                meter(counted[0], counted[1])

        yield done


def directory_totals(root: Path) -> tuple[int, int]:
    """(bytes, files) of the regular files below ``root``, symlinks not followed: a bar's totals."""
    size = count = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue  # the real run reports what it cannot read
        with entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    size += entry.stat(follow_symlinks=False).st_size
                    count += 1
    return size, count


def bag_totals(bag: Path) -> tuple[int | None, int | None]:
    """A bag's payload (bytes, files) from its Payload-Oxum, or (None, None) when it has none."""
    from pipeline.bag.tagfiles import info_value, read_bag_info

    try:
        oxum = info_value(read_bag_info(bag), "Payload-Oxum")
        octets, _, files = (oxum or "").partition(".")
        return int(octets), int(files)
    except (OSError, ValueError):  # a bar's totals are only a hint: no Oxum, no totals
        return None, None
