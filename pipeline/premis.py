"""PREMIS 3 preservation metadata: file objects, events and agents, written and read with lxml.

The models are plain, frozen and JSON-serialisable, so the fixity ledger can store events and
later export a bag's whole history with :func:`render_premis`.  Event types and outcomes use the
Library of Congress vocabularies (label as text, code in ``valueURI``); digest algorithms use
LoC's cryptographicHashFunctions.  :func:`parse_premis` reads documents back with a parser that
never expands entities, never loads a DTD and never touches the network.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Sequence
from typing import Annotated, Any, Literal

from lxml import etree
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from pipeline import SOFTWARE_NAME, __version__
from pipeline.errors import MetadataError
from pipeline.fixity import SUPPORTED_ALGORITHMS

PREMIS_NS = "http://www.loc.gov/premis/v3"
PREMIS_XSD = "http://www.loc.gov/standards/premis/v3/premis.xsd"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
LOC_VOCAB = "http://id.loc.gov/vocabulary/preservation/"

#: LoC eventType vocabulary: code -> label (http://id.loc.gov/vocabulary/preservation/eventType).
EVENT_TYPES: dict[str, str] = {
    "acc": "accession", "app": "appraisal", "cap": "capture", "com": "compression",
    "cop": "compiling", "cre": "creation", "dea": "deaccession", "dec": "decompression",
    "del": "deletion", "der": "decryption", "dig": "digital signature validation",
    "dis": "dissemination", "dsg": "digital signature generation", "dsp": "displaying",
    "enc": "encryption", "exe": "execution", "exp": "exporting", "ext": "extraction",
    "ffa": "forensic feature analysis", "fil": "filename change", "fix": "fixity check",
    "for": "format identification", "ima": "imaging", "ine": "ingestion end",
    "ing": "ingestion", "ins": "ingestion start", "int": "interpreting",
    "ipc": "information package creation", "ipm": "information package merging",
    "ips": "information package splitting", "mee": "metadata extraction",
    "mem": "metadata modification", "mes": "message digest calculation", "mig": "migration",
    "mod": "modification", "nor": "normalization", "pac": "packing",
    "poa": "policy assignment", "prt": "printing", "qua": "quarantine", "rec": "recovery",
    "red": "redaction", "ref": "refreshment", "ren": "rendering", "rep": "replication",
    "tra": "transfer", "unp": "unpacking", "unq": "unquarantine", "val": "validation",
    "vir": "virus check",
}
#: LoC eventOutcome vocabulary.
OUTCOMES: dict[str, str] = {"suc": "success", "fai": "failure", "war": "warning"}
#: LoC agentType vocabulary (the codes Strongroom can meet).
AGENT_TYPES: dict[str, str] = {"sof": "software", "per": "person", "org": "organization",
                               "har": "hardware"}
#: LoC cryptographicHashFunctions labels; sha224 has no LoC term and is written without a URI.
DIGEST_LABELS: dict[str, str] = {"md5": "MD5", "sha1": "SHA-1", "sha224": "SHA-224",
                                 "sha256": "SHA-256", "sha384": "SHA-384", "sha512": "SHA-512"}
_LOC_DIGESTS = {"md5", "sha1", "sha256", "sha384", "sha512"}
_UNKNOWN_FORMAT = "unknown"
#: PREMIS formatRegistryName of PRONOM.
PRONOM = "PRONOM"
#: The formatNote marking the format a record states (rather than one identified).
STATED_FORMAT_NOTE = "stated in the record"
#: The outcome note of a validation event when the user asked for Strongroom's own verification
#: only: a reader of the bag's history must see that no second opinion was given.
NO_SECOND_OPINION_NOTE = ("bagit-python's second opinion was not run: Strongroom's own verification only, "
                          "as the user asked (--no-second-opinion)")

Outcome = Literal["suc", "fai", "war"]


def _check_event_type(value: str) -> str:
    if value not in EVENT_TYPES:
        raise PydanticCustomError("event_type", "unknown PREMIS event type code '{value}'",
                                  {"value": value})
    return value


def _check_urn_uuid(value: str) -> str:
    try:
        ok = value.startswith("urn:uuid:") and bool(uuid.UUID(value[9:]))
    except ValueError:
        ok = False
    if not ok:
        raise PydanticCustomError("urn_uuid", "not a urn:uuid: identifier: '{value}'",
                                  {"value": value})
    return value


def _check_utc(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise PydanticCustomError("naive_datetime", "date_time must be timezone-aware")
    return value.astimezone(dt.timezone.utc)


# Typed as str for callers; the validator keeps it to the LoC codes.
EventType = Annotated[str, AfterValidator(_check_event_type),
                      Field(json_schema_extra={"enum": sorted(EVENT_TYPES)})]
UrnUuid = Annotated[str, AfterValidator(_check_urn_uuid)]
UtcDateTime = Annotated[dt.datetime, AfterValidator(_check_utc)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PremisAgent(_Frozen):
    """Who or what performed an event; Strongroom itself is a software agent (``sof``)."""

    identifier: str = Field(min_length=1)
    name: str = Field(min_length=1)
    version: str | None = None
    type: Literal["sof", "per", "org", "har"] = "sof"


RelationshipType = Literal["structural", "derivation"]
#: PREMIS 3 relationship subtypes Strongroom writes (Data Dictionary labels).
RelationshipSubType = Literal["includes", "is included in", "has source", "is source of"]
#: A PRONOM unique identifier: fmt/11, x-fmt/111, x-sfw/42, ...
PUID_PATTERN = re.compile(r"^(x-)?[a-z]+/[0-9]+$")


class PremisRelationship(_Frozen):
    """How an object relates to others: a bag ``includes`` its files, ``v2`` ``has source`` ``v1``."""

    type: RelationshipType
    subtype: RelationshipSubType
    related: tuple[str, ...] = Field(min_length=1)  # local object identifiers
    events: tuple[UrnUuid, ...] = ()  # the events that made the relationship (a derivation)


class PremisObject(_Frozen):
    """A file of a bag: its path in the bag (``data/x.txt``), size, digests and format.

    ``format_name`` is the MIME type the record states; ``puid`` (with ``identified_format`` and
    ``format_version``) what identification against PRONOM found; ``format_notes`` say who
    identified it, on what basis, and any disagreement with the record.
    """

    identifier: str = Field(min_length=1)
    size: int = Field(ge=0)
    digests: dict[str, str] = Field(default_factory=dict)
    original_name: str | None = None
    format_name: str | None = None
    puid: str | None = Field(default=None, pattern=PUID_PATTERN.pattern)
    identified_format: str | None = None
    format_version: str | None = None
    format_notes: tuple[str, ...] = ()
    relationships: tuple[PremisRelationship, ...] = ()

    @field_validator("digests")
    @classmethod
    def _check_digests(cls, value: dict[str, str]) -> dict[str, str]:
        for alg, hexdigest in value.items():
            if alg not in SUPPORTED_ALGORITHMS:
                raise PydanticCustomError("digest", "unsupported algorithm '{alg}'", {"alg": alg})
            want = hashlib.new(alg).digest_size * 2
            if not re.fullmatch(rf"[0-9a-fA-F]{{{want}}}", hexdigest):
                raise PydanticCustomError("digest", "{alg} digest must be {want} hex digits",
                                          {"alg": alg, "want": want})
        return {alg: hexdigest.lower() for alg, hexdigest in value.items()}


class PremisRepresentation(_Frozen):
    """A bag as an object of its own (a PREMIS representation): its files are its parts."""

    identifier: str = Field(min_length=1)
    original_name: str | None = None
    relationships: tuple[PremisRelationship, ...] = ()


AnyObject = PremisObject | PremisRepresentation


class PremisEvent(_Frozen):
    """Something that happened to objects, when, with what outcome, done by which agents."""

    identifier: UrnUuid = Field(default_factory=lambda: uuid.uuid4().urn)
    event_type: EventType
    date_time: UtcDateTime
    detail: str | None = None
    outcome: Outcome
    outcome_detail: str | None = None
    object_ids: tuple[str, ...] = ()
    agent_ids: tuple[str, ...] = ()


def strongroom_agent() -> PremisAgent:
    """Strongroom as a PREMIS software agent; the identifier changes with the version."""
    return PremisAgent(identifier=f"strongroom/{__version__}", name=SOFTWARE_NAME,
                       version=__version__, type="sof")


# -- writing ------------------------------------------------------------------------------------


def _q(tag: str) -> str:
    return f"{{{PREMIS_NS}}}{tag}"


def _sub(parent: etree._Element, tag: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    child = etree.SubElement(parent, _q(tag), {k: v for k, v in attrs.items()})
    if text is not None:
        child.text = text
    return child


def _coded(parent: etree._Element, tag: str, vocabulary: str, code: str, label: str) -> None:
    """An element with the LoC label as text and the code's URI as ``valueURI``."""
    _sub(parent, tag, label, authority=vocabulary, authorityURI=LOC_VOCAB + vocabulary,
         valueURI=f"{LOC_VOCAB}{vocabulary}/{code}")


