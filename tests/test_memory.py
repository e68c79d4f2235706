"""Memory stays flat: a bag of many files is made and validated under an address-space ceiling.

The work runs in a subprocess whose address space is capped (``RLIMIT_AS``) at what it had after
its imports plus ``CEILING_MB``.  The payload is 10,000 files of 8 KiB (80 MB): a writer or
validator that held every file's content - or more than ~3 KB per file of anything - breaks the
ceiling and the subprocess dies with MemoryError.  A control run proves the ceiling is tight: the
same process merely reading every file into a list must fail under it.

Two things make the address space measure heap rather than reservations: thread stacks are
set to 2 MiB (Strongroom's pools use a few dozen threads at most, each 8 MiB by default), and
``MALLOC_ARENA_MAX=1`` stops glibc reserving 64 MiB of address space per thread arena.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import REPO

FILES = 10_000
FILE_SIZE = 8 * 1024
#: Address space allowed above the post-import baseline.  Measured need here: about 40 MB
#: (bag + Strongroom's verifier + the standalone validation, 16 MB of them copy buffers); holding
#: the payload alone would need 80 MB more.  At 10,000 files bagit-python's second opinion runs in
#: a child interpreter (pipeline.bag.second_opinion.CHILD_PROCESS_FILES), which inherits the
#: ceiling: an interpreter of its own plus its index (~1.4 KB a file) fits under it too.
CEILING_MB = 72

CHILD = r"""
import json, os, resource, sys, threading
from pathlib import Path
threading.stack_size(2 << 20)
import bagit  # imported before the ceiling, like everything else the run needs
from pipeline.bag.writer import bag_directory
from pipeline.bag.validator import validate_bag

def vm_size():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024

source, dest, mode, ceiling_mb = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
base = vm_size()
resource.setrlimit(resource.RLIMIT_AS, (base + ceiling_mb * 2**20, resource.RLIM_INFINITY))
if mode == "control":  # what a regression holding every file's bytes would do
    held = [p.read_bytes() for p in sorted(source.rglob("*")) if p.is_file()]
    print(json.dumps({"held": sum(map(len, held))}))
    sys.exit(0)
written = bag_directory(source, dest)
report = validate_bag(dest)
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmPeak:"))
print(json.dumps({"files": len(written.payload), "valid": report.valid,
                  "findings": [f.line() for f in report.errors], "peak_above_base_mb": (peak - base) / 2**20}))
"""


@pytest.fixture(scope="module")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """10,000 files of 8 KiB in 100 directories (made in parallel: creating files is slow here)."""
    root = tmp_path_factory.mktemp("many") / "payload"
    folders = [root / f"box-{i:03d}" for i in range(100)]
    for folder in folders:
        folder.mkdir(parents=True)

    def make(i: int) -> None:
        (folders[i % 100] / f"page-{i:05d}.bin").write_bytes(os.urandom(FILE_SIZE))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(make, range(FILES)))
    return root


def _run(source: Path, dest: Path, mode: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MALLOC_ARENA_MAX": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", CHILD, str(source), str(dest), mode, str(CEILING_MB)],
                          capture_output=True, text=True, env=env, timeout=600, cwd=REPO)


@pytest.mark.slow
def test_bag_and_validate_many_files_under_a_memory_ceiling(many_files: Path, tmp_path: Path) -> None:
    done = _run(many_files, tmp_path / "bag", "bag")
    assert done.returncode == 0, f"over the {CEILING_MB} MB ceiling or failed:\n{done.stderr[-3000:]}"
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["files"] == FILES and result["valid"], result
    assert result["peak_above_base_mb"] <= CEILING_MB


@pytest.mark.slow
def test_the_ceiling_is_too_low_to_hold_the_payload(many_files: Path, tmp_path: Path) -> None:
    done = _run(many_files, tmp_path / "unused", "control")
    assert done.returncode != 0 and "MemoryError" in done.stderr, done.stdout


# --- validation alone: what each file costs ---------------------------------------------------

#: Bytes of peak memory allowed per payload file when validating.  Strongroom's index keeps the
#: NFC path, its row, size and the raw digests (sha512 + sha256: 96 bytes) in flat columns:
#: measured here 0.28-0.30 KB a file; one object per file with a list of digest ``bytes`` (the
#: index before) measured 0.54 KB and fails this.
PER_FILE_BYTES = 400

VALIDATE_CHILD = r"""
import json, re, sys
from pathlib import Path
import pipeline.bag.profiles  # everything validate_bag may import, before the baseline
from pipeline.bag.validator import validate_bag

