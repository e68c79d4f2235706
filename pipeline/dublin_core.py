"""A record in the forms others read: oai_dc XML, DCMI-terms JSON-LD and bag-info fields.

All functions are pure and deterministic (no clock, no randomness), so the same record always
gives the same bytes: re-ingesting an unchanged record produces identical tag files.

* ``to_oai_dc``: the flat 15-element form OAI-PMH harvesters read.  Qualified relations cannot be
  said there, so the provenance chain is flattened into ``dc:source`` / ``dc:relation`` /
  ``dc:description`` sentences.
* ``to_jsonld``: the qualified form - the item and every resource of its provenance chain as
  linked nodes (``dcterms:source``, ``dcterms:isVersionOf``, ``dcterms:isPartOf``, ...) with typed
  dates.  The ``@context`` is inline: reading it never touches the network.  Serials, their
  issues and agents are resources of their own, with IRIs minted under the item's
  ``urn:strongroom:record:<id>`` (see :func:`serial_iri`, :func:`agent_iri`); languages are LoC
  ISO 639-1 IRIs; a coverage period is an EDTF interval typed with LoC's EDTF datatype.
* ``bag_info_fields``: what a person reading ``bag-info.txt`` alone needs to know.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from typing import Any

from lxml import etree

from pipeline.models import DateStatement, LangString, PartOf, Record, RelatedResource

OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
OAI_DC_XSD = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
DCTERMS_NS = "http://purl.org/dc/terms/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
XSD_NS = "http://www.w3.org/2001/XMLSchema#"
EDTF_DATATYPE = "http://id.loc.gov/datatypes/edtf/EDTF"
DCMITYPE_NS = "http://purl.org/dc/dcmitype/"
BIBO_NS = "http://purl.org/ontology/bibo/"
FOAF_NS = "http://xmlns.com/foaf/0.1/"
#: LoC's ISO 639-1 vocabulary: two-letter language codes as IRIs.
ISO639_1 = "http://id.loc.gov/vocabulary/iso639-1/"
#: DCMI's encoding scheme for BCP 47 language tags (RFC 5646).
RFC5646 = DCTERMS_NS + "RFC5646"

#: The 15 elements of DCMES 1.1, in the order Strongroom writes them.
DC_ELEMENTS = ("title", "creator", "subject", "description", "publisher", "contributor", "date",
               "type", "format", "identifier", "source", "language", "relation", "coverage",
               "rights")
_DCMI_TYPES = {"Collection", "Dataset", "Event", "Image", "InteractiveResource", "MovingImage",
               "PhysicalObject", "Service", "Software", "Sound", "StillImage", "Text"}
_XSD_DATE_FORMS = (
    (re.compile(r"^\d{4}$"), "gYear"),
    (re.compile(r"^\d{4}-\d{2}$"), "gYearMonth"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "date"),
    (re.compile(r"^\d{4}-\d{2}-\d{2}T[\d:.]+(Z|[+-]\d{2}:\d{2})$"), "dateTime"),
)

Value = tuple[str, str | None]  # (text, language)


def item_iri(record: Record) -> str:
    """The IRI naming the archived item in RDF: stable, derived from the record id."""
    return f"urn:strongroom:record:{record.id}"


def resource_iri(record: Record, resource_id: str) -> str:
    """The IRI of one resource of the item's provenance chain."""
    return f"{item_iri(record)}:{resource_id}"


# Serials and agents get IRIs under the item's own namespace, from their names: two records
# naming "Communism" may not mean the same serial, and Strongroom does not claim they do (an
# archivist who knows adds an identifier).  Within one record the same name is the same node.


def serial_iri(record: Record, title: str) -> str:
    """``urn:strongroom:record:<id>:serial:<slug of the title>``; its issues add ``:issue:<slug>``."""
    return f"{item_iri(record)}:serial:{_slug(title)}"


