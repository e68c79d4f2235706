"""The record models: the seed record is accepted as the text states it; bad values are refused."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from pipeline.models import LangString, PayloadFile, Record, check_date, consistency_problems
from pipeline.records import load_record
from tests.conftest import REPO, SEED_SHA256

SEED_RECORD = REPO / "records" / "icg-peru-1986" / "record.yaml"


def minimal(**changes: Any) -> dict[str, Any]:
    """The data of a minimal valid record, with top-level fields replaced."""
    data: dict[str, Any] = {
        "id": "rec-1",
        "dc": {"title": "A title"},
        "rights": {"statement": "Copyright Undetermined",
                   "uri": "http://rightsstatements.org/vocab/UND/1.0/"},
        "source_organization": "Strongroom tests",
        "payload": [{"path": "a.txt"}],
    }
    data.update(changes)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Record.model_validate(data)
    return [f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in info.value.errors()]


# -- the first record ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_record() -> Record:
    return load_record(SEED_RECORD).record


def test_seed_record_names_the_item_and_its_creator(seed_record: Record) -> None:
    assert seed_record.id == "icg-peru-1986"
    assert seed_record.dc.title[0] == LangString(
        value="Large-scale Massacre of Prisoners in Peru, 1986 - ICG", lang="en")
    assert "Internationalist Communist Group" in seed_record.dc.creator[0].value
    assert seed_record.dc.description[0].value == (
        "Poorly written but still interesting article about a massacre of prisoners in Peru in 1986.")
    assert seed_record.source_organization


def test_seed_record_posting_date_is_kept_as_written_and_normalised(seed_record: Record) -> None:
    assert seed_record.issued is not None
    assert (seed_record.issued.as_written, seed_record.issued.date) == ("January 12, 2006",
                                                                        "2006-01-12")


def test_seed_record_chain_spanish_original_june_86(seed_record: Record) -> None:
    original = seed_record.resource("comunismo-22")
    assert original.relation == ("source",)
    assert original.language == ("es",)
    assert original.issued is not None
    assert (original.issued.as_written, original.issued.date) == ("June 86", "1986-06")
    assert original.part_of is not None and original.part_of.label() == "Comunismo No. 22"


def test_seed_record_chain_english_version_has_no_invented_date(seed_record: Record) -> None:
    english = seed_record.resource("communism-6")
    assert english.relation == ("isVersionOf",)
    assert english.issued is None
    assert english.part_of is not None and english.part_of.label() == "Communism No. 6"
    assert [(link.relation, link.target) for link in english.links] == [("source", "comunismo-22")]
    assert "From Communism #6" in english.cited_as


def test_seed_record_rights_undetermined(seed_record: Record) -> None:
    assert seed_record.rights.uri == "http://rightsstatements.org/vocab/UND/1.0/"
    assert "Copyright Undetermined" in seed_record.rights.statement[0].value


def test_seed_record_payload_is_the_seed_byte_for_byte(seed_record: Record, seed_path: Path) -> None:
    assert [p.path for p in seed_record.payload] == ["000_5b99444169de3d3a.txt"]
    assert seed_record.payload[0].checksums["sha256"] == SEED_SHA256
    copy = SEED_RECORD.parent / seed_record.payload[0].path
    assert copy.read_bytes() == seed_path.read_bytes()
    assert hashlib.sha512(copy.read_bytes()).hexdigest() == seed_record.payload[0].checksums["sha512"]


# -- dates --------------------------------------------------------------------------------------

GOOD_DATES = ["1986", "1986-06", "2006-01-12", "2004-02-29", "2006-01-12T10:20Z",
              "2006-01-12T10:20:30.5+01:00", "1986-06~", "1986?", "198X", "19XX",
              "1985/1986", "1984?/2004~", "1985/..", "2001-21", "Y-170000002"]
BAD_DATES = ["2006-13-45", "2006-02-29", "1986-13", "1986-00", "June 86", "", "1986-6",
             "2006-01-12T25:00Z", "2004-06-~01", "{1667,1668}", "12/01/2006"]


@pytest.mark.parametrize("value", GOOD_DATES)
def test_w3cdtf_and_edtf_level1_dates_accepted(value: str) -> None:
    assert check_date(value) == value


@pytest.mark.parametrize("value", BAD_DATES)
def test_invalid_and_level2_dates_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid date"):
        check_date(value)


def test_invalid_date_error_names_the_field() -> None:
    lines = problems(minimal(dc={"title": "t", "date": ["2006-01-12", "2006-13-45"]}))
    assert lines == ["dc.date.1: invalid date '2006-13-45'"]


# -- shapes -------------------------------------------------------------------------------------


def test_plain_string_and_single_value_accepted_for_repeatable_text() -> None:
    record = Record.model_validate(minimal(dc={"title": "Only", "subject": {"value": "Peru",
                                                                             "lang": "en"}}))
    assert record.dc.title == (LangString(value="Only"),)
    assert record.dc.subject == (LangString(value="Peru", lang="en"),)


def test_record_is_frozen() -> None:
    record = Record.model_validate(minimal())
    with pytest.raises(ValidationError):
        record.id = "other"  # type: ignore[misc]


@pytest.mark.parametrize("data, expected", [
    (minimal(titel="x"), "titel: Extra inputs are not permitted"),
    (minimal(dc={"title": "t", "creater": "x"}), "dc.creater: Extra inputs are not permitted"),
    (minimal(dc={"creator": "x"}), "dc.title: Field required"),
    (minimal(dc={"title": []}), "dc.title: at least one value is required"),
    (minimal(payload=[]), "payload: at least one value is required"),
    (minimal(id="-starts-with-dash"), "id: invalid identifier"),
    (minimal(id="a" * 101), "id: invalid identifier"),
    (minimal(dc={"title": {"value": "t", "lang": "english"}}), "dc.title.0.lang: invalid language"),
    (minimal(rights={"statement": "s", "uri": "not a uri"}), "rights.uri: not an absolute URI"),
    (minimal(issued={}), "issued: give 'date', 'as_written' or both"),
])
def test_bad_records_refused_with_the_field_named(data: dict[str, Any], expected: str) -> None:
    assert any(line.startswith(expected) for line in problems(data)), problems(data)


def test_missing_required_top_level_fields_are_named() -> None:
    fields = {e["loc"][0] for e in _errors({}) if e["type"] == "missing"}
    assert fields == {"id", "dc", "rights", "source_organization", "payload"}


def _errors(data: dict[str, Any]) -> list[Any]:
    with pytest.raises(ValidationError) as info:
        Record.model_validate(data)
    return list(info.value.errors())


# -- payload ------------------------------------------------------------------------------------


def test_checksum_hex_lowercased_and_length_checked_per_algorithm() -> None:
    item = PayloadFile(path="a.txt", checksums={"md5": "A" * 32, "sha512": "b" * 128})
    assert item.checksums == {"md5": "a" * 32, "sha512": "b" * 128}
    for alg, hexdigest in [("sha256", "a" * 63), ("sha256", "g" * 64), ("md5", "a" * 64)]:
        with pytest.raises(ValidationError, match=f"{alg} must be"):
            PayloadFile(path="a.txt", checksums={alg: hexdigest})


def test_unsupported_checksum_algorithm_refused() -> None:
    with pytest.raises(ValidationError, match="unsupported algorithm 'SHA-256'"):
        PayloadFile(path="a.txt", checksums={"SHA-256": "a" * 64})


@pytest.mark.parametrize("path", ["../a.txt", "/etc/passwd", "a/../../b", "~root/x", "C:x",
                                  "a\\b", "a//b", "", "./a"])
def test_unsafe_payload_paths_refused(path: str) -> None:
    with pytest.raises(ValidationError, match="unsafe payload path"):
        PayloadFile(path=path)


def test_payload_path_with_spaces_and_non_ascii_accepted() -> None:
    assert PayloadFile(path="sub dir/Comunismo Nº 22 %.txt").path == "sub dir/Comunismo Nº 22 %.txt"


# -- consistency --------------------------------------------------------------------------------


def _resource(rid: str, **extra: Any) -> dict[str, Any]:
    return {"id": rid, "label": rid, "relation": "source", **extra}


def test_consistency_problems_each_name_their_field() -> None:
    data = minimal(
        related=[_resource("a"), _resource("a"),
                 _resource("b", links=[{"relation": "source", "target": "nowhere"}]),
                 _resource("c", links=[{"relation": "source", "target": "c"}])],
        payload=[{"path": "x.txt"}, {"path": "x.txt"}],
    )
    with pytest.raises(ValidationError) as info:
        Record.model_validate(data)
    text = str(info.value)
    assert "related[1].id: duplicate resource id 'a' (also related[0])" in text
    assert "related[2].links[0].target: unknown resource 'nowhere'" in text
    assert "related[3].links[0].target: a resource cannot link to itself" in text
    assert "payload[1].path: duplicate payload path 'x.txt' (also payload[0])" in text


def test_link_to_a_later_resource_is_fine(seed_record: Record) -> None:
    # communism-6 (first) links to comunismo-22 (second): order in the file does not matter.
    assert consistency_problems(seed_record) == []


def test_unknown_relation_refused() -> None:
    with pytest.raises(ValidationError, match="related.0.relation.0"):
        Record.model_validate(minimal(related=[_resource("a", relation="translationOf")]))
