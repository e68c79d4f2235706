"""Ingest through the library: the seed becomes a verified bag; versions; refusals write nothing."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import bagit
import pytest
import rdflib
from lxml import etree

from pipeline.bag.tagfiles import info_value, iter_manifest, read_bag_info
from pipeline.bag.writer import STRONGROOM_PROFILE_ID
from pipeline.ingest import IngestReport, bag_versions, duplicate_identifiers, ingest_record

from .conftest import kill_after_files

SEED_SHA256 = "246b6f3eecd785210211962ece94d16350e7aec34991bc8c3d85bfcecb822364"

SEED_NAME = "000_5b99444169de3d3a.txt"
DCT = rdflib.Namespace("http://purl.org/dc/terms/")
PREMIS = "{http://www.loc.gov/premis/v3}"
SAFE = etree.XMLParser(resolve_entities=False, no_network=True)


@pytest.fixture(scope="module")
def seed_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The seed record ingested once into a fresh bags directory (shared by the read-only tests)."""
    root = tmp_path_factory.mktemp("seed")
    shutil.copytree(Path(__file__).resolve().parents[1] / "records", root / "records")
    result = ingest_record(root / "records" / "icg-peru-1986" / "record.yaml", root / "bags")
    assert result.outcome == "bagged", result.error
    assert result.bag is not None
    return result.bag


def test_seed_payload_reaches_the_bag_byte_for_byte(seed_bag: Path, seed_path: Path) -> None:
    copied = seed_bag / "data" / SEED_NAME
    assert copied.read_bytes() == seed_path.read_bytes()
    assert hashlib.sha256(copied.read_bytes()).hexdigest() == SEED_SHA256
    assert seed_bag.name == "icg-peru-1986.v1"


def test_bagit_python_validates_the_seed_bag(seed_bag: Path) -> None:
    bag = bagit.Bag(str(seed_bag))
    bag.validate()
    assert bag.version == "1.0"


def test_bag_info_tells_a_reader_what_the_bag_holds(seed_bag: Path) -> None:
    info = read_bag_info(seed_bag)
    for label in ("Source-Organization", "External-Identifier", "External-Description", "Bagging-Date",
                  "Payload-Oxum", "Bag-Software-Agent", "BagIt-Profile-Identifier"):
        assert info_value(info, label), f"bag-info.txt lacks {label}"
    assert info_value(info, "External-Identifier") == "icg-peru-1986"
    assert info_value(info, "Payload-Oxum") == "27183.1"
    assert info_value(info, "BagIt-Profile-Identifier") == STRONGROOM_PROFILE_ID
    text = (seed_bag / "bag-info.txt").read_text(encoding="utf-8")
    assert "Massacre of Prisoners in Peru" in text and "Internationalist Communist Group" in text


def test_metadata_tag_files_are_in_every_tag_manifest(seed_bag: Path) -> None:
    for alg in ("sha512", "sha256"):
        listed = {p for p, _ in iter_manifest(seed_bag / f"tagmanifest-{alg}.txt")}
        assert {"metadata/dc.xml", "metadata/dcterms.jsonld", "metadata/premis.xml",
                "metadata/record.yaml"} <= listed
    original = Path(__file__).resolve().parents[1] / "records" / "icg-peru-1986" / "record.yaml"
    assert (seed_bag / "metadata" / "record.yaml").read_bytes() == original.read_bytes()


def test_dc_xml_names_libcom_communism_6_and_comunismo_22(seed_bag: Path) -> None:
    root = etree.fromstring((seed_bag / "metadata" / "dc.xml").read_bytes(), SAFE)
    assert root.tag == "{http://www.openarchives.org/OAI/2.0/oai_dc/}dc"
    text = " ".join(root.itertext())
    assert "libcom" in text
    assert "Communism" in text and ("No. 6" in text or "#6" in text)
    assert "Comunismo" in text and ("No. 22" in text or "No.22" in text)


def test_dcterms_jsonld_links_the_item_to_its_source_and_version(seed_bag: Path) -> None:
    graph = rdflib.Graph()
    graph.parse(data=(seed_bag / "metadata" / "dcterms.jsonld").read_bytes(), format="json-ld")
    items = set(graph.subjects(DCT.isVersionOf, None))
    assert len(items) == 1
    item = items.pop()
    version = graph.value(item, DCT.isVersionOf)
    source = graph.value(item, DCT.source)
    assert version is not None and source is not None and version != source
    assert "Comunismo" in " ".join(str(o) for o in graph.objects(None, None) if isinstance(o, rdflib.Literal))
    assert str(graph.value(item, DCT.issued)) == "2006-01-12"
    assert graph.value(version, DCT.source) == source  # the translation derives from the original
    assert graph.value(version, DCT.issued) is None  # Communism #6 gives no date: none invented


def test_premis_records_the_ingest_events_with_the_manifest_digests(seed_bag: Path) -> None:
    root = etree.fromstring((seed_bag / "metadata" / "premis.xml").read_bytes(), SAFE)
    assert root.get("version") == "3.0"
    types = [e.text for e in root.iter(f"{PREMIS}eventType")]
    for code in ("ing", "mes", "fix", "pac", "val"):
        assert any(t and (t == code or t.lower().startswith(_LABELS[code])) for t in types), (code, types)
    digests = {d.text for d in root.iter(f"{PREMIS}messageDigest")}
    for alg in ("sha512", "sha256"):
        for _path, digest in iter_manifest(seed_bag / f"manifest-{alg}.txt"):
            assert digest in digests
    outcomes = [e.text for e in root.iter(f"{PREMIS}eventOutcome")]
    assert outcomes and all(o in ("suc", "success") for o in outcomes)
    assert "Strongroom" in " ".join(root.itertext())