def _identifier(parent: etree._Element, kind: str, id_type: str, value: str) -> None:
    box = _sub(parent, f"{kind}Identifier")
    _sub(box, f"{kind}IdentifierType", id_type)
    _sub(box, f"{kind}IdentifierValue", value)


def render_premis(objects: Sequence[AnyObject], events: Sequence[PremisEvent],
                  agents: Sequence[PremisAgent]) -> bytes:
    """A ``premis:premis version="3.0"`` document (UTF-8 XML), objects then events then agents.

    PREMIS requires at least one object; callers exporting a history pass the bag's files.
    """
    root = etree.Element(_q("premis"), nsmap={"premis": PREMIS_NS, "xsi": XSI_NS})
    root.set("version", "3.0")
    root.set(f"{{{XSI_NS}}}schemaLocation", f"{PREMIS_NS} {PREMIS_XSD}")
    for obj in objects:
        if isinstance(obj, PremisRepresentation):
            _render_representation(root, obj)
        else:
            _render_object(root, obj)
    for event in events:
        _render_event(root, event)
    for agent in agents:
        _render_agent(root, agent)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _render_object(root: etree._Element, obj: PremisObject) -> None:
    el = _sub(root, "object")
    el.set(f"{{{XSI_NS}}}type", "premis:file")
    _identifier(el, "object", "local", obj.identifier)
    chars = _sub(el, "objectCharacteristics")
    _sub(chars, "compositionLevel", "0")
    for alg, hexdigest in obj.digests.items():
        fixity = _sub(chars, "fixity")
        if alg in _LOC_DIGESTS:
            _coded(fixity, "messageDigestAlgorithm", "cryptographicHashFunctions", alg,
                   DIGEST_LABELS[alg])
        else:
            _sub(fixity, "messageDigestAlgorithm", DIGEST_LABELS[alg])
        _sub(fixity, "messageDigest", hexdigest)
    _sub(chars, "size", str(obj.size))
    _render_formats(chars, obj)
    if obj.original_name is not None:
        _sub(el, "originalName", obj.original_name)
    _render_relationships(el, obj.relationships)


