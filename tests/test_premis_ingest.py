"""The PREMIS a bag carries and the ledger exports: formats, event times, the bag as an object, versions.

Every document is checked against the official PREMIS 3.0 XSD (tests/data/xsd), read by lxml.
"""

from __future__ import annotations

import datetime as dt
import shutil
import uuid
from pathlib import Path

import pytest
from lxml import etree

from pipeline.formats import IDENTIFY_ENV
from pipeline.ingest import IngestOptions, ingest_record, register_result
from pipeline.ledger import Ledger
from pipeline.premis import PremisObject, PremisRepresentation, parse_premis

from .conftest import REPO, run_cli
from .test_formats import write_png

XSD = REPO / "tests" / "data" / "xsd" / "premis-v3-0.xsd"
P = "{http://www.loc.gov/premis/v3}"
NS = {"premis": "http://www.loc.gov/premis/v3"}
SAFE = etree.XMLParser(resolve_entities=False, no_network=True)
SEED_FILE = "data/000_5b99444169de3d3a.txt"


def assert_premis_valid(data: bytes) -> etree._Element:
    schema = etree.XMLSchema(etree.parse(str(XSD), SAFE))
    doc = etree.fromstring(data, SAFE)
    assert schema.validate(doc), [str(e) for e in schema.error_log]
    return doc


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(records, bags): the seed ingested once, with the ledger registered."""
    root = tmp_path_factory.mktemp("premis")
    shutil.copytree(REPO / "records", root / "records")
    result = ingest_record(root / "records" / "icg-peru-1986" / "record.yaml", root / "bags")
    assert result.outcome == "bagged", result.error
    with Ledger.open(None, bags_dir=root / "bags") as ledger:
        assert register_result(result, ledger).outcome == "bagged"
    return root / "records", root / "bags"


@pytest.fixture(scope="module")
def seed_premis(seed_run: tuple[Path, Path]) -> etree._Element:
    return assert_premis_valid((seed_run[1] / "icg-peru-1986.v1" / "metadata" / "premis.xml").read_bytes())


def _events(doc: etree._Element) -> list[tuple[str, dt.datetime, list[str]]]:
    return [(e.find("premis:eventType", NS).get("valueURI").rsplit("/", 1)[1],  # type: ignore[union-attr]
             dt.datetime.fromisoformat(e.findtext("premis:eventDateTime", namespaces=NS) or ""),
             [v.text or "" for v in e.findall("premis:linkingObjectIdentifier/"
                                              "premis:linkingObjectIdentifierValue", NS)])
            for e in doc.findall("premis:event", NS)]


def test_the_seed_names_pronom_x_fmt_111_beside_the_stated_mime_type(seed_premis: etree._Element) -> None:
    obj = seed_premis.find("premis:object[@{http://www.w3.org/2001/XMLSchema-instance}type='premis:file']", NS)
    assert obj is not None
    registry = obj.find(".//premis:formatRegistry", NS)
    assert registry is not None
    assert [registry.findtext(f"premis:{t}", namespaces=NS) for t in
            ("formatRegistryName", "formatRegistryKey", "formatRegistryRole")] == ["PRONOM", "x-fmt/111",
                                                                                  "specification"]
    names = [n.text for n in obj.iterfind(".//premis:formatName", NS)]
    assert names == ["Plain Text File", "text/plain; charset=us-ascii"]


def test_a_format_identification_event_names_the_tool_and_its_signatures(seed_premis: etree._Element) -> None:
    event = next(e for e in seed_premis.iterfind("premis:event", NS)
                 if e.findtext("premis:eventType", namespaces=NS) == "format identification")
    detail = event.findtext(".//premis:eventDetail", namespaces=NS) or ""
    assert "siegfried" in detail and "DROID_SignatureFile_V" in detail
    agents = [a.text for a in event.iterfind(".//premis:linkingAgentIdentifierValue", NS)]
    assert agents and agents[0].startswith("siegfried/")  # type: ignore[union-attr]
    assert "x-fmt/111" in (event.findtext(".//premis:eventOutcomeDetailNote", namespaces=NS) or "")


def test_each_event_has_its_own_time_in_the_order_the_steps_ran(seed_premis: etree._Element) -> None:
    events = _events(seed_premis)
    assert [t for t, _, _ in events] == ["ing", "mes", "fix", "for", "pac", "val"]
    times = [when for _, when, _ in events]
    assert len(set(times)) == len(times) and times == sorted(times)


def test_event_identifier_type_and_value_agree(seed_premis: etree._Element) -> None:
    for box in seed_premis.iterfind("premis:event/premis:eventIdentifier", NS):
        kind, value = (box.findtext(f"premis:eventIdentifier{x}", namespaces=NS) for x in ("Type", "Value"))
        assert kind == "URN" and value and value.startswith("urn:uuid:")
        uuid.UUID(value[len("urn:uuid:"):])


def test_the_bag_is_a_representation_that_includes_its_files(seed_premis: etree._Element) -> None:
    objects, events, _ = parse_premis(etree.tostring(seed_premis))
    bag = next(o for o in objects if isinstance(o, PremisRepresentation))
    assert bag.identifier == "icg-peru-1986.v1"
    assert [(r.type, r.subtype, r.related) for r in bag.relationships] == [("structural", "includes", (SEED_FILE,))]
    files = [o for o in objects if isinstance(o, PremisObject)]
    assert [(r.subtype, r.related) for f in files for r in f.relationships] == [("is included in", (bag.identifier,))]
    links = {e.event_type: e.object_ids for e in events}
    assert links["ing"] == links["pac"] == links["val"] == (bag.identifier,)
    assert links["mes"] == links["fix"] == links["for"] == (SEED_FILE,)


def test_the_ledger_export_validates_and_keeps_puid_and_bag(seed_run: tuple[Path, Path]) -> None:
    out = run_cli("events", "icg-peru-1986.v1", "--bags", seed_run[1])
    assert out.returncode == 0, out.stderr
    objects, events, _ = parse_premis(etree.tostring(assert_premis_valid(out.stdout.encode("utf-8"))))
    puids = {o.identifier: o.puid for o in objects if isinstance(o, PremisObject)}
    assert puids[SEED_FILE] == "x-fmt/111" and puids["metadata/dc.xml"] is None
    assert any(isinstance(o, PremisRepresentation) and o.identifier == "icg-peru-1986.v1" for o in objects)
    assert len({e.date_time for e in events}) == len(events)


def test_show_prints_each_payload_files_puid(seed_run: tuple[Path, Path]) -> None:
    out = run_cli("show", seed_run[1] / "icg-peru-1986.v1")
    assert out.returncode == 0, out.stderr
    assert "000_5b99444169de3d3a.txt: x-fmt/111 (Plain Text File)" in out.stdout


def _add_png(record: Path, stated: str) -> None:
    write_png(record.parent / "pixel.png")
    record.write_text(record.read_text(encoding="utf-8")
                      + f"  - path: pixel.png\n    format: {stated}\n", encoding="utf-8")


def test_a_second_version_derives_from_the_first_and_says_what_changed(tmp_path: Path, records_copy: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    record = records_copy / "icg-peru-1986" / "record.yaml"
    bags = tmp_path / "bags"
    assert ingest_record(record, bags, IngestOptions(verifiers=[])).outcome == "bagged"
    _add_png(record, "image/jpeg")  # a wrong stated format: a warning, kept in PREMIS
    second = ingest_record(record, bags, IngestOptions(verifiers=[]))
    assert second.outcome == "bagged" and second.bag is not None, second.error
    assert len(second.warnings) == 1 and "pixel.png" in second.warnings[0] and "image/jpeg" in second.warnings[0]
    from pipeline.cli.ingest import _print_ingest

    _print_ingest({"records": [second.as_row()], "bagged": 1, "unchanged": 0, "failed": 0}, as_json=False)
    assert "strongroom: warning:" in capsys.readouterr().err  # never silent
    doc = assert_premis_valid((second.bag / "metadata" / "premis.xml").read_bytes())
    objects, events, _ = parse_premis(etree.tostring(doc))
    png = next(o for o in objects if isinstance(o, PremisObject) and o.identifier == "data/pixel.png")
    assert png.puid in ("fmt/11", "fmt/12", "fmt/13") and png.format_name == "image/jpeg"
    assert any("disagrees with the record" in n for n in png.format_notes)
    assert next(e for e in events if e.event_type == "for").outcome == "war"
    change = next(e for e in events if e.event_type == "mod")
    assert change.object_ids == ("icg-peru-1986.v2", "icg-peru-1986.v1")
    assert "added: data/pixel.png" in (change.detail or "") and "metadata changed" in (change.detail or "")
    bag = next(o for o in objects if isinstance(o, PremisRepresentation))
    derivation = [r for r in bag.relationships if r.type == "derivation"]
    assert [(r.subtype, r.related, r.events) for r in derivation] == [
        ("has source", ("icg-peru-1986.v1",), (change.identifier,))]
    with Ledger.open(None, bags_dir=bags) as ledger:  # the ledger's export says the same
        assert register_result(second, ledger).outcome == "bagged"
        exported, _, _ = parse_premis(ledger.premis_xml("icg-peru-1986.v2"))
        assert_premis_valid(ledger.premis_xml("icg-peru-1986.v2"))
    bag = next(o for o in exported if isinstance(o, PremisRepresentation))
    assert [(r.subtype, r.related) for r in bag.relationships if r.type == "derivation"] == [
        ("has source", ("icg-peru-1986.v1",))]
    assert next(o for o in exported if o.identifier == "data/pixel.png").puid == png.puid  # type: ignore[union-attr]


def test_a_changed_record_alone_is_a_metadata_modification(tmp_path: Path, records_copy: Path) -> None:
    record = records_copy / "icg-peru-1986" / "record.yaml"
    bags = tmp_path / "bags"
    ingest_record(record, bags, IngestOptions(verifiers=[]))
    record.write_text(record.read_text(encoding="utf-8") + "# changed\n", encoding="utf-8")
    second = ingest_record(record, bags, IngestOptions(verifiers=[]))
    assert second.outcome == "bagged", second.error
    change = next(e for e in second.events if e.event_type == "mem")
    assert "added: none; removed: none; changed: none; metadata changed" in (change.detail or "")


def test_identification_can_be_switched_off(tmp_path: Path, records_copy: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(IDENTIFY_ENV, "0")
    result = ingest_record(records_copy / "icg-peru-1986" / "record.yaml", tmp_path / "bags",
                           IngestOptions(verifiers=[]))
    assert result.outcome == "bagged" and result.bag is not None, result.error
    doc = assert_premis_valid((result.bag / "metadata" / "premis.xml").read_bytes())
    assert doc.find(".//premis:formatRegistry", NS) is None
    assert "for" not in [t for t, _, _ in _events(doc)]
