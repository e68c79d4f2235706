"""The OAI-PMH 2.0 provider of ``strongroom web``, over real HTTP, as harvesters see it.

A real harvester (sickle) harvests from the server process; every response is validated against
the official OAI-PMH XSD with the oai_dc and PREMIS schemas imported (so ``<metadata>`` is checked
strictly), and each oai_dc record against oai_dc.xsd on its own.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from lxml import etree
from sickle import Sickle

from tests.web_support import (DC_NS, GENERATED, GENERATED_FROM, OAI_DC_NS, OAI_NS, Collection, WebServer,
                               oai_schema, schema)

NS = {"o": OAI_NS, "dc": DC_NS, "oai_dc": OAI_DC_NS}
REPO_ID = "strongroom.local"
SEED_ID = f"oai:{REPO_ID}:icg-peru-1986"


@functools.cache
def _schemas() -> tuple[etree.XMLSchema, etree.XMLSchema]:
    return oai_schema(), schema("oai_dc.xsd")


@pytest.fixture(scope="module")
def schemas() -> tuple[etree.XMLSchema, etree.XMLSchema]:
    return _schemas()


def _validate(xml: bytes, schemas: tuple[etree.XMLSchema, etree.XMLSchema]) -> etree._Element:
    """Parse a response and assert it is valid OAI-PMH; every oai_dc record valid oai_dc too."""
    doc = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    envelope, dc = schemas
    assert envelope.validate(doc), [str(e) for e in envelope.error_log][:5]
    for record in doc.iterfind(".//oai_dc:dc", NS):
        assert dc.validate(etree.ElementTree(record)), [str(e) for e in dc.error_log][:5]
    return doc


def _get(server: WebServer, query: str, method: str = "GET") -> bytes:
    url = f"{server.url}/oai"
    if method == "GET":
        request = urllib.request.Request(f"{url}?{query}")
    else:
        request = urllib.request.Request(url, data=query.encode(), method="POST",
                                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/xml")
        body = bytes(response.read())
    _validate(body, _schemas())  # every response of every test, whatever the test looks at
    return body


class RecordingSickle(Sickle):  # type: ignore[misc]
    """Sickle keeping every raw page it receives, to validate them all."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pages: list[bytes] = []

    def harvest(self, **kwargs: Any) -> Any:
        response = super().harvest(**kwargs)
        self.pages.append(response.http_response.content)
        return response


def _error(doc: etree._Element) -> tuple[str, dict[str, str]]:
    error = doc.find("o:error", NS)
    assert error is not None, etree.tostring(doc)[:500]
    return error.get("code", ""), dict(doc.find("o:request", NS).attrib)  # type: ignore[union-attr]


# -- a harvester's view ---------------------------------------------------------------------------

def test_a_harvester_pages_through_every_record_with_resumption_tokens(
        web_server: WebServer, web_collection: Collection, schemas: Any) -> None:
    sickle = RecordingSickle(f"{web_server.url}/oai")
    records = list(sickle.ListRecords(metadataPrefix="oai_dc"))
    assert len(sickle.pages) == 3  # 253 records, 100 a page
    identifiers = [r.header.identifier for r in records]
    assert len(identifiers) == len(set(identifiers)) == web_collection.records
    assert SEED_ID in identifiers and f"oai:{REPO_ID}:versioned" in identifiers
    assert not any(i.endswith(".v1") for i in identifiers)  # older versions are not listed
    cursors = []
    for page in sickle.pages:
        doc = _validate(page, schemas)
        token = doc.find(".//o:resumptionToken", NS)
        assert token is not None and token.get("completeListSize") == str(web_collection.records)
        cursors.append(int(token.get("cursor", "-1")))
    assert cursors == [0, 100, 200]
    assert not (etree.fromstring(sickle.pages[-1]).findtext(".//o:resumptionToken", namespaces=NS) or "")
    seed = next(r for r in records if r.header.identifier == SEED_ID)
    assert seed.metadata["title"] == ["Large-scale Massacre of Prisoners in Peru, 1986 - ICG"]
    assert seed.header.setSpecs == ["libcom.org"]
    # The list is in datestamp order, and the datestamps are at seconds granularity.
    stamps = [r.header.datestamp for r in records]
    assert stamps == sorted(stamps) and all(len(s) == 20 and s.endswith("Z") for s in stamps)