_LABELS = {"ing": "ingestion", "mes": "message digest", "fix": "fixity", "pac": "packing", "val": "validation"}


def test_reingesting_unchanged_input_creates_nothing(seed_bag: Path) -> None:
    bags = seed_bag.parent
    record = bags.parent / "records" / "icg-peru-1986" / "record.yaml"
    before = sorted(p.name for p in bags.iterdir())
    result = ingest_record(record, bags)
    assert result.outcome == "unchanged" and result.bag == seed_bag
    assert sorted(p.name for p in bags.iterdir()) == before


def test_a_changed_record_becomes_a_new_version_beside_the_old(tmp_path: Path, records_copy: Path) -> None:
    record = records_copy / "icg-peru-1986" / "record.yaml"
    bags = tmp_path / "bags"
    first = ingest_record(record, bags)
    assert first.bag is not None
    v1 = {p.relative_to(first.bag): p.read_bytes() for p in first.bag.rglob("*") if p.is_file()}
    record.write_text(record.read_text(encoding="utf-8") + "\n# a comment is a change to the record\n",
                      encoding="utf-8")
    second = ingest_record(record, bags)
    assert second.outcome == "bagged" and second.bag is not None and second.bag.name == "icg-peru-1986.v2"
    assert {p.relative_to(first.bag): p.read_bytes() for p in first.bag.rglob("*") if p.is_file()} == v1
    assert bag_versions(bags, "icg-peru-1986") == [first.bag, second.bag]


def test_a_changed_payload_becomes_a_new_version(tmp_path: Path, records_copy: Path) -> None:
    record = records_copy / "icg-peru-1986" / "record.yaml"
    text = record.read_text(encoding="utf-8")
    start = text.index("    checksums:")
    record.write_text(text[:start], encoding="utf-8")  # the record no longer states digests
    bags = tmp_path / "bags"
    assert ingest_record(record, bags).outcome == "bagged"
    with open(records_copy / "icg-peru-1986" / SEED_NAME, "ab") as fh:
        fh.write(b"\n")
    result = ingest_record(record, bags)
    assert result.outcome == "bagged" and result.bag is not None and result.bag.name.endswith(".v2")


def test_duplicate_identifiers_are_named_with_both_files(records_copy: Path) -> None:
    first = records_copy / "icg-peru-1986" / "record.yaml"
    second = records_copy / "icg-peru-1986" / "copy.record.yaml"
    shutil.copyfile(first, second)
    clashes = duplicate_identifiers([first, second])
    assert set(clashes) == {first, second}
    assert "duplicate record identifier 'icg-peru-1986'" in clashes[first] and str(second) in clashes[first]


def test_report_exit_code_and_json(tmp_path: Path, records_copy: Path) -> None:
    good = ingest_record(records_copy / "icg-peru-1986" / "record.yaml", tmp_path / "bags")
    bad = ingest_record(tmp_path / "absent.record.yaml", tmp_path / "bags")
    report = IngestReport([good, bad])
    assert report.exit_code == 1
    data = json.loads(json.dumps(report.as_json()))
    assert data["bagged"] == 1 and data["failed"] == 1


@pytest.mark.slow
def test_ingest_killed_mid_bag_leaves_no_bag_and_the_next_run_completes(tmp_path: Path) -> None:
    import os
    import textwrap

    from pipeline.bag.writer import STAGING_DIR
    from pipeline.ingest import prepare_bags_dir

    item = tmp_path / "records" / "big"
    item.mkdir(parents=True)
    for i in range(30):
        (item / f"part{i:02}.bin").write_bytes(os.urandom(512 * 1024))
    payload = "\n".join(f"  - path: part{i:02}.bin" for i in range(30))
    (item / "record.yaml").write_text(textwrap.dedent("""\
        id: big-item
        dc:
          title: A record with many payload files
        rights:
          statement: Copyright Undetermined
          uri: http://rightsstatements.org/vocab/UND/1.0/
        source_organization: Strongroom tests
        payload:
        """) + payload + "\n", encoding="utf-8")
    sources = {p: p.read_bytes() for p in item.iterdir()}
    bags = tmp_path / "bags"
    status = kill_after_files(
        "from pipeline.ingest import IngestOptions, ingest_record\n"
        f"ingest_record(Path({str(item / 'record.yaml')!r}), Path({str(bags)!r}), "
        "IngestOptions(progress=progress))\n", 15)
    assert status == -9
    assert [p.name for p in bags.iterdir() if not p.name.startswith(".")] == []
    assert {p: p.read_bytes() for p in item.iterdir()} == sources
    assert len(prepare_bags_dir(bags)) == 1  # the next run removes the dead run's staging
    result = ingest_record(item / "record.yaml", bags)
    assert result.outcome == "bagged" and result.bag is not None and result.bag.name == "big-item.v1"
    assert not any((bags / STAGING_DIR).iterdir())
    bagit.Bag(str(result.bag)).validate()