def agent_iri(record: Record, name: str) -> str:
    """``urn:strongroom:record:<id>:agent:<slug of the name>``."""
    return f"{item_iri(record)}:agent:{_slug(name)}"


def _slug(text: str) -> str:
    """Lowercase ASCII letters and digits joined by ``-`` (``libcom.org`` -> ``libcom-org``); a
    name with none of them gets a digest of its text instead."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-") or _digest(text)


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


# -- plain-text renderings shared by the three forms ---------------------------------------------


def one_line(text: str) -> str:
    """Whitespace (including newlines) collapsed: bag-info values and XML text stay one line."""
    return " ".join(text.split())


def describe_date(issued: DateStatement | None) -> str:
    """``June 86 (1986-06)``, ``1986-06``, ``June 86`` or ``date not given``."""
    if issued is None:
        return "date not given"
    if issued.as_written and issued.date and issued.as_written != issued.date:
        return f"{issued.as_written} ({issued.date})"
    return issued.date or issued.as_written or "date not given"


def describe_resource(res: RelatedResource, *, record: Record | None = None) -> str:
    """One sentence naming a resource of the chain: label, title, issue, date, language, citation."""
    parts = [res.label]
    parts.extend(f'"{t.value}"' for t in res.title)
    if res.part_of is not None and res.part_of.label() not in res.label:
        parts.append(f"in {res.part_of.label()}")
    parts.append(describe_date(res.issued))
    if res.language:
        parts.append(f"language {', '.join(res.language)}")
    parts.extend(f"cited in the source as: {c}" for c in res.cited_as)
    if record is not None:
        for link in res.links:
            parts.append(f"{_relation_words(link.relation)}: {record.resource(link.target).label}")
    return one_line("; ".join(parts))


def _relation_words(relation: str) -> str:
    """``isVersionOf`` -> ``is version of``."""
    return re.sub(r"(?<!^)([A-Z])", lambda m: " " + m.group(1).lower(), relation).lower()


def _texts(values: Sequence[LangString]) -> list[Value]:
    return [(one_line(v.value), v.lang) for v in values]


def _dates(record: Record) -> list[str]:
    dates = list(record.dc.date)
    if record.issued is not None and record.issued.date and record.issued.date not in dates:
        dates.append(record.issued.date)
    return dates


# -- oai_dc -------------------------------------------------------------------------------------


def to_oai_dc(record: Record) -> bytes:
    """The record as an ``oai_dc:dc`` document (UTF-8 XML with declaration)."""
    root = etree.Element(f"{{{OAI_DC_NS}}}dc", nsmap={"oai_dc": OAI_DC_NS, "dc": DC_NS,
                                                      "xsi": XSI_NS})
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{OAI_DC_NS} {OAI_DC_XSD}")
    for element in DC_ELEMENTS:
        for text, lang in oai_dc_values(record, element):
            child = etree.SubElement(root, f"{{{DC_NS}}}{element}")
            child.text = text
            if lang:
                child.set(XML_LANG, lang)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def oai_dc_values(record: Record, element: str) -> list[Value]:
    """The (text, language) values of one DC element, the provenance chain flattened in."""
    dc = record.dc
    simple: dict[str, list[Value]] = {
        "title": _texts(dc.title), "creator": _texts(dc.creator),
        "subject": _texts(dc.subject), "publisher": _texts(dc.publisher),
        "contributor": _texts(dc.contributor), "coverage": _texts(dc.coverage),
        "date": [(d, None) for d in _dates(record)],
        "type": [(t, None) for t in dc.type], "format": [(f, None) for f in dc.format],
        "identifier": [(i, None) for i in dc.identifier],
        "language": [(lang, None) for lang in dc.language],
    }
    if element in simple:
        return simple[element]
    if element == "description":
        return (_texts(dc.description) + _texts(record.provenance)
                + [(f"Citation: {text}", lang) for text, lang in
                   _texts(record.bibliographic_citation)])
    if element == "source":
        return _texts(dc.source) + [(describe_resource(r, record=record), None)
                                    for r in record.related if "source" in r.relation]
    if element == "relation":
        return _texts(dc.relation) + list(_flat_relations(record))
    if element == "rights":
        return _texts(dc.rights) + _texts(record.rights.statement) + [(record.rights.uri, None)]
    raise ValueError(f"not a Dublin Core element: {element!r}")


def _flat_relations(record: Record) -> Iterator[Value]:
    for res in record.related:
        others = [r for r in res.relation if r != "source"]
        for relation in others:
            yield f"{_relation_words(relation).capitalize()}: {describe_resource(res, record=record)}", None
        if not res.relation:
            yield f"Related: {describe_resource(res, record=record)}", None


# -- JSON-LD ------------------------------------------------------------------------------------


def to_jsonld(record: Record) -> bytes:
    """The item and its provenance chain as DCMI-terms JSON-LD (UTF-8, inline context)."""
    nodes = _Nodes(record)
    graph = [_item_node(record, nodes)] + [_resource_node(record, r, nodes) for r in record.related]
    doc = {
        "@context": {"dcterms": DCTERMS_NS, "xsd": XSD_NS,
                     "rdfs": "http://www.w3.org/2000/01/rdf-schema#", "bibo": BIBO_NS, "foaf": FOAF_NS},
        "@graph": graph + nodes.extra(),
    }
    return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"


class _Nodes:
    """The agents, serials and issues the item and its chain refer to, one node per IRI."""

    def __init__(self, record: Record) -> None:
        self.record = record
        self._nodes: dict[str, dict[str, Any]] = {}
        self._owners: dict[str, str] = {}  # IRI -> the exact name it was minted for

    def _iri(self, iri: str, name: str) -> str:
        """``iri``, or - when a different name of this record already has it ("ICG" and "icg")
        - ``iri`` with a digest of ``name``: one name, one node; two names, two nodes."""
        owner = self._owners.setdefault(iri, name)
        return iri if owner == name else self._iri(f"{iri}-{_digest(name)}", name)

    def agents(self, names: Sequence[LangString]) -> list[dict[str, Any]]:
        refs = []
        for name in names:
            text = one_line(name.value)
            iri = self._iri(agent_iri(self.record, text), text)
            node = self._nodes.setdefault(iri, {"@id": iri, "@type": "foaf:Agent"})
            known = node.setdefault("foaf:name", [])
            for lit in _lit([name]):
                if lit not in known:
                    known.append(lit)
            refs.append({"@id": iri})
        return refs

    def part_of(self, part: PartOf) -> dict[str, Any]:
        """The issue (or, without an issue, the serial) a resource is part of."""
        title = one_line(part.title.value)
        serial = self._iri(serial_iri(self.record, title), title)
        self._nodes.setdefault(serial, {"@id": serial, "@type": "bibo:Periodical",
                                        "dcterms:title": _lit([part.title])})
        if part.issue is None:
            return {"@id": serial}
        issue = self._iri(f"{serial}:issue:{_slug(part.issue)}", f"{title}\n{part.issue}")
        self._nodes.setdefault(issue, {"@id": issue, "@type": "bibo:Issue", "rdfs:label": part.label(),
                                       "bibo:issue": part.issue, "dcterms:isPartOf": [{"@id": serial}]})
        return {"@id": issue}

    def extra(self) -> list[dict[str, Any]]:
        return list(self._nodes.values())


def _languages(tags: Sequence[str]) -> list[dict[str, Any]]:
    """LoC ISO 639-1 IRIs for two-letter primary subtags; the whole tag too when it says more.

    A three-letter code gets no IRI: LoC's ISO 639-2 list does not hold every ISO 639-3 code
    that BCP 47 allows, and an IRI that may name nothing would be invented.
    """
    out: list[dict[str, Any]] = []
    for tag in tags:
        primary = tag.split("-", 1)[0].lower()
        if len(primary) == 2:
            out.append({"@id": ISO639_1 + primary})
        if len(primary) != 2 or "-" in tag:
            out.append({"@value": tag, "@type": RFC5646})
    return out


_YEAR_RANGE = re.compile(r"^(\d{4})\s*[-\u2013/]\s*(\d{4})$")


def _coverage(values: Sequence[LangString]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(periods, other coverage): ``1985-1986`` becomes the EDTF interval ``1985/1986``, typed;
    anything else that is not an EDTF interval stays a plain coverage text."""
    periods: list[dict[str, Any]] = []
    other: list[LangString] = []
    for value in values:
        text = one_line(value.value)
        m = _YEAR_RANGE.match(text)
        interval = f"{m.group(1)}/{m.group(2)}" if m and m.group(1) <= m.group(2) else text
        if "/" in interval and _is_edtf_interval(interval):
            periods.append({"@value": interval, "@type": EDTF_DATATYPE})
        else:
            other.append(value)
    return periods, _lit(other)


