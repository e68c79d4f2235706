"""The catalogue: the holdings and one page per item, as HTML rendered on the server.

What a page shows comes from the bag's own metadata (``dc.xml``, ``record.yaml``, ``premis.xml``,
the manifests) and, for copies, events and audits, from the ledger.  Every value is escaped by
Jinja2's autoescape, and control characters (and the bidirectional overrides that can disguise
text) are shown as ``U+XXXX``; the pages carry no script at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from pipeline.bag.tagfiles import iter_manifest, manifest_algorithms, manifest_name
from pipeline.errors import StrongroomError
from pipeline.ledger import FileReference
from pipeline.premis import EVENT_TYPES, OUTCOMES, PremisObject, parse_premis, parse_xml
from pipeline.records import parse_record
from pipeline.web.holdings import METADATA_FILES, Holding, Holdings, Version, stamp
from pipeline.web.ledger_view import AuditView, CopyState, EventView
from pipeline.web.provenance import chain, chain_svg

DC = "{http://purl.org/dc/elements/1.1/}"
#: Control characters (but tab and newline) and the Unicode format controls that reorder or hide text.
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")
PAGE_SIZE = 50
_XML_SPACE = re.compile("[ \t\r\n]+")


def visible(value: Any) -> Any:
    """Jinja2's finalize: every printed value with its invisible characters spelled ``U+XXXX``."""
    if value is None:
        return ""
    if isinstance(value, Markup):  # made by the server itself (the SVG), already escaped
        return value
    return _INVISIBLE.sub(lambda m: f"U+{ord(m.group()):04X}", str(value))


def environment() -> Environment:
    """The templates, autoescaped (``.html`` and ``.svg``), every output through :func:`visible`."""
    env = Environment(loader=FileSystemLoader(Path(__file__).with_name("templates")),
                      autoescape=select_autoescape(["html", "svg", "xml"], default=True),
                      finalize=visible, trim_blocks=True, lstrip_blocks=True)
    env.filters["stamp"] = lambda when: stamp(when) if when else "never"
    env.filters["event_type"] = lambda code: EVENT_TYPES.get(code, code)
    env.filters["outcome"] = lambda code: OUTCOMES.get(code, code)
    return env


@dataclass
class Summary:
    """What the holdings list shows of a record."""

    holding: Holding
    title: str
    creators: list[str]
    dates: list[str]
    copies: list[CopyState] = field(default_factory=list)


def describe(holdings: Holdings, version: Version) -> dict[str, list[str]]:
    """The Dublin Core elements of a bag's ``dc.xml``: element name -> values (empty if unreadable)."""
    data = holdings.read_metadata(version, "dc.xml")
    found: dict[str, list[str]] = {}
    if data is None:
        return found
    try:
        root = parse_xml(data, f"{version.name}/metadata/dc.xml")
    except StrongroomError:
        return found
    for el in root:
        if isinstance(el.tag, str) and el.tag.startswith(DC):
            # Only XML's own white space is collapsed: str.split() would also swallow NEL (U+0085)
            # and other characters the page must show.
            found.setdefault(el.tag[len(DC):], []).append(_XML_SPACE.sub(" ", el.text or "").strip(" "))
    return found


def summaries(holdings: Holdings, page: list[Holding]) -> list[Summary]:
    """One :class:`Summary` per record of a page (their dc.xml read, their copies from the ledger)."""
    names = [h.newest.name for h in page]
    copies = holdings.ledger.copies(names) if holdings.ledger else {}
    found = []
    for h in page:
        dc = describe(holdings, h.newest)
        found.append(Summary(h, (dc.get("title") or [h.record_id])[0], dc.get("creator", []), dc.get("date", []),
                             copies.get(h.newest.name, [])))
    return found