def test_identify_formats_sets_and_get_record_as_a_harvester_asks(web_server: WebServer, schemas: Any) -> None:
    sickle = RecordingSickle(f"{web_server.url}/oai")
    identify = sickle.Identify()
    assert identify.baseURL == f"{web_server.url}/oai" and identify.protocolVersion == "2.0"
    assert identify.granularity == "YYYY-MM-DDThh:mm:ssZ" and identify.deletedRecord == "no"
    assert identify.earliestDatestamp == "2019-12-02T00:00:00Z"  # the evil record's
    assert {f.metadataPrefix for f in sickle.ListMetadataFormats()} == {"oai_dc", "premis"}
    assert {f.metadataPrefix for f in sickle.ListMetadataFormats(identifier=f"oai:{REPO_ID}:gen-0001")} == {"oai_dc"}
    sets = {s.setSpec: s.setName for s in sickle.ListSets()}
    assert sets["libcom.org"] == "Source organisation: libcom.org"
    assert sets["Archive-of-the-North"] == "Source organisation: Archive of the North"
    assert sets["Evil-Co"] == "Source organisation: Evil & <Co>"
    record = sickle.GetRecord(identifier=SEED_ID, metadataPrefix="oai_dc")
    assert record.metadata["identifier"] == ["urn:strongroom:record:icg-peru-1986"]
    premis = sickle.GetRecord(identifier=SEED_ID, metadataPrefix="premis")
    assert premis.xml.find(".//{http://www.loc.gov/premis/v3}premis") is not None
    assert len(list(sickle.ListIdentifiers(metadataPrefix="premis"))) == 1  # only the seed holds premis.xml
    for page in sickle.pages:
        _validate(page, schemas)


def test_the_premis_record_is_the_bags_premis_and_valid_premis_3(web_server: WebServer,
                                                                  web_collection: Collection) -> None:
    doc = etree.fromstring(_get(web_server, f"verb=GetRecord&metadataPrefix=premis&identifier={SEED_ID}"))
    premis = doc.find(".//{http://www.loc.gov/premis/v3}premis")
    assert premis is not None
    assert schema("premis-v3-0.xsd").validate(etree.ElementTree(premis))
    on_disk = etree.parse(str(web_collection.seed_bag / "metadata" / "premis.xml")).getroot()
    assert etree.tostring(premis, method="c14n", exclusive=True) == \
        etree.tostring(on_disk, method="c14n", exclusive=True)


