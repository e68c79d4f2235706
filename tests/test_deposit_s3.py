"""The s3:// deposit target against a real S3-compatible server process (moto_server) over HTTP."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path
from typing import Any

import bagit
import boto3
import pytest

from pipeline.deposit import open_location, open_target
from pipeline.deposit.base import DIGEST, EXTRA, bag_expectations
from pipeline.errors import DepositError, DepositMismatchError, RetryableDepositError

MIB = 1 << 20


def s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def keys(endpoint: str, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in s3(endpoint).list_objects_v2(Bucket=bucket).get("Contents", []))


def bag_paths(bag: Path) -> list[str]:
    return sorted(p.relative_to(bag).as_posix() for p in bag.rglob("*") if p.is_file())


def test_each_file_is_an_object_with_its_sha256_and_the_marker_comes_last(make_bag: Any, moto_endpoint: str,
                                                                          s3_bucket: str) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n", "sub dir/ü.txt": b"beta\n"})
    url = f"s3://{s3_bucket}/archive?endpoint={moto_endpoint}"
    result = open_target(url).put(bag)
    assert result.outcome == "deposited" and result.verified
    assert result.location == f"s3://{s3_bucket}/archive/rec.v1?endpoint={moto_endpoint}"
    expected_keys = [f"archive/rec.v1/{p}" for p in bag_paths(bag)] + ["archive/.strongroom/rec.v1.complete.json"]
    assert keys(moto_endpoint, s3_bucket) == sorted(expected_keys)
    client = s3(moto_endpoint)
    for rel in bag_paths(bag):
        data = (bag / rel).read_bytes()
        key = f"archive/rec.v1/{rel}"
        assert client.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == data
        head = client.head_object(Bucket=s3_bucket, Key=key, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
    target, name = open_location(result.location)
    assert target.list() == ["rec.v1"] and target.locate(name) == result.location


def test_large_files_go_in_parts(make_bag: Any, moto_endpoint: str, s3_bucket: str) -> None:
    big = bytes(range(256)) * (11 * MIB // 256)  # 11 MiB: parts of 5, 5 and 1 MiB
    bag = make_bag("rec", files={"big.bin": big})
    url = f"s3://{s3_bucket}/p?endpoint={moto_endpoint}&part_size={5 * MIB}&multipart_threshold={5 * MIB}"
    assert open_target(url).put(bag).verified
    head = s3(moto_endpoint).head_object(Bucket=s3_bucket, Key="p/rec.v1/data/big.bin")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] == len(big)


def test_serialised_as_one_tar_with_the_bag_as_single_top_directory(make_bag: Any, moto_endpoint: str,
                                                                    s3_bucket: str, tmp_path: Path) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n", "d/b.txt": b"beta\n"})
    target = open_target(f"s3://{s3_bucket}/tars?endpoint={moto_endpoint}&serialization=tar")
    assert target.put(bag).outcome == "deposited"
    assert keys(moto_endpoint, s3_bucket) == ["tars/.strongroom/rec.v1.complete.json", "tars/rec.v1.tar"]
    body = s3(moto_endpoint).get_object(Bucket=s3_bucket, Key="tars/rec.v1.tar")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body)) as tar:
        assert {m.name.split("/")[0] for m in tar.getmembers()} == {"rec.v1"}
        assert all(m.isfile() or m.isdir() for m in tar.getmembers())  # nothing but files and dirs
        assert not any(m.name.startswith("/") or ".." in m.name.split("/") for m in tar.getmembers())
        # The "data" extraction filter exists from Python 3.11.4; Debian's 3.11.2 lacks it.
        tar.extractall(tmp_path / "out", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    out = tmp_path / "out" / "rec.v1"
    assert bag_paths(out) == bag_paths(bag)
    assert all((out / p).read_bytes() == (bag / p).read_bytes() for p in bag_paths(bag))
    assert bagit.Bag(str(out)).is_valid()
    assert target.put(bag).outcome == "unchanged"
    assert target.verify("rec.v1", bag_expectations(bag)) == []


def test_a_large_bag_streams_into_a_tar_in_parts(make_bag: Any, moto_endpoint: str, s3_bucket: str) -> None:
    big = os.urandom(11 * MIB)  # the tar is built and sent part by part, never whole in memory
    bag = make_bag("rec", files={"big.bin": big})
    target = open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}&serialization=tar&part_size={5 * MIB}")
    assert target.put(bag).verified
    head = s3(moto_endpoint).head_object(Bucket=s3_bucket, Key="rec.v1.tar")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] > len(big)
    assert target.fixity("rec.v1", ["sha256"])["data/big.bin"] == (len(big), {"sha256": hashlib.sha256(big).hexdigest()})


def test_same_bag_twice_and_a_different_bag_under_the_name(make_bag: Any, moto_endpoint: str, s3_bucket: str,
                                                           tmp_path: Path) -> None:
    bag = make_bag("rec", files={"a.txt": b"ours\n"})
    other = make_bag("rec", files={"a.txt": b"theirs\n"}, bags=tmp_path / "elsewhere")
    target = open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}")
    target.put(bag)
    assert target.put(bag).outcome == "unchanged"
    with pytest.raises(DepositMismatchError, match="nothing overwritten"):
        target.put(other)
    assert s3(moto_endpoint).get_object(Bucket=s3_bucket, Key="rec.v1/data/a.txt")["Body"].read() == b"ours\n"


def test_objects_without_a_marker_are_no_bag_and_the_next_deposit_completes_them(
        make_bag: Any, moto_endpoint: str, s3_bucket: str) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n"})
    client = s3(moto_endpoint)
    # what an interrupted deposit leaves: one good object, one stray, an open multipart upload
    client.put_object(Bucket=s3_bucket, Key="p/rec.v1/bagit.txt", Body=(bag / "bagit.txt").read_bytes())
    client.put_object(Bucket=s3_bucket, Key="p/rec.v1/data/leftover.txt", Body=b"not in this bag")
    client.create_multipart_upload(Bucket=s3_bucket, Key="p/rec.v1/data/a.txt")
    target = open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}")
    assert target.list() == [] and target.locate("rec.v1") is None
    with pytest.raises(DepositError, match="holds no complete bag"):
        target.fixity("rec.v1", ["sha256"])
    assert target.put(bag).outcome == "deposited"
    assert "p/rec.v1/data/leftover.txt" not in keys(moto_endpoint, s3_bucket)
    assert client.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    assert target.verify("rec.v1", bag_expectations(bag)) == []


def test_verify_rereads_the_objects_and_finds_damage_at_rest(make_bag: Any, moto_endpoint: str,
                                                             s3_bucket: str) -> None:
    bag = make_bag("rec", files={"a.txt": b"alpha\n"})
    target = open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}")
    target.put(bag)
    client = s3(moto_endpoint)
    client.put_object(Bucket=s3_bucket, Key="rec.v1/data/a.txt", Body=b"alphA\n")
    client.put_object(Bucket=s3_bucket, Key="rec.v1/data/extra.txt", Body=b"x")
    findings = target.verify("rec.v1", bag_expectations(bag))
    assert {(f.code, f.path) for f in findings} == {(DIGEST, "data/a.txt"), (EXTRA, "data/extra.txt")}


def test_missing_credentials_are_one_clear_error(make_bag: Any, moto_endpoint: str, s3_bucket: str,
                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bag = make_bag("rec")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(DepositError, match="no credentials for S3"):
        open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}").put(bag)


def test_results_never_carry_the_credentials(make_bag: Any, moto_endpoint: str, s3_bucket: str) -> None:
    import os

    result = open_target(f"s3://{s3_bucket}?endpoint={moto_endpoint}").put(make_bag("rec"))
    text = result.model_dump_json() + result.line()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in text and os.environ["AWS_ACCESS_KEY_ID"] not in text
    marker = s3(moto_endpoint).get_object(Bucket=s3_bucket, Key=".strongroom/rec.v1.complete.json")["Body"].read()
    assert os.environ["AWS_SECRET_ACCESS_KEY"].encode() not in marker


# -- leases: one deposit of a bag name at a time, across processes and machines

def _put_lease(endpoint: str, bucket: str, key: str, *, host: str, until: float) -> None:
    body = json.dumps({"bag": "rec.v1", "host": host, "pid": 4242, "tag": "test", "until": until})
    s3(endpoint).put_object(Bucket=bucket, Key=key, Body=body.encode())


def test_a_live_lease_held_elsewhere_turns_a_deposit_away_untouched(make_bag: Any, moto_endpoint: str,
                                                                    s3_bucket: str) -> None:
    bag = make_bag("rec")
    lease = "p/.strongroom/rec.v1.lease.json"
    _put_lease(moto_endpoint, s3_bucket, lease, host="other-machine", until=time.time() + 600)
    with pytest.raises(RetryableDepositError, match=r"rec\.v1 is being deposited by other-machine pid 4242"):
        open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}").put(bag)
    assert keys(moto_endpoint, s3_bucket) == [lease]  # nothing uploaded, the other's lease kept


def test_a_lease_that_ran_out_is_taken_over_and_removed_at_the_end(make_bag: Any, moto_endpoint: str,
                                                                   s3_bucket: str) -> None:
    bag = make_bag("rec")
    _put_lease(moto_endpoint, s3_bucket, "p/.strongroom/rec.v1.lease.json", host="other-machine",
               until=time.time() - 1)  # a deposit on another machine died and stopped renewing
    assert open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}").put(bag).outcome == "deposited"
    assert not [k for k in keys(moto_endpoint, s3_bucket) if k.endswith(".lease.json")]


def test_a_lease_is_renewed_while_held_and_a_lost_one_stops_the_marker(moto_endpoint: str, s3_bucket: str) -> None:
    from pipeline.deposit.s3 import _Lease

    target = open_target(f"s3://{s3_bucket}/p?endpoint={moto_endpoint}&lease=2")
    key = "p/.strongroom/rec.v1.lease.json"
    with _Lease(target, "rec.v1") as lease:  # type: ignore[arg-type]
        time.sleep(4.5)  # more than twice its length: alive only if renewed (every 0.67 s)
        assert json.loads(s3(moto_endpoint).get_object(Bucket=s3_bucket, Key=key)["Body"].read())["until"] > time.time()
        with pytest.raises(RetryableDepositError, match="is being deposited by"):
            _Lease(target, "rec.v1").__enter__()  # type: ignore[arg-type]
        lease.check()
        _put_lease(moto_endpoint, s3_bucket, key, host="other-machine", until=time.time() + 600)  # taken over
        time.sleep(1.5)  # two renewal beats
        with pytest.raises(RetryableDepositError, match="lost the lease on rec.v1"):
            lease.check()
    # The lease it lost is not its to delete.
    assert "other-machine" in s3(moto_endpoint).get_object(Bucket=s3_bucket, Key=key)["Body"].read().decode()


def test_two_deposits_of_one_bag_at_once_end_with_one_verified_copy(make_bag: Any, moto_endpoint: str,
                                                                    s3_bucket: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.deposit import deposit_bag
    from pipeline.deposit.replication import RetryPolicy

    bag = make_bag("rec", files={f"f{i}.txt": os.urandom(50_000) for i in range(20)})
    url = f"s3://{s3_bucket}/p?endpoint={moto_endpoint}&max_concurrency=2"
    retry = RetryPolicy(attempts=60, first_delay=0.1, max_delay=0.5)  # the second waits out the first
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: deposit_bag(bag, url, retry=retry), range(2)))
    assert sorted(r.outcome for r in results) == ["deposited", "unchanged"]
    target = open_target(url)
    assert target.list() == ["rec.v1"] and target.verify("rec.v1", bag_expectations(bag)) == []
    assert not [k for k in keys(moto_endpoint, s3_bucket) if k.endswith(".lease.json")]
