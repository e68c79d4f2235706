"""The holdings as the web front sees them: the bags under one directory, grouped into records.

A bag named ``<record id>.v<N>`` is version N of that record; the newest version *is* the record.
The index holds only names, version numbers, datestamps and the source organisation of each
record, read from a directory scan, the ledger's ``bags`` table and each bag's ``bag-info.txt``
(a bag never changes once published, so what was read from it is kept).  Metadata files are read
only for the records a page shows.  Every path handed out is checked to stay inside the bags
directory, links resolved.
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from pipeline.bag.tagfiles import info_value, parse_bag_info
from pipeline.web.ledger_view import LedgerView

UTC = dt.timezone.utc
_BAG_NAME = re.compile(r"^(?P<id>[A-Za-z0-9][A-Za-z0-9._-]{0,99})\.v(?P<n>[1-9][0-9]{0,8})$")
#: The characters an OAI-PMH setSpec may hold (besides ``:``, which separates levels).
_SPEC_UNSAFE = re.compile(r"[^A-Za-z0-9\-_.!~*'()]+")
#: The metadata files a bag made by Strongroom holds, the ones the web front serves.
METADATA_FILES = ("dc.xml", "dcterms.jsonld", "premis.xml", "record.yaml")


@dataclass(frozen=True)
class Version:
    """One published bag of a record."""

    name: str
    number: int
    path: Path
    datestamp: dt.datetime
    registered: bool


@dataclass(frozen=True)
class Holding:
    """A record: every version of it (oldest first) and the set it belongs to."""

    record_id: str
    versions: tuple[Version, ...]
    organisation: str | None
    #: The metadata files (``dc.xml``, ``premis.xml``...) the newest version holds, safely inside it.
    metadata: frozenset[str] = frozenset()

    @property
    def newest(self) -> Version:
        return self.versions[-1]

    @property
    def datestamp(self) -> dt.datetime:
        return self.newest.datestamp

    @property
    def set_spec(self) -> str | None:
        return set_spec(self.organisation) if self.organisation else None

    @functools.cached_property
    def key(self) -> tuple[str, str]:
        """Where the record stands in every list: by datestamp, then identifier."""
        return (stamp(self.datestamp), self.record_id)


@dataclass
class Index:
    """Every record, in list order (see :attr:`Holding.key`), with look-ups by id and bag name."""

    holdings: list[Holding]
    by_id: dict[str, Holding] = field(default_factory=dict)
    by_bag: dict[str, tuple[Holding, Version]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.holdings.sort(key=lambda h: h.key)
        for h in self.holdings:
            self.by_id[h.record_id] = h
            for v in h.versions:
                self.by_bag[v.name] = (h, v)

    def sets(self) -> dict[str, list[str]]:
        """setSpec -> the organisation names that map to it (normally one)."""
        found: dict[str, list[str]] = {}
        for h in self.holdings:
            spec = h.set_spec
            if spec and h.organisation and h.organisation not in found.setdefault(spec, []):
                found[spec].append(h.organisation)
        return dict(sorted(found.items()))


def stamp(when: dt.datetime) -> str:
    """An OAI-PMH datestamp at seconds granularity: ``YYYY-MM-DDThh:mm:ssZ``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_spec(organisation: str) -> str:
    """The setSpec of a source organisation: its name with runs of other characters as ``-``."""
    return _SPEC_UNSAFE.sub("-", organisation.strip()).strip("-") or "unnamed"


