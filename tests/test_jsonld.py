"""dcterms.jsonld as linked data: serials, issues and agents are resources; languages and periods
use vocabularies; two JSON-LD processors (rdflib and pyld) read it to the same graph."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rdflib
from rdflib import RDF, Literal, URIRef
from rdflib.compare import isomorphic
from rdflib.namespace import DCTERMS, FOAF

from pipeline.dublin_core import EDTF_DATATYPE, agent_iri, item_iri, resource_iri, serial_iri, to_jsonld
from pipeline.models import Record
from pipeline.records import load_record
from tests.conftest import REPO

BIBO = rdflib.Namespace("http://purl.org/ontology/bibo/")


@pytest.fixture(scope="module")
def record() -> Record:
    return load_record(REPO / "records" / "icg-peru-1986" / "record.yaml").record


def _with(record: Record, **changes: Any) -> Record:
    return Record.model_validate({**record.model_dump(), **changes})


def _graph(record: Record) -> rdflib.Graph:
    return rdflib.Graph().parse(data=to_jsonld(record), format="json-ld")


def test_rdflib_and_pyld_read_the_same_graph(record: Record) -> None:
    from pyld import jsonld

    nquads = jsonld.to_rdf(json.loads(to_jsonld(record)), {"format": "application/n-quads"})
    by_pyld = rdflib.Graph().parse(data=nquads, format="nquads")
    by_rdflib = _graph(record)
    assert len(by_rdflib) > 50 and isomorphic(by_pyld, by_rdflib)


def test_serials_and_issues_are_resources_with_iris(record: Record) -> None:
    graph = _graph(record)
    assert not any(isinstance(n, rdflib.BNode) for t in graph for n in t)  # no blank nodes at all
    serials = set(graph.subjects(RDF.type, BIBO.Periodical))
    assert serials == {URIRef(serial_iri(record, "Communism")), URIRef(serial_iri(record, "Comunismo"))}
    for rid, issue in (("communism-6", "No. 6"), ("comunismo-22", "No. 22")):
        part = graph.value(URIRef(resource_iri(record, rid)), DCTERMS.isPartOf)
        assert (part, RDF.type, BIBO.Issue) in graph and str(graph.value(part, BIBO.issue)) == issue
        assert graph.value(part, DCTERMS.isPartOf) in serials
    assert graph.value(URIRef(serial_iri(record, "Comunismo")), DCTERMS.title) == Literal("Comunismo", lang="es")


def test_nothing_is_invented_for_communism_6(record: Record) -> None:
    graph = _graph(record)
    english = URIRef(resource_iri(record, "communism-6"))
    issue = graph.value(english, DCTERMS.isPartOf)
    for node in (english, issue, graph.value(issue, DCTERMS.isPartOf)):
        assert not list(graph.objects(node, DCTERMS.issued)) and not list(graph.objects(node, DCTERMS.date))


def test_creator_and_publisher_are_named_agents_shared_across_the_chain(record: Record) -> None:
    graph = _graph(record)
    icg = URIRef(agent_iri(record, "Internationalist Communist Group (ICG)"))
    assert (icg, RDF.type, FOAF.Agent) in graph
    assert str(graph.value(icg, FOAF.name)) == "Internationalist Communist Group (ICG)"
    assert set(graph.subjects(DCTERMS.creator, icg)) == {
        URIRef(item_iri(record)), URIRef(resource_iri(record, "communism-6")),
        URIRef(resource_iri(record, "comunismo-22"))}
    publisher = graph.value(URIRef(item_iri(record)), DCTERMS.publisher)
    assert str(publisher) == "urn:strongroom:record:icg-peru-1986:agent:libcom-org"
    assert str(graph.value(publisher, FOAF.name)) == "libcom.org"


def test_two_names_with_one_slug_stay_two_agents(record: Record) -> None:
    graph = _graph(_with(record, dc={**record.dc.model_dump(), "contributor": ["ICG", "icg"]}))
    agents = set(graph.objects(URIRef(item_iri(record)), DCTERMS.contributor))
    assert len(agents) == 2 and {str(graph.value(a, FOAF.name)) for a in agents} == {"ICG", "icg"}


def test_languages_are_iso_639_iris(record: Record) -> None:
    graph = _graph(_with(record, dc={**record.dc.model_dump(), "language": ["en", "pt-BR", "quz"]}))
    found = set(graph.objects(URIRef(item_iri(record)), DCTERMS.language))
    rfc5646 = URIRef("http://purl.org/dc/terms/RFC5646")
    assert found == {URIRef("http://id.loc.gov/vocabulary/iso639-1/en"),
                     URIRef("http://id.loc.gov/vocabulary/iso639-1/pt"),
                     Literal("pt-BR", datatype=rfc5646), Literal("quz", datatype=rfc5646)}


def test_the_coverage_period_is_a_typed_edtf_interval(record: Record) -> None:
    graph = _graph(record)
    item = URIRef(item_iri(record))
    assert set(graph.objects(item, DCTERMS.temporal)) == {Literal("1985/1986", datatype=URIRef(EDTF_DATATYPE))}
    assert set(graph.objects(item, DCTERMS.coverage)) == {Literal("Peru", lang="en")}


@pytest.mark.parametrize(("text", "period"), [("1985–1986", "1985/1986"), ("1985-06/1986", "1985-06/1986"),
                                              ("1990-1980", None), ("Lima", None)])
def test_coverage_texts_that_are_periods_and_those_that_are_not(record: Record, text: str,
                                                                 period: str | None) -> None:
    graph = _graph(_with(record, dc={**record.dc.model_dump(), "coverage": [text]}))
    item = URIRef(item_iri(record))
    temporal = [str(v) for v in graph.objects(item, DCTERMS.temporal)]
    assert temporal == ([period] if period else [])
    assert [str(v) for v in graph.objects(item, DCTERMS.coverage)] == ([] if period else [text])
