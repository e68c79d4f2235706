"""PREMIS 3: models, rendering with LoC vocabularies, safe parsing and round trips."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree
from pydantic import ValidationError

import pipeline
from pipeline.errors import MetadataError
from pipeline.premis import (
    EVENT_TYPES,
    PREMIS_NS,
    PremisAgent,
    PremisEvent,
    PremisObject,
    parse_premis,
    render_premis,
    strongroom_agent,
)

NS = {"premis": PREMIS_NS}
UTC = dt.timezone.utc
SHA256_HELLO = hashlib.sha256(b"hello").hexdigest()


def _object(**kw: object) -> PremisObject:
    base: dict[str, object] = {"identifier": "data/hello.txt", "size": 5,
                               "digests": {"sha256": SHA256_HELLO}, "original_name": "hello.txt",
                               "format_name": "text/plain"}
    return PremisObject.model_validate({**base, **kw})


def _event(event_type: str = "fix", **kw: object) -> PremisEvent:
    base: dict[str, object] = {"event_type": event_type,
                               "date_time": dt.datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC),
                               "detail": "Bagit - verifypayloadmanifests", "outcome": "suc",
                               "outcome_detail": f"sha256:{SHA256_HELLO}",
                               "object_ids": ["data/hello.txt"], "agent_ids": ["strongroom/x"]}
    return PremisEvent.model_validate({**base, **kw})


def test_strongroom_agent_is_software_with_our_version() -> None:
    agent = strongroom_agent()
    assert (agent.name, agent.version, agent.type) == ("Strongroom", pipeline.__version__, "sof")
    assert pipeline.__version__ in agent.identifier


def test_event_identifier_defaults_to_a_fresh_uuid_urn() -> None:
    a, b = _event(), _event()
    assert a.identifier.startswith("urn:uuid:") and a.identifier != b.identifier


@pytest.mark.parametrize("field, value, message", [
    ("event_type", "bagging", "unknown PREMIS event type code 'bagging'"),
    ("outcome", "ok", "Input should be 'suc', 'fai' or 'war'"),
    ("date_time", dt.datetime(2026, 1, 1), "timezone-aware"),
    ("identifier", "1234", "not a urn:uuid: identifier"),
])
def test_bad_events_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        _event(**{field: value})


def test_event_time_normalised_to_utc() -> None:
    lima = dt.timezone(dt.timedelta(hours=-5))
    event = _event(date_time=dt.datetime(1986, 6, 18, 23, 0, tzinfo=lima))
    assert event.date_time == dt.datetime(1986, 6, 19, 4, 0, tzinfo=UTC)
    assert event.date_time.utcoffset() == dt.timedelta(0)


def test_bad_digests_refused() -> None:
    with pytest.raises(ValidationError, match="sha256 digest must be 64 hex digits"):
        _object(digests={"sha256": "abc"})
    with pytest.raises(ValidationError, match="unsupported algorithm"):
        _object(digests={"crc32": "abcd1234"})


def test_models_are_frozen_and_serialisable() -> None:
    event = _event()
    with pytest.raises(ValidationError):
        event.outcome = "fai"  # type: ignore[misc]
    assert PremisEvent.model_validate_json(event.model_dump_json()) == event


# -- rendering ----------------------------------------------------------------------------------


@pytest.fixture
def document() -> bytes:
    return render_premis([_object()], [_event("ing"), _event("fix")],
                         [strongroom_agent(), PremisAgent(identifier="bagit-python/1.9.0",
                                                          name="bagit-python", version="1.9.0")])


def test_render_root_is_premis_3(document: bytes) -> None:
    root = etree.fromstring(document)
    assert root.tag == f"{{{PREMIS_NS}}}premis" and root.get("version") == "3.0"
    assert [etree.QName(c).localname for c in root] == ["object", "event", "event", "agent",
                                                        "agent"]


def test_render_event_type_and_outcome_use_loc_vocabularies(document: bytes) -> None:
    root = etree.fromstring(document)
    types = root.findall("premis:event/premis:eventType", NS)
    assert [t.text for t in types] == ["ingestion", "fixity check"]
    assert types[1].get("valueURI") == "http://id.loc.gov/vocabulary/preservation/eventType/fix"
    outcome = root.find("premis:event/premis:eventOutcomeInformation/premis:eventOutcome", NS)
    assert outcome is not None and outcome.text == "success"
    assert outcome.get("valueURI") == "http://id.loc.gov/vocabulary/preservation/eventOutcome/suc"


def test_render_object_fixity_and_size(document: bytes) -> None:
    root = etree.fromstring(document)
    chars = root.find("premis:object/premis:objectCharacteristics", NS)
    assert chars is not None
    assert chars.findtext("premis:fixity/premis:messageDigestAlgorithm", namespaces=NS) == "SHA-256"
    assert chars.findtext("premis:fixity/premis:messageDigest", namespaces=NS) == SHA256_HELLO
    assert chars.findtext("premis:size", namespaces=NS) == "5"
    assert root.findtext("premis:object/premis:objectIdentifier/premis:objectIdentifierValue",
                         namespaces=NS) == "data/hello.txt"


def test_render_agent_type_and_version(document: bytes) -> None:
    root = etree.fromstring(document)
    agent = root.find("premis:agent", NS)
    assert agent is not None
    assert agent.findtext("premis:agentName", namespaces=NS) == "Strongroom"
    assert agent.findtext("premis:agentType", namespaces=NS) == "software"
    assert agent.findtext("premis:agentVersion", namespaces=NS) == pipeline.__version__


# -- parsing ------------------------------------------------------------------------------------


def test_round_trip_of_the_rendered_document(document: bytes) -> None:
    objects, events, agents = parse_premis(document)
    assert render_premis(objects, events, agents) == document
    assert objects == [_object()]
    assert [e.event_type for e in events] == ["ing", "fix"]


def test_round_trip_keeps_absent_optionals_absent() -> None:
    obj = _object(original_name=None, format_name=None, digests={})
    event = _event("val", detail=None, outcome_detail=None, object_ids=[], agent_ids=[])
    agent = PremisAgent(identifier="someone", name="Someone", version=None, type="per")
    assert parse_premis(render_premis([obj], [event], [agent])) == ([obj], [event], [agent])


_event_strategy = st.builds(
    PremisEvent,
    event_type=st.sampled_from(sorted(EVENT_TYPES)),
    date_time=st.datetimes(timezones=st.timezones()),
    detail=st.none() | st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")),
                               min_size=1).filter(lambda s: s.strip() == s and s != ""),
    outcome=st.sampled_from(["suc", "fai", "war"]),
    object_ids=st.lists(st.from_regex(r"data/[a-z0-9 ._-]{1,20}", fullmatch=True), max_size=3)
    .map(tuple),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(_event_strategy, max_size=4))
def test_events_round_trip(events: list[PremisEvent]) -> None:
    _, parsed, _ = parse_premis(render_premis([_object()], events, []))
    assert parsed == events


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE premis [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
]>
<premis:premis xmlns:premis="http://www.loc.gov/premis/v3" version="3.0">
 <premis:agent>
  <premis:agentIdentifier><premis:agentIdentifierType>local</premis:agentIdentifierType>
   <premis:agentIdentifierValue>x</premis:agentIdentifierValue></premis:agentIdentifier>
  <premis:agentName>&f;</premis:agentName>
 </premis:agent>
</premis:premis>
"""