def _render_formats(chars: etree._Element, obj: PremisObject) -> None:
    """The identified format (PRONOM) first, then the MIME type the record states.

    PREMIS requires a format; "unknown" stands for "neither identified nor stated" and reads
    back as nothing.
    """
    if obj.puid is not None or obj.identified_format is not None:
        fmt = _sub(chars, "format")
        designation = _sub(fmt, "formatDesignation")
        _sub(designation, "formatName", obj.identified_format or obj.puid)
        if obj.format_version is not None:
            _sub(designation, "formatVersion", obj.format_version)
        if obj.puid is not None:
            registry = _sub(fmt, "formatRegistry")
            _sub(registry, "formatRegistryName", PRONOM)
            _sub(registry, "formatRegistryKey", obj.puid)
            _sub(registry, "formatRegistryRole", "specification")
        for note in obj.format_notes:
            _sub(fmt, "formatNote", note)
    if obj.format_name is not None or obj.puid is None and obj.identified_format is None:
        fmt = _sub(chars, "format")
        _sub(_sub(fmt, "formatDesignation"), "formatName", obj.format_name or _UNKNOWN_FORMAT)
        if obj.format_name is not None:
            _sub(fmt, "formatNote", STATED_FORMAT_NOTE)


def _render_representation(root: etree._Element, obj: PremisRepresentation) -> None:
    el = _sub(root, "object")
    el.set(f"{{{XSI_NS}}}type", "premis:representation")
    _identifier(el, "object", "local", obj.identifier)
    if obj.original_name is not None:
        _sub(el, "originalName", obj.original_name)
    _render_relationships(el, obj.relationships)


def _render_relationships(el: etree._Element, relationships: Sequence[PremisRelationship]) -> None:
    for rel in relationships:
        box = _sub(el, "relationship")
        _sub(box, "relationshipType", rel.type, authority="relationshipType",
             authorityURI=LOC_VOCAB + "relationshipType")
        _sub(box, "relationshipSubType", rel.subtype, authority="relationshipSubType",
             authorityURI=LOC_VOCAB + "relationshipSubType")
        for related in rel.related:
            ident = _sub(box, "relatedObjectIdentifier")
            _sub(ident, "relatedObjectIdentifierType", "local")
            _sub(ident, "relatedObjectIdentifierValue", related)
        for event_id in rel.events:
            ident = _sub(box, "relatedEventIdentifier")
            _sub(ident, "relatedEventIdentifierType", "URN")
            _sub(ident, "relatedEventIdentifierValue", event_id)


