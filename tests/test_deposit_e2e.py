"""End to end, from the CLI as a user runs it: the seed ingested, deposited to a filesystem store, an
S3-compatible server and an OCFL storage root, then audited at all of them - and damage at two of
the copies found by the next audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import ocfl
import pytest

from pipeline.deposit.ocfl import object_id_of

from .conftest import run_cli

BAG = "icg-peru-1986.v1"


def _audit(bags: Path) -> tuple[int, dict[str, Any]]:
    out = run_cli("audit", "--bags", bags, "--json", "-")
    assert out.returncode in (0, 1), out.stderr
    report = json.loads(out.stdout)
    [bag] = [b for b in report["bags"] if b["name"] == BAG]
    return out.returncode, {c["location"]: c for c in bag["locations"]}


@pytest.mark.slow  # two Prefect flow runs and four CLI processes: about a minute
def test_seed_deposited_to_all_three_repositories_and_audited_there(
        prefect_api_url: str, records_copy: Path, tmp_path: Path, moto_endpoint: str, s3_bucket: str) -> None:
    bags = tmp_path / "bags"
    env = {"PREFECT_API_URL": prefect_api_url}
    ingested = run_cli("ingest", "--records", records_copy, "--bags", bags, env=env)
    assert ingested.returncode == 0, ingested.stderr
    bag = bags / BAG
    targets = {
        "file": (((tmp_path / "store").as_uri() + "?create=1"), ["--no-flow"]),
        "s3": (f"s3://{s3_bucket}/archive?endpoint={moto_endpoint}", []),  # through the Prefect flow
        "ocfl": (f"ocfl://{tmp_path / 'ocfl'}?create=1", ["--no-flow"]),
    }
    locations: dict[str, str] = {}
    for kind, (url, extra) in targets.items():
        out = run_cli("deposit", bag, "--to", url, "--json", *extra, env=env)
        assert out.returncode == 0, out.stderr
        row = json.loads(out.stdout)["bags"][0]
        assert row["outcome"] == "deposited" and row["verified"], row
        locations[kind] = row["location"]

    code, checks = _audit(bags)
    assert code == 0
    assert set(checks) == {bag.resolve().as_uri(), *locations.values()}
    files = {c["files_checked"] for c in checks.values()}
    assert len(files) == 1 and files.pop() >= 7  # every copy: the payload and every tag file, re-read
    assert not any(c["damaged"] for c in checks.values())

    # damage at rest in two repositories; the next audit names exactly those copies and that file
    root = tmp_path / "ocfl"
    objdir = root / ocfl.StorageRoot(root=str(root)).object_path(object_id_of("icg-peru-1986"))
    [payload] = [p for p in (objdir / "v1" / "content" / "data").rglob("*") if p.is_file()]
    data = bytearray(payload.read_bytes())
    data[100] ^= 1
    payload.write_bytes(bytes(data))
    rel = payload.relative_to(objdir / "v1" / "content").as_posix()
    boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1").put_object(
        Bucket=s3_bucket, Key=f"archive/{BAG}/{rel}", Body=bytes(data))

    code, checks = _audit(bags)
    assert code == 1
    damaged = {loc for loc, c in checks.items() if c["damaged"]}
    assert damaged == {locations["s3"], locations["ocfl"]}
    for loc in damaged:
        assert {f["path"] for f in checks[loc]["findings"] if f["severity"] == "error"} == {rel}
