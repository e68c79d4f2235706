"""Strict reading of a bag's text tag files: bagit.txt, bag-info.txt and the line reader.

Every deviation becomes a finding in the :class:`~pipeline.bag.validate_codes.Collector`; nothing
here raises on a bad bag.  Files are opened with ``O_NOFOLLOW`` and read line by line in the
encoding ``bagit.txt`` declares (UTF-8, ISO-8859-1, UTF-16... as RFC 8493 §2.1.1 allows).
"""

from __future__ import annotations

import codecs
import datetime as dt
import io
import errno
import os
import stat
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from pipeline.bag.validate_codes import Collector

BAGIT_TXT = "bagit.txt"
#: bagit.txt is tiny; a huge one is not a bag and must not be read whole.
_BAGIT_TXT_LIMIT = 64 * 1024
_KNOWN_VERSIONS = {(0, 93), (0, 94), (0, 95), (0, 96), (0, 97), (1, 0)}
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ELEMENT = re.compile(r"^(?P<label>[^:]*?)(?P<pre>[ \t]*):(?P<post>[ \t]*)(?P<value>.*?)(?P<trail>[ \t]*)$")
_VERSION = re.compile(r"^(\d+)\.(\d+)$")
_OXUM = re.compile(r"^(\d+)\.(\d+)$")
_BAG_COUNT = re.compile(r"^(\d+) of (\d+|\?)$")
#: RFC 8493 §2.2.2: these SHOULD NOT repeat (Payload-Oxum, which MUST NOT, has its own code).
_NOT_REPEATED = ("bagging-date", "bag-count", "bag-size", "bag-group-identifier")

BagInfo = list[tuple[str, str]]