def _render_event(root: etree._Element, event: PremisEvent) -> None:
    el = _sub(root, "event")
    # The value is a urn:uuid: URN, so its type says URN (a "UUID" type would want the bare UUID).
    _identifier(el, "event", "URN", event.identifier)
    _coded(el, "eventType", "eventType", event.event_type, EVENT_TYPES[event.event_type])
    _sub(el, "eventDateTime", event.date_time.isoformat())
    if event.detail is not None:
        _sub(_sub(el, "eventDetailInformation"), "eventDetail", event.detail)
    info = _sub(el, "eventOutcomeInformation")
    _coded(info, "eventOutcome", "eventOutcome", event.outcome, OUTCOMES[event.outcome])
    if event.outcome_detail is not None:
        _sub(_sub(info, "eventOutcomeDetail"), "eventOutcomeDetailNote", event.outcome_detail)
    for agent_id in event.agent_ids:
        box = _sub(el, "linkingAgentIdentifier")
        _sub(box, "linkingAgentIdentifierType", "local")
        _sub(box, "linkingAgentIdentifierValue", agent_id)
        _coded(box, "linkingAgentRole", "eventRelatedAgentRole", "exe", "executing program")
    for object_id in event.object_ids:
        box = _sub(el, "linkingObjectIdentifier")
        _sub(box, "linkingObjectIdentifierType", "local")
        _sub(box, "linkingObjectIdentifierValue", object_id)


def _render_agent(root: etree._Element, agent: PremisAgent) -> None:
    el = _sub(root, "agent")
    _identifier(el, "agent", "local", agent.identifier)
    _sub(el, "agentName", agent.name)
    _coded(el, "agentType", "agentType", agent.type, AGENT_TYPES[agent.type])
    if agent.version is not None:
        _sub(el, "agentVersion", agent.version)


# -- reading ------------------------------------------------------------------------------------

PremisDocument = tuple[list[AnyObject], list[PremisEvent], list[PremisAgent]]


def safe_xml_parser() -> etree.XMLParser:
    """An lxml parser that expands no entities, loads no DTD and never reads the network."""
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_pis=True)