def _is_edtf_interval(text: str) -> bool:
    from edtf import parse_edtf
    from edtf.parser.edtf_exceptions import EDTFParseException
    from edtf.parser.parser_classes import Interval

    try:
        return isinstance(parse_edtf(text), Interval)
    except EDTFParseException:
        return False


def _item_node(record: Record, nodes: _Nodes) -> dict[str, Any]:
    dc = record.dc
    node: dict[str, Any] = {"@id": item_iri(record)}
    types = [{"@id": DCMITYPE_NS + t} for t in dc.type if t in _DCMI_TYPES]
    if types:
        node["@type"] = [t["@id"] for t in types]
    _put(node, "title", _lit(dc.title))
    for name in ("creator", "publisher", "contributor"):
        _put(node, name, nodes.agents(getattr(dc, name)))
    for name in ("subject", "description", "source", "relation"):
        _put(node, name, _lit(getattr(dc, name)))
    periods, coverage = _coverage(dc.coverage)
    _put(node, "temporal", periods)
    _put(node, "coverage", coverage)
    _put(node, "date", [_date_literal(d) for d in dc.date])
    if record.issued is not None and record.issued.date:
        _put(node, "issued", [_date_literal(record.issued.date)])
    _put(node, "type", [{"@value": t} for t in dc.type if t not in _DCMI_TYPES])
    _put(node, "format", [{"@value": f} for f in dc.format])
    _put(node, "identifier", [{"@value": i} for i in dc.identifier])
    _put(node, "language", _languages(dc.language))
    for res in record.related:
        for relation in res.relation:
            _put(node, relation, [{"@id": resource_iri(record, res.id)}])
    _put(node, "provenance", _lit(record.provenance))
    _put(node, "bibliographicCitation", _lit(record.bibliographic_citation))
    _put(node, "rights", [{"@id": record.rights.uri}] + _lit(dc.rights)
         + _lit(record.rights.statement))
    _put(node, "description", _as_written_note(record.issued))
    return node


