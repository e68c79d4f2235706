"""pipeline.progress: a bar on a terminal, nothing at all in a pipe or a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.progress import Meter, bag_totals, directory_totals, progress_bar, wanted


def test_no_terminal_no_output_and_a_silent_meter() -> None:
    stream = io.StringIO()
    assert not wanted(stream)
    with progress_bar("copying", total_bytes=10, total_files=1, stream=stream) as meter:
        meter(5, 0)
        meter.phase("verifying", total_bytes=10)
        meter(10, 1)
    assert type(meter) is Meter and stream.getvalue() == ""


def test_a_pipe_never_imports_rich(tmp_path: Path) -> None:
    code = ("import sys; from pipeline.progress import progress_bar\n"
            "with progress_bar('x', total_bytes=1) as m: m(1, 1)\n"
            "print('rich' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "False" and done.stderr == ""


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_a_terminal_shows_bytes_files_and_stages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("STRONGROOM_NO_PROGRESS", raising=False)
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert wanted(tty)
        with progress_bar("copying", total_bytes=2048, total_files=2, stream=tty) as meter:
            meter(1024, 1)
            meter.phase("verifying", total_bytes=2048, total_files=2)
            meter(2048, 2)
        tty.flush()
        shown = _drain(master)
    os.close(master)
    assert "copying" in shown and "verifying" in shown
    assert "2/2 files" in shown and "2.0/2.0 kB" in shown


def _drain(master: int) -> str:
    """Everything written to the terminal so far: a pseudo-terminal hands it out in pieces (one
    read returned only the first redraws when the machine was busy)."""
    import select

    chunks: list[bytes] = []
    while select.select([master], [], [], 0.5)[0]:
        chunk = os.read(master, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def test_no_progress_variable_silences_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRONGROOM_NO_PROGRESS", "1")
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as tty:
        assert not wanted(tty)
    os.close(master)


def test_totals_from_a_directory_and_from_payload_oxum(tmp_path: Path) -> None:
    (tmp_path / "d" / "e").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(b"12345")
    (tmp_path / "d" / "e" / "b").write_bytes(b"123")
    (tmp_path / "d" / "link").symlink_to(tmp_path / "d" / "a")
    assert directory_totals(tmp_path / "d") == (8, 2)
    (tmp_path / "bag-info.txt").write_text("Payload-Oxum: 8.2\n")
    assert bag_totals(tmp_path) == (8, 2)
    (tmp_path / "bag-info.txt").write_text("Payload-Oxum: nonsense\n")
    assert bag_totals(tmp_path) == (None, None)