def parse_xml(data: bytes, what: str) -> etree._Element:
    """Parse untrusted XML safely; any DOCTYPE is refused outright (entity attacks live there)."""
    # Refused before libxml2 sees it; the parser settings below are the second line of defence.
    if any("<!DOCTYPE".encode(enc) in data for enc in ("utf-8", "utf-16-le", "utf-16-be")):
        raise MetadataError(f"{what}: DOCTYPE and entity declarations are not allowed")
    try:
        root = etree.fromstring(data, safe_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise MetadataError(f"{what}: not well-formed XML: {exc}") from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or _has_entities(root):
        raise MetadataError(f"{what}: DOCTYPE and entity declarations are not allowed")
    return root


def _has_entities(root: etree._Element) -> bool:
    return any(isinstance(node, etree._Entity) for node in root.iter())


def parse_premis(data: bytes) -> PremisDocument:
    """Objects, events and agents of a PREMIS 3 document written by :func:`render_premis`."""
    root = parse_xml(data, "PREMIS")
    if root.tag != _q("premis"):
        raise MetadataError(f"PREMIS: root element is {root.tag}, not premis:premis")
    try:
        objects = [_parse_any_object(el) for el in root.findall(_q("object"))]
        events = [_parse_event(el) for el in root.findall(_q("event"))]
        agents = [_parse_agent(el) for el in root.findall(_q("agent"))]
    except (ValueError, KeyError) as exc:  # pydantic's ValidationError is a ValueError
        raise MetadataError(f"PREMIS: {exc}") from None
    return objects, events, agents


def _text(el: etree._Element, path: str) -> str | None:
    found = el.find(path, {"premis": PREMIS_NS})
    return found.text if found is not None and found.text is not None else None


def _need(el: etree._Element, path: str) -> str:
    value = _text(el, path)
    if value is None:
        raise ValueError(f"{el.tag.split('}')[-1]} without {path.split(':')[-1]}")
    return value


def _code(el: etree._Element, path: str, labels: dict[str, str]) -> str:
    """The vocabulary code of a coded element: from valueURI, else from its label."""
    found = el.find(path, {"premis": PREMIS_NS})
    if found is None:
        raise ValueError(f"missing {path}")
    uri = found.get("valueURI", "")
    code = uri.rsplit("/", 1)[-1] if uri else ""
    if code in labels:
        return code
    by_label = {label.lower(): c for c, label in labels.items()}
    text = (found.text or "").strip().lower()
    if text in by_label:
        return by_label[text]
    raise ValueError(f"unknown {path.split(':')[-1]} '{found.text}'")


def _parse_any_object(el: etree._Element) -> AnyObject:
    kind = el.get(f"{{{XSI_NS}}}type", "").rpartition(":")[2]
    if kind == "representation":
        return PremisRepresentation(
            identifier=_need(el, "premis:objectIdentifier/premis:objectIdentifierValue"),
            original_name=_text(el, "premis:originalName"),
            relationships=tuple(_parse_relationships(el)))
    return _parse_object(el)


def _parse_object(el: etree._Element) -> PremisObject:
    ns = {"premis": PREMIS_NS}
    digests: dict[str, str] = {}
    for fixity in el.findall("premis:objectCharacteristics/premis:fixity", ns):
        alg = _code(fixity, "premis:messageDigestAlgorithm", DIGEST_LABELS)
        digests[alg] = _need(fixity, "premis:messageDigest")
    stated: str | None = None
    identified: dict[str, Any] = {}
    for fmt in el.findall("premis:objectCharacteristics/premis:format", ns):
        name = _text(fmt, "premis:formatDesignation/premis:formatName")
        notes = tuple(n.text or "" for n in fmt.findall("premis:formatNote", ns))
        puid = _text(fmt, "premis:formatRegistry[premis:formatRegistryName='PRONOM']/"
                          "premis:formatRegistryKey")
        if puid is None and (STATED_FORMAT_NOTE in notes or name == _UNKNOWN_FORMAT):
            stated = None if name == _UNKNOWN_FORMAT else name
            continue
        identified = {"puid": puid, "identified_format": name, "format_notes": notes,
                      "format_version": _text(fmt, "premis:formatDesignation/premis:formatVersion")}
    return PremisObject(
        identifier=_need(el, "premis:objectIdentifier/premis:objectIdentifierValue"),
        size=int(_need(el, "premis:objectCharacteristics/premis:size")),
        digests=digests,
        original_name=_text(el, "premis:originalName"),
        format_name=stated,
        relationships=tuple(_parse_relationships(el)),
        **identified,
    )


def _parse_relationships(el: etree._Element) -> list[PremisRelationship]:
    ns = {"premis": PREMIS_NS}
    return [PremisRelationship.model_validate({
        "type": _need(rel, "premis:relationshipType"),
        "subtype": _need(rel, "premis:relationshipSubType"),
        "related": [v.text or "" for v in rel.findall(
            "premis:relatedObjectIdentifier/premis:relatedObjectIdentifierValue", ns)],
        "events": [v.text or "" for v in rel.findall(
            "premis:relatedEventIdentifier/premis:relatedEventIdentifierValue", ns)],
    }) for rel in el.findall("premis:relationship", ns)]


def _parse_event(el: etree._Element) -> PremisEvent:
    ns = {"premis": PREMIS_NS}
    info = el.find("premis:eventOutcomeInformation", ns)
    if info is None:
        raise ValueError("event without eventOutcomeInformation")
    # model_validate: the codes read here are checked by the model, not trusted.
    return PremisEvent.model_validate({
        "identifier": _need(el, "premis:eventIdentifier/premis:eventIdentifierValue"),
        "event_type": _code(el, "premis:eventType", EVENT_TYPES),
        "date_time": dt.datetime.fromisoformat(_need(el, "premis:eventDateTime")),
        "detail": _text(el, "premis:eventDetailInformation/premis:eventDetail"),
        "outcome": _code(info, "premis:eventOutcome", OUTCOMES),
        "outcome_detail": _text(info, "premis:eventOutcomeDetail/premis:eventOutcomeDetailNote"),
        "object_ids": [v.text or "" for v in el.findall(
            "premis:linkingObjectIdentifier/premis:linkingObjectIdentifierValue", ns)],
        "agent_ids": [v.text or "" for v in el.findall(
            "premis:linkingAgentIdentifier/premis:linkingAgentIdentifierValue", ns)],
    })


def _parse_agent(el: etree._Element) -> PremisAgent:
    return PremisAgent.model_validate({
        "identifier": _need(el, "premis:agentIdentifier/premis:agentIdentifierValue"),
        "name": _need(el, "premis:agentName"),
        "version": _text(el, "premis:agentVersion"),
        "type": _code(el, "premis:agentType", AGENT_TYPES),
    })
