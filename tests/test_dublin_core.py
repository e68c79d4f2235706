"""oai_dc, DCMI-terms JSON-LD and bag-info fields from the seed record."""

from __future__ import annotations

from typing import Any

import pytest
import rdflib
from lxml import etree
from rdflib import RDF, Literal, URIRef
from rdflib.namespace import DCTERMS, FOAF, Namespace

BIBO = Namespace("http://purl.org/ontology/bibo/")

from pipeline.bag.tagfiles import format_bag_info, parse_bag_info
from pipeline.dublin_core import (
    DC_ELEMENTS,
    DC_NS,
    EDTF_DATATYPE,
    OAI_DC_NS,
    OAI_DC_XSD,
    XSI_NS,
    bag_info_fields,
    item_iri,
    resource_iri,
    to_jsonld,
    to_oai_dc,
)
from pipeline.models import Record
from pipeline.records import load_record
from tests.conftest import REPO

XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@pytest.fixture(scope="module")
def record() -> Record:
    return load_record(REPO / "records" / "icg-peru-1986" / "record.yaml").record


def _with(record: Record, **changes: Any) -> Record:
    return Record.model_validate({**record.model_dump(), **changes})


# -- oai_dc -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai_dc(record: Record) -> etree._Element:
    return etree.fromstring(to_oai_dc(record), etree.XMLParser(resolve_entities=False,
                                                                no_network=True))


def test_oai_dc_root_namespaces_and_schema_location(oai_dc: etree._Element) -> None:
    assert oai_dc.tag == f"{{{OAI_DC_NS}}}dc"
    assert oai_dc.nsmap["oai_dc"] == OAI_DC_NS and oai_dc.nsmap["dc"] == DC_NS
    assert oai_dc.get(f"{{{XSI_NS}}}schemaLocation") == f"{OAI_DC_NS} {OAI_DC_XSD}"


def test_oai_dc_children_are_only_the_15_elements(oai_dc: etree._Element) -> None:
    tags = [child.tag for child in oai_dc]
    assert tags, "no elements"
    assert {etree.QName(t).namespace for t in tags} == {DC_NS}
    assert {etree.QName(t).localname for t in tags} <= set(DC_ELEMENTS)
    assert all(len(child) == 0 and (child.text or "").strip() for child in oai_dc)


def test_oai_dc_names_libcom_communism_6_and_comunismo_22(oai_dc: etree._Element) -> None:
    text = " ".join(child.text or "" for child in oai_dc)
    assert "libcom" in text
    assert "Communism #6" in text and "Communism No. 6" in text
    assert "Comunismo No. 22" in text


def test_oai_dc_flattens_the_chain_into_source_and_relation(oai_dc: etree._Element) -> None:
    def values(name: str) -> list[str]:
        return [c.text or "" for c in oai_dc.findall(f"{{{DC_NS}}}{name}")]

    assert any("Comunismo No. 22" in s and "1986-06" in s and "June 86" in s
               for s in values("source"))
    assert any(r.startswith("Is version of: ") and "Communism No. 6" in r and "date not given" in r
               for r in values("relation"))
    assert values("date") == ["2006-01-12"]
    assert "http://rightsstatements.org/vocab/UND/1.0/" in values("rights")
    assert any("Comunismo" in d for d in values("description"))  # the provenance statement


def test_oai_dc_keeps_language_tags(oai_dc: etree._Element) -> None:
    title = oai_dc.find(f"{{{DC_NS}}}title")
    assert title is not None and title.get(XML_LANG) == "en"


def test_oai_dc_is_deterministic(record: Record) -> None:
    assert to_oai_dc(record) == to_oai_dc(record)


# -- JSON-LD ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph(record: Record) -> rdflib.Graph:
    return rdflib.Graph().parse(data=to_jsonld(record), format="json-ld")


def test_jsonld_links_item_to_its_source_and_version(record: Record, graph: rdflib.Graph) -> None:
    item = URIRef(item_iri(record))
    original = URIRef(resource_iri(record, "comunismo-22"))
    english = URIRef(resource_iri(record, "communism-6"))
    assert set(graph.objects(item, DCTERMS.source)) == {original}
    assert set(graph.objects(item, DCTERMS.isVersionOf)) == {english}
    assert set(graph.objects(english, DCTERMS.source)) == {original}