def test_selective_harvesting_by_set_and_from_until_at_seconds_granularity(web_server: WebServer,
                                                                          schemas: Any) -> None:
    def count(query: str) -> int:
        doc = _validate(_get(web_server, "verb=ListIdentifiers&metadataPrefix=oai_dc&" + query), schemas)
        token = doc.find(".//o:resumptionToken", NS)
        return int(token.get("completeListSize", "0")) if token is not None else len(doc.findall(".//o:header", NS))

    def at(hours: int) -> str:
        return (GENERATED_FROM + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")

    assert count("set=libcom.org") == 1
    assert count("set=Archive-of-the-North") == GENERATED // 2 + 1  # the versioned record too
    assert count(f"from={at(10)}&until={at(19)}") == 10  # both ends included
    assert count(f"from={at(10)}&until={at(10)}") == 1
    assert count("from=2020-01-02&until=2020-01-02") == 24  # a day's until is its last second
    assert count(f"from={at(GENERATED - 1)}") == 2  # the last generated record and the seed (ingested now)
    assert count(f"until={at(-1)}") == 2  # the versioned record (as its newest version) and the evil one


def test_a_resumption_token_survives_a_server_restart(web_collection: Collection, schemas: Any) -> None:
    with WebServer(web_collection.bags) as first:
        doc = _validate(_get(first, "verb=ListIdentifiers&metadataPrefix=oai_dc&set=Archive-of-the-South"), schemas)
        token = doc.findtext(".//o:resumptionToken", namespaces=NS)
        assert token
        first_page = [h.findtext("o:identifier", namespaces=NS) for h in doc.iterfind(".//o:header", NS)]
    with WebServer(web_collection.bags) as second:
        doc = _validate(_get(second, f"verb=ListIdentifiers&resumptionToken={urllib.parse.quote(token)}"), schemas)
        second_page = [h.findtext("o:identifier", namespaces=NS) for h in doc.iterfind(".//o:header", NS)]
        resumption = doc.find(".//o:resumptionToken", NS)
    assert len(first_page) == 100 and len(second_page) == GENERATED // 2 - 100
    assert not set(first_page) & set(second_page)
    assert resumption is not None and resumption.get("cursor") == "100" and not resumption.text


def test_older_versions_are_reachable_and_named_in_dc_relation(web_server: WebServer, schemas: Any) -> None:
    newest = _validate(_get(web_server, f"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:{REPO_ID}:versioned"),
                       schemas)
    assert newest.findtext(".//dc:title", namespaces=NS) == "Versioned record, second version"
    assert f"oai:{REPO_ID}:versioned.v1" in " ".join(newest.xpath("//dc:relation/text()", namespaces=NS))
    older = _validate(_get(web_server, f"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:{REPO_ID}:versioned.v1"),
                      schemas)
    assert older.findtext(".//o:header/o:identifier", namespaces=NS) == f"oai:{REPO_ID}:versioned.v1"
    assert older.findtext(".//dc:title", namespaces=NS) == "Versioned record, first version"
    assert older.findtext(".//o:datestamp", namespaces=NS) == "2019-12-02T00:00:00Z"


def test_post_requests_are_answered_like_get(web_server: WebServer, schemas: Any) -> None:
    doc = _validate(_get(web_server, f"verb=GetRecord&metadataPrefix=oai_dc&identifier={SEED_ID}", "POST"), schemas)
    assert doc.find(".//o:GetRecord", NS) is not None


# -- every error condition ------------------------------------------------------------------------

ERRORS = [
    ("", "badVerb"),
    ("verb=Frobnicate", "badVerb"),
    ("verb=Identify&verb=Identify", "badVerb"),
    ("verb=Identify&extra=1", "badArgument"),
    ("verb=ListRecords", "badArgument"),  # metadataPrefix is required
    ("verb=GetRecord&identifier=" + SEED_ID, "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&metadataPrefix=oai_dc", "badArgument"),  # repeated
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2020-01-01T00:00:00", "badArgument"),  # no Z
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2020-13-01", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2020-01-01&until=2020-01-02T00:00:00Z", "badArgument"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=2021-01-01&until=2020-01-01", "badArgument"),
    ("verb=ListRecords&resumptionToken=x&metadataPrefix=oai_dc", "badArgument"),  # exclusive
    ("verb=GetRecord&resumptionToken=x", "badArgument"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=%01%1b", "badArgument"),  # not even XML text
    ("verb=Identify&%00=x", "badArgument"),
    ("verb=ListRecords&metadataPrefix=marc21", "cannotDisseminateFormat"),
    ("verb=GetRecord&metadataPrefix=marc21&identifier=" + SEED_ID, "cannotDisseminateFormat"),
    (f"verb=GetRecord&metadataPrefix=premis&identifier=oai:{REPO_ID}:gen-0001", "cannotDisseminateFormat"),
    (f"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:{REPO_ID}:no-such-record", "idDoesNotExist"),
    ("verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:elsewhere.org:icg-peru-1986", "idDoesNotExist"),
    (f"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:{REPO_ID}:linked", "idDoesNotExist"),  # a link
    (f"verb=ListMetadataFormats&identifier=oai:{REPO_ID}:..", "idDoesNotExist"),
    ("verb=ListRecords&metadataPrefix=oai_dc&from=1990-01-01&until=1990-12-31", "noRecordsMatch"),
    ("verb=ListIdentifiers&metadataPrefix=oai_dc&set=no-such-set", "noRecordsMatch"),
    ("verb=ListRecords&resumptionToken=garbage", "badResumptionToken"),
    ("verb=ListSets&resumptionToken=anything", "badResumptionToken"),
]


@pytest.mark.parametrize(("query", "code"), ERRORS, ids=[f"{c}:{q[:50]}" for q, c in ERRORS])
def test_each_error_condition_is_answered_as_the_protocol_says(web_server: WebServer, schemas: Any,
                                                               query: str, code: str) -> None:
    found, attributes = _error(_validate(_get(web_server, query), schemas))
    assert found == code
    if code in ("badVerb", "badArgument"):
        assert attributes == {}  # the protocol: echo no arguments of such a request
    else:
        assert attributes.get("verb")


def _first_token(server: WebServer, verb: str = "ListIdentifiers") -> str:
    doc = etree.fromstring(_get(server, f"verb={verb}&metadataPrefix=oai_dc"))
    token = doc.findtext(".//o:resumptionToken", namespaces=NS)
    assert token
    return token


def _reissue(token: str, **changes: Any) -> str:
    """The token with fields changed and its fingerprint made anew (the server's own rule)."""
    from pipeline.web.oai import Provider, ProviderConfig

    text, _, _ = token.partition(".")
    body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) | changes
    raw = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")
    provider = Provider(None, ProviderConfig("x", "http://x/oai", "a@b.org"))  # type: ignore[arg-type]
    return f"{raw}.{provider._fingerprint(raw)}"


@pytest.mark.parametrize("spoil", ["truncated", "tampered", "expired", "other verb", "other repository",
                                   "future", "negative cursor"])
def test_spoiled_resumption_tokens_are_bad_resumption_tokens(web_server: WebServer, schemas: Any,
                                                             spoil: str) -> None:
    token = _first_token(web_server)
    verb = "ListIdentifiers"
    if spoil == "truncated":
        token = token[:-3]
    elif spoil == "tampered":
        text, _, fingerprint = token.partition(".")
        body = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))) | {"c": 5}
        token = base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=") + "." + fingerprint
    elif spoil == "expired":
        token = _reissue(token, t=int((dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)).timestamp()))
    elif spoil == "future":
        token = _reissue(token, t=int((dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=2)).timestamp()))
    elif spoil == "negative cursor":
        token = _reissue(token, c=-1)
    elif spoil == "other verb":
        verb = "ListRecords"
    elif spoil == "other repository":
        text, _, _ = token.partition(".")
        token = f"{text}.{hashlib.sha256(('elsewhere.org' + chr(10) + text).encode()).hexdigest()[:16]}"
    doc = _validate(_get(web_server, f"verb={verb}&resumptionToken={urllib.parse.quote(token)}"), schemas)
    assert _error(doc)[0] == "badResumptionToken"


