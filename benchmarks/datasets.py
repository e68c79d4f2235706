"""The benchmark's own data, built once under ``benchmarks/data/`` (git-ignored) and reused.

Content is pseudo-random from fixed seeds: the same bytes on every machine and run, and nothing a
compressing filesystem could shortcut.  A ``.ready`` stamp holding the parameters marks a complete
data set; a different size rebuilds it.
"""

from __future__ import annotations

import json
import random
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

CHUNK = 1 << 20
RECORD = """\
id: bench-{n:05d}
dc:
  title:
    - {{value: Strongroom benchmark item {n}, lang: en}}
rights:
  statement:
    - {{value: Copyright Undetermined (benchmark data)., lang: en}}
  uri: http://rightsstatements.org/vocab/UND/1.0/
source_organization: Strongroom benchmark
payload:
  - path: item.txt
"""


@dataclass(frozen=True)
class Sizes:
    """How much data each part of the run uses."""

    large_files: int = 4
    large_size: int = 256 * CHUNK  # 4 x 256 MiB = 1 GiB
    small_files: int = 10_000
    small_size: int = 4096
    scale_files: int = 100_000
    scale_size: int = 1024
    records: int = 1_000
    million_files: int = 1_000_000  # only with --large-scale (of scale_size bytes each)
    audit_bags: int = 10_000  # only with --audit-scale

    @classmethod
    def quick(cls) -> "Sizes":
        """Enough to exercise every measure in about a minute."""
        return cls(large_files=4, large_size=16 * CHUNK, small_files=1_000, scale_files=10_000,
                   records=50, million_files=20_000, audit_bags=100)


def _ready(directory: Path, params: Mapping[str, object]) -> bool:
    stamp = directory / ".ready"
    return stamp.is_file() and json.loads(stamp.read_text()) == params


def _mark(directory: Path, params: Mapping[str, object]) -> None:
    (directory / ".ready").write_text(json.dumps(params))


def _fresh(directory: Path) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)


def large_files(root: Path, count: int, size: int) -> Path:
    """``count`` files of ``size`` bytes each in ``root/large/payload``."""
    directory, params = root / "large", {"count": count, "size": size}
    if not _ready(directory, params):
        _fresh(directory)
        payload = directory / "payload"
        payload.mkdir()
        for i in range(count):
            rng = random.Random(i)
            with open(payload / f"volume-{i:02d}.bin", "wb") as fh:
                for offset in range(0, size, CHUNK):
                    fh.write(rng.randbytes(min(CHUNK, size - offset)))
        _mark(directory, params)
    return directory / "payload"


def small_files(root: Path, name: str, count: int, size: int, per_dir: int = 100) -> Path:
    """``count`` files of ``size`` bytes, ``per_dir`` to a directory, in ``root/<name>/payload``."""
    directory, params = root / name, {"count": count, "size": size, "per_dir": per_dir}
    if not _ready(directory, params):
        _fresh(directory)
        payload = directory / "payload"
        rng = random.Random(count)
        for i in range(count):
            folder = payload / f"box-{i // per_dir:04d}"
            if i % per_dir == 0:
                folder.mkdir(parents=True)
            (folder / f"page-{i:06d}.txt").write_bytes(rng.randbytes(size))
        _mark(directory, params)
    return directory / "payload"


def records(root: Path, count: int, size: int = 2048) -> Path:
    """``count`` small records (one payload file each) in ``root/records``."""
    directory, params = root / "records", {"count": count, "size": size}
    if not _ready(directory, params):
        _fresh(directory)
        rng = random.Random(7)
        for n in range(1, count + 1):
            folder = directory / f"bench-{n:05d}"
            folder.mkdir()
            (folder / "record.yaml").write_text(RECORD.format(n=n), encoding="utf-8")
            (folder / "item.txt").write_bytes(rng.randbytes(size).hex().encode()[:size])
        _mark(directory, params)
    return directory


def describe(sizes: Sizes) -> dict[str, object]:
    """The sizes, for the results file."""
    return asdict(sizes)