def test_entity_expansion_attack_refused_without_expanding() -> None:
    started = time.process_time()
    with pytest.raises(MetadataError, match="DOCTYPE and entity declarations are not allowed"):
        parse_premis(BILLION_LAUGHS)
    # Expanded, &f; would be 28**5 * 88 bytes (1.5 GB); refused, it takes milliseconds.
    assert time.process_time() - started < 5


def test_external_entity_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    doc = (f'<?xml version="1.0"?><!DOCTYPE p [<!ENTITY s SYSTEM "file://{secret}">]>'
           '<premis:premis xmlns:premis="http://www.loc.gov/premis/v3" version="3.0">'
           '<premis:agent><premis:agentName>&s;</premis:agentName></premis:agent>'
           '</premis:premis>').encode()
    with pytest.raises(MetadataError) as info:
        parse_premis(doc)
    assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("data, message", [
    (b"<premis:premis xmlns:premis='http://www.loc.gov/premis/v3'>", "not well-formed"),
    (b"<other/>", "root element"),
    (b"<premis:premis xmlns:premis='http://www.loc.gov/premis/v3' version='3.0'>"
     b"<premis:object><premis:objectIdentifier><premis:objectIdentifierValue>x"
     b"</premis:objectIdentifierValue></premis:objectIdentifier></premis:object>"
     b"</premis:premis>", "without size"),
])
def test_malformed_premis_is_a_metadata_error(data: bytes, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_premis(data)


def test_safe_parser_leaves_entities_unexpanded() -> None:
    # The second line of defence, behind parse_xml's DOCTYPE refusal.
    from pipeline.premis import safe_xml_parser

    root = etree.fromstring(b'<!DOCTYPE a [<!ENTITY s "EXPANDED">]><a>&s;</a>', safe_xml_parser())
    assert "EXPANDED" not in etree.tostring(root).decode()


def test_formats_relationships_and_representations_round_trip() -> None:
    from pipeline.premis import PremisRelationship, PremisRepresentation

    inside = (PremisRelationship(type="structural", subtype="is included in", related=("b.v2",)),)
    identified = _object(puid="fmt/11", identified_format="Portable Network Graphics", format_version="1.0",
                         format_notes=("identified by siegfried 1.11.9", "disagrees with the record"),
                         format_name="image/jpeg", relationships=inside)
    only_identified = _object(identifier="data/b.txt", puid="x-fmt/111", identified_format="Plain Text File",
                              format_name=None)
    bag = PremisRepresentation(identifier="b.v2", relationships=(
        PremisRelationship(type="structural", subtype="includes", related=("data/hello.txt", "data/b.txt")),
        PremisRelationship(type="derivation", subtype="has source", related=("b.v1",),
                           events=(_event().identifier,))))
    objects = [identified, only_identified, _object(identifier="data/c.bin", format_name=None), bag]
    document = render_premis(objects, [_event()], [])
    assert parse_premis(document)[0] == objects
    root = etree.fromstring(document)
    keys = [k.text for k in root.iter("{http://www.loc.gov/premis/v3}formatRegistryKey")]
    assert keys == ["fmt/11", "x-fmt/111"]


def test_a_puid_that_is_not_one_is_refused() -> None:
    with pytest.raises(ValidationError):
        _object(puid="png")