class Holdings:
    """The bags directory and its ledger, indexed again whenever either changes.

    A change is seen from the bags directory's modification time (publishing a bag renames it
    into the directory) and from the ledger's ``bags`` table (how many rows, the highest id); the
    index is also rebuilt after :data:`MAX_AGE` seconds whatever they say, so that a change within
    one tick of the directory's clock is not missed for long.  bag-info.txt and the list of
    metadata files are read once per bag: a published bag never changes.
    """

    #: The longest an index is reused without looking at the bags again.
    MAX_AGE = 30.0

    def __init__(self, bags_dir: Path, ledger: LedgerView | None) -> None:
        self.bags_dir = bags_dir.resolve()
        self.ledger = ledger
        self._facts_read: dict[str, tuple[str | None, frozenset[str]]] = {}
        self._lock = threading.Lock()
        self._cached: tuple[object, float, Index] | None = None

    def index(self) -> Index:
        """The current holdings (a new bag appears at the next request)."""
        signature = (os.stat(self.bags_dir).st_mtime_ns, self.ledger.signature() if self.ledger else None)
        cached = self._cached
        if cached is not None and cached[0] == signature and time.monotonic() - cached[1] < self.MAX_AGE:
            return cached[2]
        index = self._build()
        self._cached = (signature, time.monotonic(), index)
        return index

    def _build(self) -> Index:
        registered = self.ledger.registered() if self.ledger else {}
        versions: dict[str, list[Version]] = {}
        for name, number, path in self._scan():
            when = registered.get(name)
            versions.setdefault(_BAG_NAME.match(name).group("id"), []).append(  # type: ignore[union-attr]
                Version(name, number, Path(path), (when or _mtime(path)).replace(microsecond=0), when is not None))
        holdings = []
        for record_id, found in versions.items():
            found.sort(key=lambda v: v.number)
            organisation, metadata = self._facts(found[-1])
            holdings.append(Holding(record_id, tuple(found), organisation, metadata))
        return Index(holdings)

    def _scan(self) -> Iterator[tuple[str, int, str]]:
        with os.scandir(self.bags_dir) as entries:
            for entry in entries:
                m = _BAG_NAME.match(entry.name)
                # A link in the bags directory is not followed: it could lead anywhere.
                if m and entry.is_dir(follow_symlinks=False):
                    yield entry.name, int(m.group("n")), entry.path

    def _facts(self, version: Version) -> tuple[str | None, frozenset[str]]:
        """The source organisation and the metadata files of a bag (read once: bags never change).

        Only regular files count, never links: Strongroom's bags hold none, so a link is not ours.
        """
        with self._lock:
            if version.name in self._facts_read:
                return self._facts_read[version.name]
        org = None
        try:
            info = os.path.join(version.path, "bag-info.txt")
            if stat.S_ISREG(os.lstat(info).st_mode):
                with open(info, encoding="utf-8", errors="replace") as fh:
                    org = info_value(parse_bag_info(fh.read()), "Source-Organization")
        except OSError:
            org = None
        metadata: set[str] = set()
        try:
            folder = os.path.join(version.path, "metadata")
            if stat.S_ISDIR(os.lstat(folder).st_mode):
                with os.scandir(folder) as entries:
                    metadata = {e.name for e in entries if e.name in METADATA_FILES
                                and e.is_file(follow_symlinks=False)}
        except OSError:
            pass
        with self._lock:
            self._facts_read[version.name] = (org, frozenset(metadata))
        return org, frozenset(metadata)

    def contained(self, path: Path) -> Path | None:
        """``path`` with links resolved, or None when it leads outside the bags directory."""
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return None
        return real if real.is_relative_to(self.bags_dir) else None

    def bag_file(self, version: Version, relative: str) -> Path | None:
        """The file ``relative`` (a bag path such as ``metadata/dc.xml``) of a bag, if it is safely inside.

        Refused: absolute paths, ``..``, empty or dot parts, anything a link leads out of the bag.
        """
        rel = PurePosixPath(relative)
        if rel.is_absolute() or not rel.parts or any(p in ("", ".", "..") or "\\" in p or "\x00" in p
                                                     for p in rel.parts):
            return None
        real = self.contained(version.path / rel)
        bag = self.contained(version.path)
        if real is None or bag is None or not real.is_relative_to(bag) or not real.is_file():
            return None
        return real

    def read_metadata(self, version: Version, name: str) -> bytes | None:
        """The bytes of ``metadata/<name>`` of a bag, or None when absent or unsafe."""
        path = self.bag_file(version, f"metadata/{name}")
        try:
            return path.read_bytes() if path is not None else None
        except OSError:
            return None


def _mtime(bag: str) -> dt.datetime:
    """When a bag not in the ledger was published: its bagit.txt's modification time."""
    try:
        return dt.datetime.fromtimestamp(os.stat(os.path.join(bag, "bagit.txt")).st_mtime, UTC)
    except OSError:
        return dt.datetime.fromtimestamp(0, UTC)
