"""schemas/record.schema.json is generated from the models and must not drift from them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml

from pipeline.models import SCHEMA_PATH, main, schema_text
from tests.conftest import REPO


def test_committed_schema_matches_the_models() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "schemas/record.schema.json is out of date: run `python -m pipeline.models`")


def test_generator_writes_what_the_drift_test_compares(tmp_path: Path) -> None:
    target = tmp_path / "record.schema.json"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == schema_text()


def test_schema_is_valid_and_accepts_the_committed_records() -> None:
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "records").rglob("record.yaml")):
        # BaseLoader: every scalar a string, as Strongroom's own loader reads records.
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
        errors = [e.message for e in validator.iter_errors(data)]
        assert errors == [], f"{path}: {errors}"


def test_schema_refuses_an_unknown_field() -> None:
    validator = jsonschema.Draft202012Validator(json.loads(schema_text()))
    record = REPO / "records" / "icg-peru-1986" / "record.yaml"
    data = yaml.load(record.read_text(encoding="utf-8"), Loader=yaml.BaseLoader)
    data["titel"] = "typo"
    assert any("titel" in e.message for e in validator.iter_errors(data))