def open_nofollow(path: Path) -> io.FileIO:
    """Open a bag file for binary reading, refusing a symlink at the last component.

    Anything but a regular file is refused with an OSError ("not a regular file"): opened without
    O_NONBLOCK, a FIFO would wait for a writer forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    os.set_blocking(fd, True)
    return io.FileIO(fd, "rb", closefd=True)


def bag_info_name(version: tuple[int, int]) -> str:
    """bag-info.txt, or package-info.txt for the drafts before 0.96 that used that name."""
    return "package-info.txt" if version < (0, 96) else "bag-info.txt"


def read_bagit_txt(c: Collector) -> bool:
    """Check bagit.txt and set ``c.version``/``c.encoding``; False when it is absent or unreadable."""
    path = c.bag / BAGIT_TXT
    if not os.path.lexists(path):
        c.add("BAGIT-TXT-MISSING", BAGIT_TXT, "bagit.txt is absent: this is not a bag")
        return False
    try:
        with open_nofollow(path) as fh:
            raw = fh.read(_BAGIT_TXT_LIMIT + 1)
    except OSError as exc:
        c.add("UNREADABLE", BAGIT_TXT, f"cannot be read: {exc.strerror or exc}")
        return False
    if raw.startswith(codecs.BOM_UTF8):
        c.add("BAGIT-TXT-BOM", BAGIT_TXT, "starts with a UTF-8 byte-order mark, which BagIt forbids")
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        c.add("BAGIT-TXT-ENCODING", BAGIT_TXT, f"is not UTF-8 (byte {exc.start})")
        text = raw.decode("utf-8", errors="replace")
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    _check_bagit_lines(c, lines)
    return True


def _check_bagit_lines(c: Collector, lines: list[str]) -> None:
    wanted = ("BagIt-Version", "Tag-File-Character-Encoding")
    if len(lines) != 2:
        c.add("BAGIT-TXT-LINES", BAGIT_TXT,
              f"must hold exactly two lines ({wanted[0]}, {wanted[1]}), holds {len(lines)}")
    values: dict[str, str] = {}
    loose: list[tuple[int, str]] = []
    for number, line in enumerate(lines[:2], start=1):
        m = _ELEMENT.match(line)
        if not m or m.group("label") != wanted[number - 1]:
            c.add("BAGIT-TXT-LINES", BAGIT_TXT,
                  f"line {number} must be '{wanted[number - 1]}: ...', found {line[:60]!r}")
            continue
        values[m.group("label")] = m.group("value")
        if m.group("pre") or m.group("post") != " " or m.group("trail"):
            loose.append((number, line))
    _check_version(c, values.get(wanted[0]))
    _check_encoding(c, values.get(wanted[1]))
    for number, line in loose:  # judged once the version is known
        # RFC 8493 §2.1.1 fixes the form exactly; the drafts were read more loosely.
        c.by_version("BAGIT-TXT-SYNTAX", BAGIT_TXT,
                     f"line {number} must read '{wanted[number - 1]}: <value>' with one space "
                     f"after the colon and none before it or at the end, found {line!r}")


def _check_version(c: Collector, value: str | None) -> None:
    if value is None:
        return
    m = _VERSION.match(value)
    if not m:
        c.add("BAGIT-VERSION", BAGIT_TXT, f"BagIt-Version must be M.N, found {value!r}",
              expected="M.N", found=value)
        return
    c.version = (int(m.group(1)), int(m.group(2)))
    c.version_text = value
    if c.version not in _KNOWN_VERSIONS:
        c.add("BAGIT-VERSION-UNKNOWN", BAGIT_TXT,
              f"BagIt-Version {value} is not one Strongroom knows (0.93-0.97, 1.0); "
              "checked by the 1.0 rules, but not valid" if c.version > (1, 0) else
              f"BagIt-Version {value} is not one Strongroom knows; checked by the 0.97 rules, but not valid")


def _check_encoding(c: Collector, value: str | None) -> None:
    if value is None:
        return
    try:
        c.encoding = codecs.lookup(value).name
    except LookupError:
        c.add("TAG-ENCODING-UNKNOWN", BAGIT_TXT,
              f"Tag-File-Character-Encoding {value!r} is not a known encoding; tag files read as UTF-8")


def iter_tag_lines(c: Collector, rel: str) -> Iterator[tuple[int, str]]:
    """(line number, text without its line break) of a tag file, in the declared encoding.

    Bytes that are not in the declared encoding give one TAG-ENCODING-DECODE finding; reading
    then goes on with replacement characters so the rest of the file is still checked.
    Streams the file.
    """
    done = 0
    for errors in ("strict", "replace"):
        try:
            fh = _open_text(c.bag / rel, c.encoding, errors)
        except OSError as exc:
            c.add("UNREADABLE", rel, f"cannot be read: {exc.strerror or exc}")
            return
        with fh:
            try:
                for number, raw in enumerate(fh, start=1):
                    if number <= done:
                        continue  # already given before the decoding error
                    done = number
                    yield number, _strip(c, rel, number, raw)
                return
            except UnicodeError:  # UnicodeDecodeError, or a codec's own refusal of the stream
                after = f" after line {done}" if done else ""
                c.add("TAG-ENCODING-DECODE", rel, f"is not valid {c.encoding} (the encoding bagit.txt "
                      f"declares){after}; read on with replacement characters")


def _strip(c: Collector, rel: str, number: int, raw: str) -> str:
    line = raw.rstrip("\r\n")
    if number == 1 and line.startswith("\ufeff"):
        c.add("TAG-FILE-BOM", rel, "starts with a byte-order mark; ignored")
        line = line[1:]
    return line


#: Encodings whose byte order is told by a byte-order mark, and the order to read without one.
#: Python's decoders for these refuse a stream with no BOM ("UTF-16 stream does not start with
#: BOM"); RFC 2781 section 4.3 says such UTF-16 text SHOULD be read as big-endian (so does the
#: Unicode standard for UTF-32), so Strongroom reads it so instead of failing.
_BOM_ORDERED = {"utf-16": ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16-be"),
                "utf-32": ((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32-be")}


def _open_text(path: Path, encoding: str, errors: str) -> TextIO:
    # newline="" keeps CR, LF and CRLF as written: BagIt allows all three as line ends.
    raw = io.BufferedReader(open_nofollow(path))
    if encoding in _BOM_ORDERED:
        boms, without = _BOM_ORDERED[encoding]
        head = raw.peek(4)[:4]
        if not any(head.startswith(bom) for bom in boms):
            encoding = without
    return io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline="")


def read_bag_info(c: Collector) -> BagInfo | None:
    """Parse and check bag-info.txt (or package-info.txt); None when the bag has none."""
    rel = bag_info_name(c.version)
    if not (c.bag / rel).is_file() or (c.bag / rel).is_symlink():
        return None
    items: BagInfo = []
    for number, line in iter_tag_lines(c, rel):
        if not line.strip():
            c.add("BAGINFO-SYNTAX", rel, f"line {number} is blank", severity="warning")
        elif line[0] in " \t":
            if not items:
                c.add("BAGINFO-SYNTAX", rel, f"line {number} continues a value but follows no label")
            else:
                label, value = items[-1]
                items[-1] = (label, f"{value}\n{line.strip()}")
        else:
            element = _parse_element(c, rel, number, line)
            if element:
                items.append(element)
    _check_reserved(c, rel, items)
    return items


def _parse_element(c: Collector, rel: str, number: int, line: str) -> tuple[str, str] | None:
    if ":" not in line:
        c.add("BAGINFO-SYNTAX", rel, f"line {number} has no ':' (expected 'Label: value'): {line[:60]!r}")
        return None
    label, _, rest = line.partition(":")
    if not label.strip():
        c.add("BAGINFO-SYNTAX", rel, f"line {number} has an empty label")
        return None
    if c.strict and (label != label.strip() or (rest and rest[0] not in " \t")):
        # RFC 8493 §2.2.2: label, colon, ONE linear whitespace, value; no whitespace around labels.
        c.add("BAGINFO-SYNTAX", rel,
              f"line {number} must be 'Label: value' (no whitespace before the colon, "
              f"one space or tab after it): {line[:60]!r}")
    return label.strip(), rest.strip(" \t")


def _check_reserved(c: Collector, rel: str, items: BagInfo) -> None:
    counts: dict[str, int] = {}
    for label, value in items:
        key = label.lower()
        counts[key] = counts.get(key, 0) + 1
        if key == "payload-oxum" and not _OXUM.match(value):
            c.add("OXUM-SYNTAX", rel, f"Payload-Oxum must be <octets>.<file count>, found {value!r}",
                  expected="octets.count", found=value)
        elif key == "bagging-date" and not _is_date(value):
            c.add("BAGINFO-DATE", rel, f"Bagging-Date must be YYYY-MM-DD, found {value!r}",
                  expected="YYYY-MM-DD", found=value)
        elif key == "bag-count" and not _is_bag_count(value):
            c.add("BAGINFO-BAG-COUNT", rel, f"Bag-Count must be 'N of T' (T may be '?'), found {value!r}",
                  expected="N of T", found=value)
    if counts.get("payload-oxum", 0) > 1:
        c.add("OXUM-REPEATED", rel, f"Payload-Oxum appears {counts['payload-oxum']} times; at most once")
    for key in _NOT_REPEATED:
        if counts.get(key, 0) > 1:
            label = next(lbl for lbl, _ in items if lbl.lower() == key)
            c.add("BAGINFO-REPEATED", rel, f"{label} appears {counts[key]} times; it should not repeat")


def _is_date(value: str) -> bool:
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_bag_count(value: str) -> bool:
    m = _BAG_COUNT.match(value)
    if not m:
        return False
    return m.group(2) == "?" or 0 < int(m.group(1)) <= int(m.group(2))


def oxum(items: BagInfo) -> tuple[int, int] | None:
    """(octets, files) of the first well-formed Payload-Oxum, or None."""
    for label, value in items:
        m = _OXUM.match(value) if label.lower() == "payload-oxum" else None
        if m:
            return int(m.group(1)), int(m.group(2))
    return None
