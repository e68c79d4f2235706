"""Format identification against PRONOM (pipeline.formats): siegfried in-process, real signatures."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from pipeline.formats import IDENTIFY_ENV, IdentificationError, identification_enabled, identify, tool

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "records" / "icg-peru-1986" / "000_5b99444169de3d3a.txt"


def write_png(path: Path) -> Path:
    """A real 1x1 RGB PNG (signature, IHDR, IDAT, IEND with their CRCs)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))
    return path


def test_the_seed_is_plain_text_x_fmt_111() -> None:
    found = identify(SEED)
    assert (found.puid, found.name, found.mime) == ("x-fmt/111", "Plain Text File", "text/plain")
    assert found.tool.name == "siegfried" and found.tool.version
    assert "DROID_SignatureFile" in found.tool.signature  # the PRONOM signature release is named
    assert found.basis  # how siegfried decided


def test_a_png_is_one_of_the_png_puids_whatever_its_name(tmp_path: Path) -> None:
    assert identify(write_png(tmp_path / "pixel.png")).puid in ("fmt/11", "fmt/12", "fmt/13")
    misnamed = identify(write_png(tmp_path / "pixel.txt"))  # identified by its bytes, not its name
    assert misnamed.puid in ("fmt/11", "fmt/12", "fmt/13") and misnamed.mime == "image/png"


def test_unidentifiable_and_empty_files_have_no_puid(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "noise").write_bytes(b"\x00\x01\x02\x03 no known format")
    for name in ("empty", "noise"):
        found = identify(tmp_path / name)
        assert found.puid is None and found.warning, name


def test_a_missing_file_is_one_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(IdentificationError, match="gone.txt"):
        identify(tmp_path / "gone.txt")


@pytest.mark.parametrize(("stated", "agrees"), [
    ("text/plain", True), ("text/plain; charset=us-ascii", True), ("TEXT/PLAIN", True),
    (None, True), ("image/png", False), ("application/pdf", False)])
def test_disagreement_with_the_stated_mime_type(stated: str | None, agrees: bool) -> None:
    text = identify(SEED).disagreement(stated)
    assert (text is None) is agrees
    if text:
        assert stated in text and "x-fmt/111" in text


def test_the_signatures_load_once_per_process() -> None:
    assert tool() is tool()


def test_the_switch_turns_identification_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(IDENTIFY_ENV, raising=False)
    assert identification_enabled()
    for off in ("0", "off", "no", "false"):
        monkeypatch.setenv(IDENTIFY_ENV, off)
        assert not identification_enabled()


def test_identification_runs_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """No child process per file: identification still works when starting one is impossible."""
    tool()  # signatures loaded

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("identification started a process")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr("os.posix_spawn", refuse, raising=False)
    monkeypatch.setattr("os.fork", refuse)
    assert identify(SEED).puid == "x-fmt/111"
