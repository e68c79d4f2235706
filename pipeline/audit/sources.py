"""The sources a repair may read from: ``--from`` URLs matched against a bag's recorded locations.

A ``--from`` URL names a recorded location (``file:///srv/copies/rec.v1``) or the target holding the
bag (``ocfl:///srv/ocfl``, ``s3://bucket/prefix?endpoint=...``); both are compared in the form the
ledger records them (a resolved ``file://`` URI, or the target's own URL with the bag name appended).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pipeline.errors import StrongroomError, UsageError
from pipeline.ledger import BagReference


def canonical(url: str) -> str:
    """A location as the ledger records it: a resolved ``file://`` URI, or the target's own form."""
    from pipeline.deposit import location_of, open_location

    if "://" not in url:
        return Path(url).resolve().as_uri()
    if urlsplit(url).scheme == "file":
        return Path(unquote(urlsplit(url).path)).resolve().as_uri()
    target, name = open_location(url)
    return location_of(target.url, name)


def allowed_sources(from_urls: Sequence[str], name: str, locations: Sequence[str]) -> dict[str, str]:
    """Recorded location -> the ``--from`` URL naming it (a location, or a target holding the bag)."""
    from pipeline.deposit import location_of

    recorded = {_canonical_or_self(loc): loc for loc in locations}
    found: dict[str, str] = {}
    for url in from_urls:
        forms = {_canonical_or_self(url)}
        if "://" in url:
            forms.add(_canonical_or_self(location_of(url, name)))
        else:
            forms.add(_canonical_or_self(str(Path(url) / name)))
        for form in forms & set(recorded):
            found[recorded[form]] = url
    return found


def check_sources(from_urls: Sequence[str], bags: Sequence[BagReference], *, named: bool) -> None:
    """UsageError when a ``--from`` URL is no recorded location of the bags (of each named one)."""
    from pipeline.deposit import redact

    for url in from_urls:
        matched = [b.name for b in bags if url in allowed_sources([url], b.name, b.locations).values()]
        if named:
            missing = [b.name for b in bags if b.name not in matched]
            if missing:
                raise UsageError(f"--from {redact(url)}: not a recorded location of {missing[0]} "
                                 f"(it has: {', '.join(redact(u) for u in _locations_of(bags, missing[0]))})")
        elif not matched:
            raise UsageError(f"--from {redact(url)}: not a recorded location of any bag in the ledger")


def _locations_of(bags: Sequence[BagReference], name: str) -> tuple[str, ...]:
    return next((b.locations for b in bags if b.name == name), ())


def _canonical_or_self(url: str) -> str:
    try:
        return canonical(url)
    except StrongroomError:
        return url
