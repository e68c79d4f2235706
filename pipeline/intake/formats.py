"""The media type a record states for a payload file: from its first bytes, else from its name.

This is the *stated* format a person would write in a record (``text/plain; charset=us-ascii``),
not format identification: ingest identifies formats against PRONOM on its own.  A short table of
unambiguous signatures is enough here; Python's built-in name table (not the machine's
``/etc/mime.types``, which differs between machines) covers the rest.
"""

from __future__ import annotations

import codecs
import mimetypes
from pathlib import Path

#: Leading bytes that name a format beyond doubt (the file's name may say otherwise).
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"fLaC", "audio/flac"),
)
_RIFF = {b"WAVE": "audio/wav", b"WEBP": "image/webp"}
_NAMES = mimetypes.MimeTypes(filenames=())
_CHUNK = 1 << 20


def stated_format(path: Path) -> str | None:
    """The media type to state for ``path``, with the charset of a text file; None if unknown."""
    with open(path, "rb") as fh:
        head = fh.read(16)
    for magic, media_type in _SIGNATURES:
        if head.startswith(magic):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    guessed, encoding = _NAMES.guess_type(path.name, strict=True)
    if guessed is None or encoding is not None:  # a .txt.gz is not text
        return None
    if guessed.startswith("text/"):
        charset = text_charset(path)
        return f"{guessed}; charset={charset}" if charset else guessed
    return guessed


def text_charset(path: Path) -> str | None:
    """``us-ascii`` or ``utf-8`` when the whole file is that, else None (read in 1 MiB blocks)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    ascii_only = True
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            ascii_only = ascii_only and block.isascii()
            try:
                decoder.decode(block)
            except UnicodeDecodeError:
                return None
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return None
    return "us-ascii" if ascii_only else "utf-8"