def kb(field):
    return int(re.search(field + r":\s+(\d+)", open("/proc/self/status").read()).group(1))

base = kb("VmRSS")
report = validate_bag(Path(sys.argv[1]))
print(json.dumps({"valid": report.valid, "files": report.payload_files, "grew_kb": kb("VmHWM") - base}))
"""


def _synthetic_bag(root: Path, count: int) -> Path:
    """A valid BagIt 1.0 bag of ``count`` tiny files (sha512 + sha256), written directly: fast."""
    import hashlib

    lines: dict[str, list[str]] = {"sha512": [], "sha256": []}
    for i in range(count):
        rel = f"data/{i // 1000:03d}/file-{i:06d}.txt"
        content = f"{i}\n".encode()
        path = root / rel
        if i % 1000 == 0:
            path.parent.mkdir(parents=True)
        path.write_bytes(content)
        for alg, entries in lines.items():
            entries.append(f"{hashlib.new(alg, content).hexdigest()}  {rel}\n")
    (root / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    for alg, entries in lines.items():
        (root / f"manifest-{alg}.txt").write_text("".join(entries))
    return root


def _validate_growth_kb(bag: Path) -> tuple[int, int]:
    done = subprocess.run([sys.executable, "-c", VALIDATE_CHILD, str(bag)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["valid"], result
    return result["files"], result["grew_kb"]


@pytest.mark.slow
def test_full_validation_holds_little_per_file(tmp_path: Path) -> None:
    """Peak memory of validating 45,000 files minus that of 5,000, per file: a fixed, small index
    entry, so 1,000,000 files stay within reach of the 150 MB target."""
    small = _validate_growth_kb(_synthetic_bag(tmp_path / "small", 5_000))
    large = _validate_growth_kb(_synthetic_bag(tmp_path / "large", 45_000))
    per_file = (large[1] - small[1]) * 1024 / (large[0] - small[0])
    print(f"\nvalidation: {per_file:.0f} bytes of peak memory per file")
    assert (small[0], large[0]) == (5_000, 45_000)
    assert per_file <= PER_FILE_BYTES, f"{per_file:.0f} bytes per file"


# --- the index itself: flat, whatever the number of files ------------------------------------

#: Bytes per file the validator's index may hold, measured with tracemalloc on INDEX_FILES rows
#: (sha512 + sha256 manifests, paths like a writer's).  Flat arrays hold about 60 bytes a file
#: plus the raw digests (98 with their presence flags); a dict of path strings alone costs ~180
#: and the index before it ~280, which fail this.  Spilled to a temporary file (as from
#: SPILL_ROWS rows) the digests leave memory, and the allowance drops to the rest alone.
INDEX_FILES = 20_000
INDEX_BYTES_PER_FILE = 200
SPILLED_INDEX_BYTES_PER_FILE = 100


def _index_bytes_per_file(count: int) -> float:
    import tracemalloc

    from pipeline.bag.validate_tree import DigestColumn, Index

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        table = Index()
        for i in range(count):
            path = f"data/box-{i // 100:04d}/page-{i:06d}.txt"
            table.new_row(path, path, 4096)
        table.columns = [DigestColumn(64, reserve=count), DigestColumn(32, reserve=count)]
        for row in range(count):  # as read_manifest files each line: looked up by its path
            found = table.get(f"data/box-{row // 100:04d}/page-{row:06d}.txt")
            assert found == row
            table.columns[0].put(row, row.to_bytes(64, "big"))
            table.columns[1].put(row, row.to_bytes(32, "big"))
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert table.disk[count - 1] == f"data/box-{(count - 1) // 100:04d}/page-{count - 1:06d}.txt"
    assert table.columns[0].get(count - 1) == (count - 1).to_bytes(64, "big")
    assert [table.rows.get(k) for k in ("data/box-0000/page-000000.txt", "data/nothing")] == [0, None]
    return held / count


def test_the_validation_index_is_flat() -> None:
    per_file = _index_bytes_per_file(INDEX_FILES)
    print(f"\nindex: {per_file:.0f} bytes per file")
    assert per_file <= INDEX_BYTES_PER_FILE, f"{per_file:.0f} bytes per file"


def test_a_spilled_index_keeps_its_digests_out_of_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.bag import validate_tree

    monkeypatch.setattr(validate_tree, "SPILL_ROWS", 1_000)
    per_file = _index_bytes_per_file(INDEX_FILES)
    print(f"\nspilled index: {per_file:.0f} bytes per file")
    assert per_file <= SPILLED_INDEX_BYTES_PER_FILE, f"{per_file:.0f} bytes per file"