def test_jsonld_issued_dates_and_none_invented(record: Record, graph: rdflib.Graph) -> None:
    def issued(node: str) -> list[str]:
        return [str(v) for v in graph.objects(URIRef(node), DCTERMS.issued)]

    assert issued(item_iri(record)) == ["2006-01-12"]
    assert issued(resource_iri(record, "comunismo-22")) == ["1986-06"]
    assert issued(resource_iri(record, "communism-6")) == []
    date = next(graph.objects(URIRef(item_iri(record)), DCTERMS.issued))
    assert isinstance(date, Literal)
    assert date.datatype == URIRef("http://www.w3.org/2001/XMLSchema#date")


def test_jsonld_part_of_issues_and_languages(record: Record, graph: rdflib.Graph) -> None:
    def issue_and_serial(rid: str) -> tuple[str, str]:
        issues = list(graph.objects(URIRef(resource_iri(record, rid)), DCTERMS.isPartOf))
        assert len(issues) == 1 and isinstance(issues[0], URIRef)  # an IRI, not a blank node
        serials = list(graph.objects(issues[0], DCTERMS.isPartOf))
        assert len(serials) == 1 and isinstance(serials[0], URIRef)
        assert (serials[0], RDF.type, BIBO.Periodical) in graph and (issues[0], RDF.type, BIBO.Issue) in graph
        return str(graph.value(issues[0], BIBO.issue)), str(graph.value(serials[0], DCTERMS.title))

    assert issue_and_serial("comunismo-22") == ("No. 22", "Comunismo")
    assert issue_and_serial("communism-6") == ("No. 6", "Communism")
    lang = set(graph.objects(URIRef(resource_iri(record, "comunismo-22")), DCTERMS.language))
    assert lang == {URIRef("http://id.loc.gov/vocabulary/iso639-1/es")}


def test_jsonld_carries_provenance_citation_rights_publisher(record: Record,
                                                             graph: rdflib.Graph) -> None:
    item = URIRef(item_iri(record))
    for term in (DCTERMS.provenance, DCTERMS.bibliographicCitation, DCTERMS.title,
                 DCTERMS.creator, DCTERMS.language):
        assert list(graph.objects(item, term)), term
    assert URIRef("http://rightsstatements.org/vocab/UND/1.0/") in set(
        graph.objects(item, DCTERMS.rights))
    assert {str(graph.value(p, FOAF.name)) for p in graph.objects(item, DCTERMS.publisher)} == {"libcom.org"}
    assert (item, RDF.type, URIRef("http://purl.org/dc/dcmitype/Text")) in graph


def test_jsonld_context_is_inline(record: Record) -> None:
    import json

    # A remote context would be a URL string (or an @import); reading ours needs no network.
    context = json.loads(to_jsonld(record))["@context"]
    assert isinstance(context, dict) and "@import" not in context
    assert all(isinstance(v, str) for v in context.values())


def test_jsonld_edtf_dates_typed_as_edtf(record: Record) -> None:
    changed = _with(record, issued={"as_written": "about 2006", "date": "2006~"})
    graph = rdflib.Graph().parse(data=to_jsonld(changed), format="json-ld")
    date = next(graph.objects(URIRef(item_iri(changed)), DCTERMS.issued))
    assert isinstance(date, Literal)
    assert (str(date), str(date.datatype)) == ("2006~", EDTF_DATATYPE)


# -- bag-info -----------------------------------------------------------------------------------


def test_bag_info_fields_order_and_identity(record: Record) -> None:
    fields = bag_info_fields(record)
    assert [label for label, _ in fields[:3]] == ["Source-Organization", "External-Identifier",
                                                  "External-Description"]
    values = dict(fields)
    assert values["External-Identifier"] == "icg-peru-1986"
    assert values["Title"] == "Large-scale Massacre of Prisoners in Peru, 1986 - ICG"
    assert "Internationalist Communist Group" in values["Creator"]
    assert values["Date-Issued"] == "January 12, 2006 (2006-01-12)"
    assert values["Language"] == "en"
    assert values["Rights-URI"] == "http://rightsstatements.org/vocab/UND/1.0/"


def test_bag_info_provenance_chain_in_one_line(record: Record) -> None:
    chain = dict(bag_info_fields(record))["Provenance-Chain"]
    assert "Communism No. 6, date not given" in chain
    assert "Comunismo No. 22, June 86 (1986-06)" in chain


def test_bag_info_values_are_single_lines_and_survive_the_tag_file(record: Record) -> None:
    fields = bag_info_fields(record)
    assert all("\n" not in v and "\r" not in v and v == v.strip() for _, v in fields)
    assert parse_bag_info(format_bag_info(fields)) == fields


def test_bag_info_leaves_writer_labels_alone(record: Record) -> None:
    labels = {label.lower() for label, _ in bag_info_fields(record)}
    assert not labels & {"bagging-date", "payload-oxum", "bag-software-agent",
                         "bagit-profile-identifier"}
