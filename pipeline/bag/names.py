"""File names inside a bag: RFC 8493 percent-encoding and path safety.

RFC 8493 §2.1.3: in manifest and fetch.txt paths, CR, LF and ``%`` - and only those - are
percent-encoded (``%0D``, ``%0A``, ``%25``); readers decode them case-insensitively.
bagit-python encodes CR/LF but not ``%`` and decodes case-sensitively, which is why Strongroom
does its own encoding.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePosixPath

_ENCODE = {"%": "%25", "\r": "%0D", "\n": "%0A"}
_DECODE = re.compile(r"%(25|0[dD]|0[aA])")
_DRIVE = re.compile(r"^[A-Za-z]:")


def encode_path(path: str) -> str:
    """Encode a bag-relative POSIX path for a manifest or fetch.txt line."""
    if "%" not in path and "\n" not in path and "\r" not in path:  # most names: no per-character walk
        return path
    return "".join(_ENCODE.get(ch, ch) for ch in path)


def decode_path(encoded: str) -> str:
    """Decode a manifest or fetch.txt path; ``%0d``/``%0D`` alike, other ``%xx`` left as written."""
    return _DECODE.sub(lambda m: {"25": "%", "0d": "\r", "0a": "\n"}[m.group(1).lower()], encoded)


def unsafe_reason(path: str) -> str | None:
    """Why a path read from a bag may not be used to open a file inside it, or None if safe.

    Refuses absolute paths, ``..`` components, ``~`` home references, drive letters, backslash
    separators (UNC and ``\\\\?\\`` forms) and empty components.
    """
    if not path:
        return "empty path"
    if "\x00" in path:
        return "NUL byte in path"
    if path.startswith("/"):
        return "absolute path"
    if path.startswith("~"):
        return "home-directory reference (~)"
    if _DRIVE.match(path):
        return "drive letter"
    if "\\" in path:
        return "backslash in path (UNC or Windows form)"
    parts = path.split("/")
    if any(p == ".." for p in parts):
        return "'..' component"
    if any(p in ("", ".") for p in parts):
        return "empty or '.' component"
    return None


def nfc(path: str) -> str:
    """The NFC form of a name, for comparisons (files are still opened by their on-disk names)."""
    return unicodedata.normalize("NFC", path)


def payload_path(relative: PurePosixPath | str) -> str:
    """The bag path of a payload file given its path relative to ``data/``."""
    return f"data/{PurePosixPath(relative).as_posix()}"


def printable(text: str) -> str:
    """One terminal-safe line: control characters from names or metadata (CR, LF, ESC...) escaped."""
    return "".join(ch if ch.isprintable() or ch == " " else ascii(ch)[1:-1] for ch in text)