def _resource_node(record: Record, res: RelatedResource, nodes: _Nodes) -> dict[str, Any]:
    node: dict[str, Any] = {"@id": resource_iri(record, res.id), "rdfs:label": res.label}
    _put(node, "title", _lit(res.title))
    for name in ("creator", "contributor", "publisher"):
        _put(node, name, nodes.agents(getattr(res, name)))
    _put(node, "description", _lit(res.description))
    _put(node, "language", _languages(res.language))
    if res.issued is not None and res.issued.date:
        _put(node, "issued", [_date_literal(res.issued.date)])
    _put(node, "identifier", [{"@value": i} for i in res.identifier])
    _put(node, "bibliographicCitation",
         [{"@value": f"Cited in the source as: {c}"} for c in res.cited_as])
    _put(node, "description", _as_written_note(res.issued))
    if res.part_of is not None:
        _put(node, "isPartOf", [nodes.part_of(res.part_of)])
    for link in res.links:
        _put(node, link.relation, [{"@id": resource_iri(record, link.target)}])
    return node


def _put(node: dict[str, Any], term: str, values: list[dict[str, Any]]) -> None:
    if values:
        node.setdefault(f"dcterms:{term}", []).extend(values)


def _lit(values: Sequence[LangString]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in values:
        lit: dict[str, Any] = {"@value": one_line(v.value)}
        if v.lang:
            lit["@language"] = v.lang
        out.append(lit)
    return out


def _date_literal(value: str) -> dict[str, str]:
    """W3CDTF forms get their XML Schema datatype; anything else is typed as LoC EDTF."""
    for pattern, xsd in _XSD_DATE_FORMS:
        if pattern.match(value):
            return {"@value": value, "@type": f"xsd:{xsd}"}
    return {"@value": value, "@type": EDTF_DATATYPE}


def _as_written_note(issued: DateStatement | None) -> list[dict[str, Any]]:
    if issued is None or not issued.as_written:
        return []
    return [{"@value": f"Date as written in the source: {issued.as_written}"}]


# -- bag-info -----------------------------------------------------------------------------------


def bag_info_fields(record: Record) -> list[tuple[str, str]]:
    """Record-level bag-info labels, in reading order; every value is one line.

    The bag writer adds Bagging-Date, Payload-Oxum, Bag-Software-Agent and
    BagIt-Profile-Identifier around these.
    """
    dc = record.dc
    fields: list[tuple[str, str]] = [
        ("Source-Organization", one_line(record.source_organization)),
        ("External-Identifier", record.id),
        ("External-Description", external_description(record)),
    ]
    fields += [("Title", one_line(t.value)) for t in dc.title]
    fields += [("Creator", one_line(c.value)) for c in dc.creator]
    fields += [("Publisher", one_line(p.value)) for p in dc.publisher]
    if record.issued is not None:
        fields.append(("Date-Issued", describe_date(record.issued)))
    issued = record.issued.date if record.issued is not None else None
    fields += [("Date", d) for d in dc.date if d != issued]
    if dc.language:
        fields.append(("Language", ", ".join(dc.language)))
    if dc.subject:
        fields.append(("Subject", "; ".join(one_line(s.value) for s in dc.subject)))
    if dc.coverage:
        fields.append(("Coverage", "; ".join(one_line(c.value) for c in dc.coverage)))
    if record.related:
        fields.append(("Provenance-Chain", provenance_chain(record)))
    fields += [("Rights", one_line(s.value)) for s in record.rights.statement]
    fields.append(("Rights-URI", record.rights.uri))
    return fields


def external_description(record: Record) -> str:
    """A one-paragraph summary: title, creators, publisher and date, then the descriptions."""
    dc = record.dc
    head = f'"{one_line(dc.title[0].value)}"'
    if dc.creator:
        head += " by " + "; ".join(one_line(c.value) for c in dc.creator)
    published = ", ".join(x for x in (
        "; ".join(one_line(p.value) for p in dc.publisher),
        record.issued.date or "" if record.issued else "") if x)
    if published:
        head += f" ({published})"
    body = " ".join(one_line(d.value) for d in dc.description)
    return one_line(f"{head}. {body}" if body else f"{head}.")


def provenance_chain(record: Record) -> str:
    """The chain in one line: how the item relates to each resource, with dates and links."""
    parts = []
    for res in record.related:
        what = f"{res.label}, {describe_date(res.issued)}"
        links = "".join(f", whose {_relation_words(link.relation)} is "
                        f"{record.resource(link.target).label}" for link in res.links)
        relation = " and ".join(_relation_words(r) for r in res.relation) or "related"
        parts.append(f"{relation}: {what}{links}")
    return one_line("; ".join(parts))