def test_no_set_hierarchy_and_no_metadata_formats_in_an_archive_of_one_bare_bag(tmp_path: Any,
                                                                                schemas: Any) -> None:
    bags = tmp_path / "bags"
    (bags / "bare.v1").mkdir(parents=True)  # a bag with no bag-info.txt (no set) and no metadata/
    (bags / "bare.v1" / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    with WebServer(bags) as server:
        doc = _validate(_get(server, f"verb=ListMetadataFormats&identifier=oai:{REPO_ID}:bare"), schemas)
        assert _error(doc)[0] == "noMetadataFormats"
        assert _error(_validate(_get(server, "verb=ListSets"), schemas))[0] == "noSetHierarchy"
        doc = _validate(_get(server, "verb=ListRecords&metadataPrefix=oai_dc&set=x"), schemas)
        assert _error(doc)[0] == "noSetHierarchy"
        assert _error(_validate(_get(server, "verb=ListRecords&metadataPrefix=oai_dc"), schemas))[0] == \
            "noRecordsMatch"
        _validate(_get(server, "verb=Identify"), schemas)


def _pages(server: WebServer) -> Iterator[bytes]:
    query = "verb=ListRecords&metadataPrefix=oai_dc"
    while True:
        page = _get(server, query)
        yield page
        token = etree.fromstring(page).findtext(".//o:resumptionToken", namespaces=NS)
        if not token:
            return
        query = f"verb=ListRecords&resumptionToken={urllib.parse.quote(token)}"


def test_the_evil_title_is_carried_as_escaped_text(web_server: WebServer, schemas: Any) -> None:
    from tests.web_support import EVIL_TITLE

    doc = _validate(_get(web_server, f"verb=GetRecord&metadataPrefix=oai_dc&identifier=oai:{REPO_ID}:evil"), schemas)
    assert doc.findtext(".//dc:title", namespaces=NS) == EVIL_TITLE
    assert sum(1 for _ in _pages(web_server)) == 3


def test_the_response_schema_is_strict_about_metadata(schemas: Any) -> None:
    """The validation above can fail: a misspelt Dublin Core element inside <metadata> is refused."""
    response = (f'<OAI-PMH xmlns="{OAI_NS}"><responseDate>2020-01-01T00:00:00Z</responseDate>'
                '<request>http://x/oai</request><GetRecord><record><header><identifier>oai:x:y</identifier>'
                '<datestamp>2020-01-01T00:00:00Z</datestamp></header><metadata>'
                f'<oai_dc:dc xmlns:oai_dc="{OAI_DC_NS}" xmlns:dc="{DC_NS}"><dc:titel>x</dc:titel></oai_dc:dc>'
                '</metadata></record></GetRecord></OAI-PMH>')
    envelope, _ = schemas
    assert not envelope.validate(etree.fromstring(response))
    assert envelope.validate(etree.fromstring(response.replace("titel", "title")))
