"""The seed's bag metadata against the official schemas, read by lxml's validator (not ours).

The schemas are vendored under tests/data/xsd/ (SOURCES.md names where each comes from); they
load with no network access.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from lxml import etree

from pipeline.ingest import ingest_record

XSD = Path(__file__).parent / "data" / "xsd"


def _schema(name: str) -> etree.XMLSchema:
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    return etree.XMLSchema(etree.parse(str(XSD / name), parser))


@pytest.fixture(scope="module")
def seed_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("xsd")
    records = root / "records"
    shutil.copytree(Path(__file__).resolve().parents[1] / "records", records)
    bags = root / "bags"
    bags.mkdir()
    result = ingest_record(records / "icg-peru-1986" / "record.yaml", bags)
    assert result.outcome == "bagged" and result.bag is not None, result.error
    return result.bag


def _assert_valid(schema: etree.XMLSchema, path: Path) -> None:
    doc = etree.parse(str(path), etree.XMLParser(no_network=True, resolve_entities=False))
    assert schema.validate(doc), [str(e) for e in schema.error_log]


def test_the_seed_dc_xml_validates_against_the_oai_dc_xsd(seed_bag: Path) -> None:
    _assert_valid(_schema("oai_dc.xsd"), seed_bag / "metadata" / "dc.xml")


def test_the_seed_premis_xml_validates_against_the_premis_3_0_xsd(seed_bag: Path) -> None:
    _assert_valid(_schema("premis-v3-0.xsd"), seed_bag / "metadata" / "premis.xml")


def test_the_schemas_reject_what_they_should(tmp_path: Path) -> None:
    """The vendored schemas are strict enough to fail: a dc:title outside oai_dc, a PREMIS object without identifier."""
    bad_dc = tmp_path / "dc.xml"
    bad_dc.write_text('<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/" '
                      'xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:titel>x</dc:titel></oai_dc:dc>')
    assert not _schema("oai_dc.xsd").validate(etree.parse(str(bad_dc)))
    bad_premis = tmp_path / "premis.xml"
    bad_premis.write_text('<premis xmlns="http://www.loc.gov/premis/v3" version="3.0" '
                          'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><object xsi:type="file"/></premis>')
    assert not _schema("premis-v3-0.xsd").validate(etree.parse(str(bad_premis)))


def test_the_seed_reaches_the_bag_byte_for_byte(seed_bag: Path, seed_path: Path) -> None:
    held = seed_bag / "data" / seed_path.name
    assert hashlib.sha256(held.read_bytes()).digest() == hashlib.sha256(seed_path.read_bytes()).digest()


def test_the_ledgers_premis_export_of_the_seed_validates_against_the_premis_3_0_xsd(seed_bag: Path,
                                                                                    tmp_path: Path) -> None:
    from pipeline.audit import register_bag
    from pipeline.ledger import Ledger

    with Ledger.open(f"sqlite:///{tmp_path / 'ledger.sqlite'}") as ledger:
        register_bag(ledger, seed_bag, origin="ingest")
        exported = tmp_path / "premis.xml"
        exported.write_bytes(ledger.premis_xml(seed_bag.name))
    _assert_valid(_schema("premis-v3-0.xsd"), exported)
