"""Progress on a terminal for the long commands, seen as a user sees it: through a pseudo-terminal.

A bar on a terminal (bytes, files), and nothing extra when the output is a pipe or a log.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")


def _on_terminal(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run ``strongroom ARGS`` with stdout and stderr on a pseudo-terminal; (exit code, all it showed)."""
    master, slave = os.openpty()
    full_env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", **(env or {})}
    full_env.pop("STRONGROOM_NO_PROGRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *map(str, args)], cwd=REPO, env=full_env,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:  # read while it runs: a full terminal buffer would block the command
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO once the command has closed its side
                return
            if not chunk:
                return
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    code = proc.wait(timeout=300)
    reader.join(timeout=10)
    os.close(master)
    return code, b"".join(chunks).decode(errors="replace")


def test_deposit_shows_a_bar_of_bags_bytes_and_files_on_a_terminal(
        make_bag: Callable[..., Path], tmp_path: Path) -> None:
    bags = [make_bag("alpha", files={"a.txt": b"a" * 3000}), make_bag("beta", files={"b.txt": b"b" * 5000})]
    target = tmp_path / "repo"
    code, shown = _on_terminal("deposit", *bags, "--to", f"file://{target}?create=1", "--no-flow", "--no-ledger")
    assert code == 0, shown
    assert "depositing to file" in shown
    total_files = sum(1 for b in bags for p in b.rglob("*") if p.is_file())
    assert f"{total_files}/{total_files} files" in shown  # the last redraw: every bag counted
    assert "deposited" in shown and (target / bags[0].name / "bagit.txt").is_file()


def test_deposit_in_a_pipe_prints_only_its_report(make_bag: Callable[..., Path], tmp_path: Path) -> None:
    bag = make_bag("gamma")
    done = run_cli("deposit", bag, "--to", f"file://{tmp_path / 'repo'}?create=1", "--no-flow", "--no-ledger",
                   env={"TERM": "xterm"})
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert "depositing" not in done.stdout
    assert done.stdout.splitlines()[-1] == "1 bag(s): 1 deposited, 0 unchanged, 0 failed"


def test_validate_shows_a_bar_on_a_terminal(make_bag: Callable[..., Path]) -> None:
    bag = make_bag("delta", files={f"f{i}.txt": os.urandom(2048) for i in range(3)})
    code, shown = _on_terminal("validate", bag)
    assert code == 0, shown
    assert f"validating {bag.name}" in shown and "3/3 files" in shown
    assert "valid" in shown


def test_audit_shows_a_bar_of_bytes_and_files_on_a_terminal(make_bag: Callable[..., Path], tmp_path: Path) -> None:
    bags = [make_bag("epsilon", files={"e.txt": b"e" * 4000}), make_bag("zeta", files={"z.txt": b"z" * 6000})]
    bags_dir = bags[0].parent
    registered = run_cli("register", *bags, "--bags", bags_dir)
    assert registered.returncode == 0, registered.stderr
    code, shown = _on_terminal("audit", "--bags", bags_dir)
    assert code == 0, shown
    assert "auditing" in shown
    checked = sum(1 for b in bags for p in b.rglob("*") if p.is_file())  # payload and tag files
    assert f"{checked:,} files" in shown
    octets = sum(p.stat().st_size for b in bags for p in b.rglob("*") if p.is_file())
    assert f"{octets / 1000:.1f}/{octets / 1000:.1f} kB" in shown  # the last redraw: all of it re-read


def test_ingest_shows_a_bar_of_payload_bytes_on_a_terminal(tmp_path: Path, records_copy: Path,
                                                           prefect_api_url: str) -> None:
    import re

    record = records_copy / "icg-peru-1986" / "record.yaml"
    text = record.read_text(encoding="utf-8")
    payload = records_copy / "icg-peru-1986" / "000_5b99444169de3d3a.txt"
    payload.write_bytes(b"x" * (4 << 20))  # a few MB, stated digests removed to match
    record.write_text(re.sub(r"\n    checksums:\n(      .*\n)+", "\n", text), encoding="utf-8")
    code, shown = _on_terminal("ingest", record, "--bags", tmp_path / "bags",
                               env={"PREFECT_API_URL": prefect_api_url})
    assert code == 0, shown
    assert "4.2/4.2 MB" in shown and "1/1 files" in shown  # bytes and files, not records
    assert "0/?" not in shown
