"""A bag described in a few readable lines, from its own metadata (nothing is hashed)."""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipeline.bag.names import printable
from pipeline.bag.tagfiles import info_value, iter_manifest, manifest_algorithms, manifest_name, read_bag_info
from pipeline.errors import StrongroomError

_SHOWN_LABELS = ("Title", "Creator", "Publisher", "Date-Issued", "Language", "Provenance-Chain", "Rights",
                 "Rights-URI", "External-Identifier", "Source-Organization", "Bagging-Date",
                 "Bag-Software-Agent", "BagIt-Profile-Identifier")
_MAX_FILES = 10


def describe(bag: Path) -> str:
    """Title, identifiers, provenance, dates, payload and tag files of ``bag``."""
    if not bag.exists():
        raise StrongroomError(f"{bag}: no such file or directory")
    if not (bag / "bagit.txt").is_file():
        raise StrongroomError(f"{bag}: not a bag (no bagit.txt)")
    info = read_bag_info(bag)
    lines = [printable(f"{bag.name}  ({bag})")]
    for label in _SHOWN_LABELS:
        value = info_value(info, label)
        if value:
            lines.append(_field(label, value))
    lines.extend(_payload_lines(bag, info_value(info, "Payload-Oxum")))
    lines.extend(_format_lines(bag))
    tags = sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*")
                  if p.is_file() and p.relative_to(bag).parts[0] != "data")
    lines.append(printable(f"  {'Tag files:':<26}{', '.join(tags)}"))
    return "\n".join(lines)


def _payload_lines(bag: Path, oxum: str | None) -> list[str]:
    algorithms = manifest_algorithms(bag)
    lines = [f"  {'Manifests:':<26}{', '.join(algorithms) or 'none'}"]
    if oxum:
        octets, _, count = oxum.partition(".")
        if octets.isdigit() and count.isdigit():
            lines.append(f"  {'Payload:':<26}{int(count):,} file(s), {int(octets):,} bytes")
    if algorithms:
        names = []
        for i, (path, _) in enumerate(iter_manifest(bag / manifest_name(algorithms[0]))):
            if i == _MAX_FILES:
                names.append("…")
                break
            names.append(path.removeprefix("data/"))
        lines.append(printable(f"  {'Payload files:':<26}{', '.join(names)}"))
    return lines


def _format_lines(bag: Path) -> list[str]:
    """Each payload file's PRONOM identifier, from the bag's PREMIS record (none without one)."""
    from pipeline.premis import PremisObject, parse_premis

    try:
        objects, _, _ = parse_premis((bag / "metadata" / "premis.xml").read_bytes())
    except (OSError, StrongroomError):
        return []
    files = [o for o in objects if isinstance(o, PremisObject) and o.identifier.startswith("data/")]
    lines = []
    for i, obj in enumerate(files):
        if i == _MAX_FILES:
            lines.append(f"  {'':<26}…")
            break
        head = "Formats (PRONOM):" if i == 0 else ""
        found = f"{obj.puid} ({obj.identified_format})" if obj.puid else "not identified"
        stated = f"; record states {obj.format_name}" if obj.format_name else ""
        lines.append(printable(f"  {head:<26}{obj.identifier.removeprefix('data/')}: {found}{stated}"))
    return lines


def _field(label: str, value: str) -> str:
    """``  Label:  value`` with long values wrapped under the value column."""
    head = f"  {label + ':':<26}"
    return textwrap.fill(printable(" ".join(value.split())), width=110, initial_indent=head,
                         subsequent_indent=" " * len(head))