@dataclass
class ItemPage:
    """Everything the item page shows of one version of a record."""

    holding: Holding
    version: Version
    dc: dict[str, list[str]]
    chain_svg: Markup | None
    chain_nodes: list[str]
    files: list[FileReference]
    formats: dict[str, str]
    events: list[EventView]
    audit_events: int
    audits: list[AuditView]
    copies: list[CopyState]
    metadata: list[str]
    registered: bool
    problems: list[str]


def item_page(holdings: Holdings, holding: Holding, version: Version) -> ItemPage:
    """Read one version's metadata and ledger history for its page."""
    problems: list[str] = []
    svg, nodes = _chain(holdings, version, problems)
    formats, bag_events = _premis(holdings, version, problems)
    ledger = holdings.ledger
    registered = bool(ledger and version.registered)
    files = ledger.files(version.name) if ledger and registered else _manifest_files(holdings, version)
    events, audit_events = ledger.events(version.name) if ledger and registered else (bag_events, 0)
    return ItemPage(
        holding, version, describe(holdings, version), svg, nodes, files, formats, events, audit_events,
        ledger.audits(version.name) if ledger and registered else [],
        ledger.copies([version.name]).get(version.name, []) if ledger and registered else [],
        [name for name in METADATA_FILES if holdings.bag_file(version, f"metadata/{name}")],
        registered, problems)


def _chain(holdings: Holdings, version: Version, problems: list[str]) -> tuple[Markup | None, list[str]]:
    data = holdings.read_metadata(version, "record.yaml")
    if data is None:
        return None, []
    try:
        record = parse_record(data.decode("utf-8"), path=Path(f"{version.name}/metadata/record.yaml"))
    except (StrongroomError, UnicodeDecodeError) as exc:
        problems.append(f"the provenance chain cannot be drawn: {exc}")
        return None, []
    nodes, _ = chain(record)
    # chain_svg builds the picture with lxml: its labels are escaped XML text.
    return Markup(chain_svg(record)), [f"{n.label} ({n.role}; {n.detail})" for n in nodes]


def _premis(holdings: Holdings, version: Version, problems: list[str]) -> tuple[dict[str, str], list[EventView]]:
    """The formats of the bag's files and its ingest events, from its own premis.xml."""
    data = holdings.read_metadata(version, "premis.xml")
    if data is None:
        return {}, []
    try:
        objects, events, _ = parse_premis(data)
    except StrongroomError as exc:
        problems.append(f"premis.xml cannot be read: {exc}")
        return {}, []
    formats = {o.identifier: _format_label(o) for o in objects
               if isinstance(o, PremisObject) and (o.format_name or o.puid)}
    return formats, [EventView(str(e.event_type), e.date_time, e.detail or "", str(e.outcome), e.outcome_detail or "",
                               tuple(e.agent_ids), None, None, None, None) for e in events]


def _format_label(obj: PremisObject) -> str:
    """The stated MIME type and what PRONOM identification found, e.g. ``text/plain · x-fmt/111 (Plain Text File)``."""
    found = f"{obj.puid} ({obj.identified_format})" if obj.puid and obj.identified_format else obj.puid
    return " · ".join(part for part in (obj.format_name, found) if part)


def _manifest_files(holdings: Holdings, version: Version) -> list[FileReference]:
    """The payload files of a bag the ledger does not know, from its manifests (sizes from the disk)."""
    bag = holdings.contained(version.path)
    if bag is None:
        return []
    files: dict[str, FileReference] = {}
    for alg in manifest_algorithms(bag):
        manifest = holdings.bag_file(version, manifest_name(alg))
        for path, digest in iter_manifest(manifest) if manifest else ():
            real = holdings.bag_file(version, path)
            size = real.stat().st_size if real else -1
            files.setdefault(path, FileReference(path, "payload", size, {})).digests[alg] = digest
    return sorted(files.values(), key=lambda f: f.path)


def media_type(name: str) -> str:
    """The Content-Type a metadata file is served with."""
    if name.endswith(".xml"):
        return "application/xml"
    if name.endswith(".jsonld"):
        return "application/ld+json"
    return "text/plain; charset=utf-8"

