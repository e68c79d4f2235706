"""The writer keeps nothing per payload file: its memory does not grow with the number of files.

Issue #6 wants 100,000 files bagged in 150 MB.  The writer used to hold a PayloadFile and a
PayloadDigest per file for the whole run (~1.3 KB a file as measured with tracemalloc); it now
walks the source twice (check, then copy), writes manifest lines as files are copied and keeps
8 bytes a file (a name hash for the collision check).  Here the same bag is written from 500
and from 3,000 files, without verifiers (the validators are measured elsewhere), and the growth
of tracemalloc's peak per extra file must stay far below what holding per-file objects costs.
Measured here (tracemalloc peak, 500 -> 3,000 files): 3 bytes per extra file now; 1,734 with
the writer before this change.
"""

from __future__ import annotations

import os
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipeline.bag.writer import bag_directory

SMALL, LARGE = 500, 3_000
#: Bytes of peak growth allowed per extra file: per-file objects (a Path, a digest dict) cost
#: several hundred bytes each, so any of them kept for the run breaks this.
PER_FILE_LIMIT = 300


def _tree(root: Path, count: int) -> Path:
    """``count`` files of 64 bytes, 100 to a directory (the layout of the benchmark's data)."""
    folders = [root / f"box-{i:03d}" for i in range((count + 99) // 100)]
    for folder in folders:
        folder.mkdir(parents=True)

    def make(i: int) -> None:
        (folders[i // 100] / f"page-{i:05d}.txt").write_bytes(os.urandom(64))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(count)))
    return root


def _peak_bagging(source: Path, dest: Path) -> int:
    tracemalloc.start()
    try:
        written = bag_directory(source, dest, verifiers=[])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(written.payload) == sum(1 for p in source.rglob("*") if p.is_file())
    return peak


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("writer-memory")
    return _tree(root / "small", SMALL), _tree(root / "large", LARGE)


def test_the_writers_peak_memory_does_not_grow_with_the_number_of_files(trees: tuple[Path, Path],
                                                                         tmp_path: Path) -> None:
    small, large = trees
    _peak_bagging(small, tmp_path / "warm-up")  # first-use allocations (imports, caches) out of the way
    peak_small = _peak_bagging(small, tmp_path / "small")
    peak_large = _peak_bagging(large, tmp_path / "large")
    per_file = (peak_large - peak_small) / (LARGE - SMALL)
    assert per_file < PER_FILE_LIMIT, (
        f"peak grew by {per_file:.0f} bytes per file ({peak_small:,} -> {peak_large:,} bytes): "
        "the writer keeps something per payload file again")


def test_the_limit_catches_a_writer_that_keeps_per_file_objects(trees: tuple[Path, Path]) -> None:
    """Control: what the old writer kept (a path pair and a digest record a file) breaks the limit."""
    small, large = trees

    def peak_holding(source: Path) -> int:
        tracemalloc.start()
        try:
            held = [(p, Path("data") / p.relative_to(source), {"sha512": "0" * 128, "sha256": "0" * 64})
                    for p in sorted(source.rglob("*")) if p.is_file()]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert held
        return peak

    per_file = (peak_holding(large) - peak_holding(small)) / (LARGE - SMALL)
    assert per_file > PER_FILE_LIMIT
