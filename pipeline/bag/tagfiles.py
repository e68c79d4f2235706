"""Writing and leniently reading BagIt tag files (bagit.txt, bag-info.txt, manifests).

The strict reading - with a finding for every deviation - is the validator's job
(:mod:`pipeline.bag.validator`); this module is what the writer and the tools that read bags
Strongroom made (show, audit, deposit) share.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pipeline.bag.names import decode_path, encode_path

BAGIT_TXT = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
_MANIFEST_NAME = re.compile(r"^(tag)?manifest-([a-z0-9]+)\.txt$")
_MANIFEST_LINE = re.compile(r"^([0-9A-Fa-f]+)[ \t]+\*?(.+)$")

BagInfo = list[tuple[str, str]]


def format_bag_info(items: Sequence[tuple[str, str]]) -> str:
    """bag-info.txt text, labels in the order given; multi-line values folded with a leading space."""
    out: list[str] = []
    for label, value in items:
        if not label or ":" in label or label != label.strip() or "\n" in label:
            raise ValueError(f"bad bag-info label {label!r}")
        lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
        out.append(f"{label}: {lines[0]}")
        out.extend(f"  {cont}" for cont in lines[1:])
    return "\n".join(out) + "\n" if out else ""


def parse_bag_info(text: str) -> BagInfo:
    """Labels and values in file order; continuation lines joined with a newline."""
    items: BagInfo = []
    for raw in text.splitlines():
        if raw[:1] in (" ", "\t") and items:
            label, value = items[-1]
            items[-1] = (label, f"{value}\n{raw.strip()}")
        elif ":" in raw:
            label, _, value = raw.partition(":")
            items.append((label.strip(), value.strip()))
    return items


def read_bag_info(bag: Path) -> BagInfo:
    """The bag-info.txt of a bag as (label, value) pairs; empty when there is none."""
    path = bag / "bag-info.txt"
    if not path.is_file():
        return []
    return parse_bag_info(path.read_text(encoding="utf-8", errors="replace"))


def info_value(info: Iterable[tuple[str, str]], label: str) -> str | None:
    """The first value for ``label`` (case-insensitive, as RFC 8493 reserves labels)."""
    wanted = label.lower()
    return next((v for k, v in info if k.lower() == wanted), None)


def format_manifest_line(digest: str, path: str) -> str:
    """One manifest line: digest, two spaces, percent-encoded path (as sha*sum writes)."""
    return f"{digest}  {encode_path(path)}\n"


def manifest_name(algorithm: str, *, tag: bool = False) -> str:
    """``manifest-sha512.txt`` or ``tagmanifest-sha512.txt``."""
    return f"{'tag' if tag else ''}manifest-{algorithm}.txt"


def manifest_algorithms(bag: Path, *, tag: bool = False) -> list[str]:
    """Algorithms of the payload (or tag) manifests present, sorted."""
    found = []
    for entry in bag.iterdir():
        m = _MANIFEST_NAME.match(entry.name)
        if m and bool(m.group(1)) == tag and entry.is_file():
            found.append(m.group(2))
    return sorted(found)


def iter_manifest(path: Path) -> Iterator[tuple[str, str]]:
    """(decoded path, lowercase digest) per well-formed line of a manifest; streams the file."""
    with open(path, encoding="utf-8", newline="") as fh:
        for raw in fh:
            line = raw.rstrip("\r\n")
            m = _MANIFEST_LINE.match(line)
            if m:
                yield decode_path(m.group(2)), m.group(1).lower()
