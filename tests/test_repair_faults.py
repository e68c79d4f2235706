"""Repair under faults: a SIGKILL in the middle of a large file, two repair processes on one PostgreSQL ledger."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pipeline.audit import register_bag
from pipeline.deposit import deposit_bag
from pipeline.ledger import Ledger
from tests.test_audit_faults import flip_byte

MakeBag = Callable[..., Path]
BIG = (bytes(range(256)) * 4096) * 64  # 64 MiB


def _sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _child(call: str) -> subprocess.Popen[str]:
    """A Python child that runs ``call`` with a ``progress(n)`` callback printing the bytes copied so far."""
    script = ("import sys, time\nfrom pathlib import Path\ncopied = [0]\n"
              "def progress(n):\n    copied[0] += n\n    print(copied[0], flush=True)\n" + call)
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)


def _repair_call(bags: Path, ledger_url: str, *, lease: float, pause: float = 0.0) -> str:
    """Code repairing big.v1 in a child; with ``pause``, it sleeps that long after its first block."""
    hook = (f"def hook(n):\n    progress(n)\n    if copied[0] <= {1 << 20}:\n        time.sleep({pause})\n"
            if pause else "hook = progress\n")
    return hook + ("from pipeline.audit.repair import RepairOptions, repair_bag\n"
                   "from pipeline.ledger import Ledger\n"
                   f"with Ledger.open({ledger_url!r}) as ledger:\n"
                   f"    r = repair_bag(ledger, 'big.v1', RepairOptions(bags_dir=Path({str(bags)!r}), "
                   f"lease_seconds={lease}, on_bytes=hook))\n"
                   "print('outcome', r.outcome, flush=True)\n")


@pytest.fixture
def big(tmp_path: Path, make_bag: MakeBag) -> Callable[[str], tuple[Path, str]]:
    """``big(ledger_url)``: bag big.v1 (a 64 MiB payload file) registered, deposited to a directory."""
    def make(ledger_url: str) -> tuple[Path, str]:
        bag = make_bag("big", files={"big.bin": BIG, "small.txt": b"small\n"})
        with Ledger.open(ledger_url) as ledger:
            register_bag(ledger, bag, origin="ingest")
            location = deposit_bag(bag, f"file://{tmp_path}/copies?create=1", ledger=ledger).location
        return bag, location

    return make


@pytest.mark.slow
def test_a_sigkill_mid_repair_leaves_the_file_old_or_repaired_and_a_rerun_finishes(
        big: Callable[[str], tuple[Path, str]], tmp_path: Path, cli: Any) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'bags' / '.strongroom-ledger.sqlite'}"
    bag, _ = big(ledger_url)
    good = _sha(bag / "data/big.bin")
    flip_byte(bag / "data/big.bin", 40 << 20)
    damaged = _sha(bag / "data/big.bin")
    child = _child(_repair_call(bag.parent, ledger_url, lease=2))
    assert child.stdout is not None
    for line in child.stdout:
        if line.strip().isdigit() and int(line) >= 16 << 20:
            child.kill()
            break
    child.wait()
    assert child.returncode == -9, "the repair ended before it could be killed mid-file"
    assert _sha(bag / "data/big.bin") in (damaged, good)  # never a partial file in place
    run = cli("repair", "--bags", bag.parent)  # waits for the killed run's claim (2 s lease) to lapse
    assert run.returncode == 0, run.stdout + run.stderr
    assert _sha(bag / "data/big.bin") == good
    assert not list(bag.rglob("*strongroom-repair*")), "a staged file was left in the bag"
    assert cli("audit", "--bags", bag.parent).returncode == 0
    assert cli("validate", bag).returncode == 0


@pytest.mark.slow
@pytest.mark.postgres
def test_two_repair_processes_on_one_postgresql_ledger_never_repair_the_same_bag_at_once(
        big: Callable[[str], tuple[Path, str]], fresh_pg_url: str, cli: Any) -> None:
    bag, _ = big(fresh_pg_url)
    flip_byte(bag / "data/big.bin", 1 << 20)
    first = _child(_repair_call(bag.parent, fresh_pg_url, lease=30, pause=3))
    assert first.stdout is not None
    for line in first.stdout:  # the first holds its claim, and pauses, while it copies
        if line.strip().isdigit():
            break
    second = subprocess.Popen([sys.executable, "-m", "pipeline.cli", "repair", "big.v1", "--bags", str(bag.parent),
                               "--ledger", fresh_pg_url, "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
    started = time.monotonic()
    out, err = second.communicate(timeout=300)
    waited = time.monotonic() - started
    rest = first.communicate(timeout=300)[0]
    assert first.returncode == 0 and "outcome repaired" in rest, rest
    assert second.returncode == 0, err
    assert json.loads(out)["bags"][0]["outcome"] == "intact"  # it waited for the first, then found the bag whole
    assert waited > 1.0
    with Ledger.open(fresh_pg_url) as ledger:
        recoveries = [e for e in ledger.events("big.v1") if e.event_type == "rec"]
    assert [e.object_ids for e in recoveries] == [("data/big.bin",)]
